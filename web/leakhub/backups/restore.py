"""Restore a backup into this installation (the same or a fresh one): decrypt and check into
staging, restore the databases into new ones, migrate them forward, then swap them in with
the uploads and secrets; afterwards point the Keycloak clients at this host (rehost)."""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import peewee as pw

from ..core import keys as data_keys
from ..core import migrations
from ..core.db import database, init_database, open_database, utcnow
from ..core.files import fsync_dir
from ..core.secrets import decode_secret, ensure_all, write_secret
from ..identity.keycloak import admin_client
from ..orgs.models import Organization
from . import archive, databases, native
from .archive import ArchiveError
from .databases import DatabaseError
from .inventory import reconcile, resolve_archive
from .keys import load_identity_files, local_identities, local_identity_text
from .lock import backup_lock
from .service import (
    IDENTITY_SECRET,
    REHOST_MARKER,
    SECRETS_NOT_BACKED_UP,
    BackupError,
    audit,
    disk_error,
    h2_dir,
    leakhub_version,
    log,
    say,
    staging_dir,
    uses_postgres,
)
from .settings import get_settings


def _swap_dir(live: Path, new: Path, keep_as: Path) -> None:
    if live.exists() or live.is_symlink():
        os.replace(live, keep_as)
    live.parent.mkdir(parents=True, exist_ok=True)
    shutil.move(str(new), str(live))


def _restore_secrets(config, staged: Path, current_identity: str) -> list[str]:
    src = staged / "secrets"
    restored = []
    if not src.is_dir():
        return restored
    for f in sorted(src.iterdir()):
        if not f.is_file() or f.name in SECRETS_NOT_BACKED_UP:
            continue
        # Encrypted secrets open with the archive's data keys (imported before); they are
        # written again under this installation's active key.
        value = decode_secret(config.secrets_dir, f.name, f.read_text())
        if f.name == IDENTITY_SECRET and current_identity:
            # Keep this installation's key too: the restored key signs and encrypts from now
            # on (so the key the customer stored offline stays the one that matters), and
            # archives made here before the restore still decrypt.
            have = {line.strip() for line in value.splitlines()}
            extra = [line for line in current_identity.splitlines()
                     if line.strip().startswith("AGE-SECRET-KEY-") and line.strip() not in have]
            if extra:
                value = value + "\n# kept from before the restore:\n" + "\n".join(extra)
        write_secret(config.secrets_dir, f.name, value, overwrite=True)
        restored.append(f.name)
    return restored


def inspect_for_restore(config, path: Path, identities, staging: Path, *,
                        allow_unsigned: bool) -> archive.Extracted:
    extracted = archive.extract_archive(path, identities, staging)
    manifest = extracted.manifest
    if not extracted.authentic and not allow_unsigned:
        raise BackupError("the archive decrypts, but its manifest MAC does not match any "
                          "identity given: it may have been made by someone who knows only the "
                          "public key. Pass the appliance identity with --identity, or "
                          "--allow-unsigned if you trust where this file came from")
    schema = int(manifest.get("schema_version") or 0)
    head = migrations.head()
    if schema > head:
        raise BackupError(
            f"this backup comes from a newer Leakhub (version {manifest.get('leakhub_version')}, "
            f"schema {schema}); this installation is version {leakhub_version()} with schema "
            f"{head}. Install Leakhub {manifest.get('leakhub_version')} or newer, then restore")
    want_db = "postgresql" if uses_postgres(config) else "sqlite"
    if manifest.get("database") != want_db:
        raise BackupError(f"this backup holds a {manifest.get('database')} database, but this "
                          f"installation uses {want_db}; restore it into an installation of "
                          "the same kind")
    kc_want = get_settings(config).keycloak_db
    if manifest.get("keycloak_db") not in (kc_want, "none") and kc_want != "none":
        raise BackupError(f"this backup holds Keycloak's {manifest.get('keycloak_db')} database, "
                          f"but this installation's Keycloak uses {kc_want}")
    return extracted


def restore_backup(config, name_or_path: str, *, identity_files=(), stop_services: bool = False,
                   allow_unsigned: bool = False, confirm=None, log_fn=None) -> dict:
    """Restore an archive into this installation (same or fresh). See module docstring."""
    settings = get_settings(config)
    path = resolve_archive(config, name_or_path)
    path = path.resolve()
    identities = local_identities(config) + load_identity_files(identity_files)
    data_dir = Path(config.data_dir)
    data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    stamp = utcnow().strftime("%Y%m%d%H%M%S")
    started_pg = None
    report: dict = {"file": path.name}
    with backup_lock(config, what=f"restore {path.name}"):
        staging = staging_dir(data_dir, ".restore-")
        try:
            say(log_fn, f"decrypting and checking {path.name}")
            try:
                extracted = inspect_for_restore(config, path, identities, staging,
                                                allow_unsigned=allow_unsigned)
            except ArchiveError as exc:
                raise BackupError(str(exc)) from None
            except OSError as exc:
                raise disk_error(exc, data_dir) from None
            manifest = extracted.manifest
            report.update(created_at=manifest.get("created_at"), kind=manifest.get("kind"),
                          schema_version=manifest.get("schema_version"),
                          organizations=[o["slug"] for o in manifest.get("organizations") or []])
            say(log_fn, f"archive OK: made {manifest.get('created_at')} by Leakhub "
                         f"{manifest.get('leakhub_version')} (schema "
                         f"{manifest.get('schema_version')}), organizations: "
                         f"{', '.join(report['organizations']) or '-'}")

            # Nothing may serve while the databases and files are replaced.
            state = native.serving(config)
            if state.any:
                if not stop_services:
                    raise BackupError(
                        "Leakhub is running (" + ", ".join(state.services) + "); stop it first "
                        "or pass --stop-services (native stack). With Docker Compose: "
                        "`docker compose stop web worker keycloak caddy`, keep postgres running")
                if state.native_home is None or not (state.native_home / "stack.json").exists():
                    raise BackupError("--stop-services works for the native stack only; stop "
                                      "web, worker, keycloak and caddy yourself (" +
                                      ", ".join(state.services) + ")")
                say(log_fn, f"stopping the native stack in {state.native_home}")
                try:
                    native.stop_native_stack(state.native_home)
                except native.NativeStackError as exc:
                    raise BackupError(str(exc)) from None
                report["stopped_stack"] = str(state.native_home)
                state = native.serving(config)
                if state.any:
                    raise BackupError("still running after stopping: " + ", ".join(state.services))
            if confirm is not None and not confirm(manifest):
                raise BackupError("restore cancelled; nothing was changed")

            # Secrets this machine needs to run its own servers (never overwritten here).
            try:
                current_identity = local_identity_text(config)
            except Exception:
                current_identity = ""
            ensure_all(config.secrets_dir, extra={IDENTITY_SECRET: archive.new_identity_text},
                       config=config)

            if uses_postgres(config):
                targets = databases.pg_targets(config, settings)
                try:
                    with targets["super"].connect(autocommit=True):
                        pass
                except DatabaseError:
                    home = native.can_start_native_postgres(config)
                    if home is None:
                        raise
                    say(log_fn, f"starting PostgreSQL of the native stack in {home}")
                    started_pg = native.NativePostgres(config, home)
                    try:
                        started_pg.start()
                    except native.NativeStackError as exc:
                        started_pg = None
                        raise BackupError(str(exc)) from None
                    targets = databases.pg_targets(config, settings)   # passwords may be new
                report.update(_restore_postgres(config, settings, targets, extracted, stamp,
                                                log_fn))
            else:
                report.update(_restore_sqlite(config, settings, extracted, stamp, log_fn))

            # After the databases: uploads and secrets (the databases are already switched,
            # so a failure here is reported with what to do, not rolled back).
            say(log_fn, "switching to the restored uploads and secrets")
            new_uploads = staging / "uploads"
            new_uploads.mkdir(exist_ok=True, mode=0o700)
            old_uploads = data_dir / f".uploads.prerestore-{stamp}"
            _swap_dir(data_dir / "uploads", new_uploads, old_uploads)
            report["uploads"] = (manifest.get("uploads") or {}).get("files", 0)
            dek_file = staging / "keys" / "data-keys.json"
            if dek_file.is_file():
                report["data_keys"] = data_keys.dek_import(config, json.loads(
                    dek_file.read_text()))
            report["secrets"] = _restore_secrets(config, staging, current_identity)
            (data_dir / REHOST_MARKER).write_text(json.dumps({
                "from_public_url": manifest.get("public_url"), "restored": path.name}) + "\n")

            # The live database is the restored one now: make the records agree with the
            # directory and write the event into the restored audit trail.
            say(log_fn, "reconciling the backup records with the backup directory")
            init_database(config)
            database.connect(reuse_if_open=True)
            changes = reconcile(config)
            report["records_added"] = len(changes["added"])
            report["records_removed"] = len(changes["removed"])
            audit(config, "backup.restored", {
                "file": path.name, "created_at": manifest.get("created_at"),
                "schema_version": manifest.get("schema_version"),
                "migrated_to": migrations.head()}, label="leakctl backup restore")
            database.close()
        finally:
            shutil.rmtree(staging, ignore_errors=True)
            if started_pg is not None:
                say(log_fn, "stopping PostgreSQL again")
                try:
                    if not database.is_closed():
                        database.close()
                except Exception:
                    pass
                started_pg.stop()
    return report


def migrate_live_database(config, log_fn=None) -> list:
    """Migrate the configured database forward (after a point-in-time restore), leaving the
    app's database handle on it, connected."""
    applied = _migrate_database(config, config.database_url, log_fn)
    init_database(config)
    database.connect(reuse_if_open=True)
    return applied


def _migrate_database(config, url: str, log_fn) -> list:
    db = open_database(url, password_file=Path(config.secrets_dir) / "postgres-leakhub-password")
    database.initialize(db)
    try:
        database.connect(reuse_if_open=True)
        applied = migrations.migrate(config.data_dir, log=lambda m: say(log_fn, m))
        if isinstance(db, pw.SqliteDatabase):
            database.execute_sql("PRAGMA wal_checkpoint(TRUNCATE)")
            database.execute_sql("PRAGMA journal_mode=DELETE")
        return [m.version for m in applied]
    finally:
        if not database.is_closed():
            database.close()


def _restore_postgres(config, settings, targets, extracted, stamp, log_fn) -> dict:
    staged = extracted.staging
    manifest = extracted.manifest
    sup, app, kc = targets["super"], targets["app"], targets["keycloak"]
    if not database.is_closed():
        database.close()
    made = []
    swaps = []
    try:
        new_app = databases.scratch_name(f"{app.dbname}_restore")
        databases.create_database(sup, new_app, app.user)
        made.append(new_app)
        say(log_fn, "restoring Leakhub's database into a new database")
        databases.restore_pg(staged / "db" / "leakhub.pgdump", app, new_app, settings)
        parts = urlsplit(config.database_url)
        migrated = _migrate_database(config, urlunsplit(parts._replace(path="/" + new_app)),
                                     log_fn)
        swaps.append((app.dbname, new_app, f"{app.dbname}_prerestore_{stamp}", app.user))
        if manifest.get("keycloak_db") == "postgres" and settings.keycloak_db == "postgres":
            new_kc = databases.scratch_name(f"{kc.dbname}_restore")
            databases.create_database(sup, new_kc, kc.user)
            made.append(new_kc)
            say(log_fn, "restoring Keycloak's database into a new database")
            databases.restore_pg(staged / "keycloak" / "keycloak.pgdump", kc, new_kc, settings)
            swaps.append((kc.dbname, new_kc, f"{kc.dbname}_prerestore_{stamp}", kc.user))
        say(log_fn, "switching to the restored databases")
        databases.swap_databases(sup, swaps)
    except BaseException:
        for name in made:
            try:
                databases.drop_database(sup, name)
            except DatabaseError:
                pass
        raise
    # The previous databases stay (renamed *_prerestore_<time>) until the next backup
    # operation's clean-up drops them: DROP DATABASE forces a checkpoint, which need not
    # hold up the restore (the restored data is durable through the WAL already).
    return {"migrations_applied": migrated,
            "previous_databases": [keep_as for _live, _new, keep_as, _owner in swaps]}


def _restore_sqlite(config, settings, extracted, stamp, log_fn) -> dict:
    staged = extracted.staging
    manifest = extracted.manifest
    live = databases.sqlite_path(config)
    restored = live.with_name(f".{live.name}.restore-{stamp}")
    shutil.copyfile(staged / "db" / "leakhub.sqlite3", restored)
    try:
        migrated = _migrate_database(config, f"sqlite:///{restored}", log_fn)
    except BaseException:
        restored.unlink(missing_ok=True)
        raise
    h2_new = staged / "keycloak" / "h2"
    h2_live = h2_dir(config)
    keep = []
    try:
        for suffix in ("-wal", "-shm", ""):
            old = live.with_name(live.name + suffix)
            if old.exists():
                aside = live.with_name(f".{live.name}{suffix}.prerestore-{stamp}")
                os.replace(old, aside)
                keep.append((old, aside))
        os.replace(restored, live)
        fsync_dir(live.parent)
        if manifest.get("keycloak_db") == "h2" and settings.keycloak_db == "h2" and h2_new.is_dir():
            aside = h2_live.with_name(f".{h2_live.name}.prerestore-{stamp}")
            _swap_dir(h2_live, h2_new, aside)
            keep.append((h2_live, aside))
    except BaseException:
        for original, aside in reversed(keep):
            if aside.exists():
                if original.is_dir():
                    shutil.rmtree(original, ignore_errors=True)
                os.replace(aside, original)
        raise
    for _original, aside in keep:
        if not aside.is_dir():
            aside.unlink(missing_ok=True)
    return {"migrations_applied": migrated}


# ---------------------------------------------------------------------------- after setup

def rehost_if_pending(config) -> str | None:
    """After a restore (marker in the data dir): point every organization's Keycloak app
    client at *this* installation's URLs (a restore into a test environment has another
    host name). Called by `leakctl setup` once Keycloak runs; also `leakctl backup rehost`."""
    marker = Path(config.data_dir) / REHOST_MARKER
    if not marker.exists():
        return None
    return rehost(config, marker)


def rehost(config, marker: Path | None = None) -> str:
    kc = admin_client(config)
    done = []
    for org in Organization.select().order_by(Organization.id):
        if not kc.realm_exists(org.slug):
            log.warning("rehost: organization %s has no realm in Keycloak", org.slug)
            continue
        kc.update_app_client(org.slug, public_url=config.public_url,
                             internal_url=config.internal_url, secret=org.oidc_client_secret,
                             template_path=config.realm_template)
        done.append(org.slug)
    if marker is not None:
        marker.unlink(missing_ok=True)
    return (f"Keycloak clients of {len(done)} organization(s) now use {config.public_url}"
            if done else "no organizations to update")
