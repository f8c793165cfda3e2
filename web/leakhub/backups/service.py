"""Backups: create, list, verify, restore, rotate — the one implementation behind `leakctl
backup`, the worker's jobs and the admin page.

Invariants
- An archive appears under its final name only complete: written to `.<name>.partial`,
  fsynced, renamed, directory fsynced. A killed run leaves at most hidden leftovers, removed by
  the next run.
- One backup operation at a time per backup directory: an flock on `<backup dir>/.lock`, which
  the kernel releases when the holder dies (no stale lock after SIGKILL).
- Restore decrypts and checks everything into a staging directory before it changes anything;
  then restores the databases into new databases, migrates them forward, and only then swaps
  them in (and the uploads/secrets directories) — a failure before the swap changes nothing.
- The directory is the truth: BackupRecord rows are reconciled with the files on disk (a
  restore brings back the rows of the backup's moment).
"""
from __future__ import annotations

import contextlib
import datetime as dt
import errno
import fcntl
import hashlib
import importlib.metadata
import json
import logging
import os
import shutil
import socket
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import peewee as pw

from ..core import migrations
from ..core.db import database, init_database, open_database, utcnow
from ..core.errors import Conflict, LeakhubError
from ..core.files import fsync_dir
from ..core.secrets import ensure_all, read_secret, write_secret
from . import archive, databases
from .archive import ArchiveError
from .databases import DatabaseError
from .models import KINDS, BackupDownload, BackupRecord
from .settings import get_settings

log = logging.getLogger("leakhub.backups")

IDENTITY_SECRET = "backup-identity"
# Credentials of *this machine's* database server: a restore keeps the target's own.
SECRETS_NOT_BACKED_UP = {"postgres-superuser-password", "postgres-leakhub-password",
                         "postgres-keycloak-password"}
REHOST_MARKER = ".rehost-pending"
MANIFEST_SUMMARY_KEYS = ("format", "leakhub_version", "schema_version", "keycloak_version",
                         "kind", "created_at", "database", "keycloak_db", "keycloak_consistency",
                         "organizations", "realms", "uploads", "public_url", "recipients")


class BackupError(LeakhubError):
    """A backup operation failed or was refused; the message is for the operator."""


class BackupBusy(BackupError, Conflict):
    pass


# ---------------------------------------------------------------------------- basics

def leakhub_version() -> str:
    try:
        return importlib.metadata.version("leakhub")
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def _say(log_fn, message):
    if log_fn:
        log_fn(message)
    log.info(message)


def _disk_error(exc: OSError, where: Path) -> BackupError:
    if exc.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG):
        return BackupError(f"not enough space for the backup in {where} ({exc.strerror}); "
                           "the existing backups are unchanged")
    return BackupError(f"{exc.strerror or exc} ({getattr(exc, 'filename', None) or where})")


@contextlib.contextmanager
def backup_lock(config, *, what: str = "backup"):
    """The one-operation-at-a-time lock (flock: released by the kernel if we die)."""
    backup_dir = Path(config.backup_dir)
    backup_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    fh = open(backup_dir / ".lock", "a+")
    try:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            fh.seek(0)
            holder = fh.read().strip()
            raise BackupBusy(f"another backup operation is running ({holder or 'unknown'}); "
                             "try again when it has finished") from None
        fh.seek(0)
        fh.truncate()
        fh.write(f"{what}, pid {os.getpid()} on {socket.gethostname()}, since "
                 f"{utcnow().isoformat(timespec='seconds')}Z\n")
        fh.flush()
        _clean_leftovers(config)
        yield
    finally:
        fh.close()


def lock_is_free(config) -> bool:
    path = Path(config.backup_dir) / ".lock"
    if not path.exists():
        return True
    with open(path, "a+") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        fcntl.flock(fh, fcntl.LOCK_UN)
        return True


def _target_dirs(config) -> list[Path]:
    dirs = [Path(config.backup_dir)]
    copy_dir = get_settings(config).copy_dir
    if copy_dir:
        dirs.append(Path(copy_dir))
    return dirs


def _clean_leftovers(config) -> None:
    """Remove what a killed run left (we hold the lock, so nothing else is using them)."""
    for d in _target_dirs(config):
        if not d.is_dir():
            continue
        for entry in d.iterdir():
            if entry.name.startswith(".") and entry.name.endswith(".partial"):
                entry.unlink(missing_ok=True)
            elif entry.name.startswith(".work-") and entry.is_dir():
                shutil.rmtree(entry, ignore_errors=True)
    data_dir = Path(config.data_dir)
    if data_dir.is_dir():
        for entry in data_dir.iterdir():
            if entry.name.startswith((".restore-", ".uploads.prerestore-")) and entry.is_dir():
                shutil.rmtree(entry, ignore_errors=True)
    h2 = _h2_dir(config)
    if h2.parent.is_dir():
        for entry in h2.parent.glob(f".{h2.name}.prerestore-*"):
            shutil.rmtree(entry, ignore_errors=True)
    if _is_postgres(config):
        _drop_previous_databases(config)


def _drop_previous_databases(config) -> None:
    """The databases a restore replaced (kept until now, see _restore_postgres)."""
    try:
        settings = get_settings(config)
        targets = databases.pg_targets(config, settings)
        sup = targets["super"]
        if not sup.password:
            return
        for key in ("app", "keycloak") if settings.keycloak_db == "postgres" else ("app",):
            prefix = targets[key].dbname + "_prerestore_"
            for name in databases.list_databases(sup, prefix.replace("_", "\\_") + "%"):
                databases.drop_database(sup, name)
                log.info("dropped %s (replaced by a restore)", name)
    except DatabaseError as exc:
        log.warning("could not drop the databases replaced by a restore: %s", exc)


# ---------------------------------------------------------------------------- keys

def local_identity_text(config) -> str:
    return read_secret(config.secrets_dir, IDENTITY_SECRET)


def local_identities(config) -> list:
    try:
        return archive.parse_identities(local_identity_text(config))
    except Exception:
        return []


def load_identity_files(paths) -> list:
    found = []
    for p in paths or ():
        try:
            text = Path(p).read_text()
        except OSError as exc:
            raise BackupError(f"cannot read identity file {p}: {exc.strerror}") from None
        idents = archive.parse_identities(text)
        if not idents:
            raise BackupError(f"{p} contains no age identity (a line starting with AGE-SECRET-KEY-)")
        found += idents
    return found


def recipients(config) -> list:
    idents = local_identities(config)
    if not idents:
        raise BackupError(f"the secret {IDENTITY_SECRET!r} is missing or invalid in "
                          f"{config.secrets_dir} (run `leakctl secrets init`)")
    keys = [idents[0].to_public()]
    keys += [archive.parse_recipient(r) for r in get_settings(config).recipients]
    return keys


def export_identity(config, *, public: bool = False) -> str:
    idents = local_identities(config)
    if not idents:
        raise BackupError(f"the secret {IDENTITY_SECRET!r} is missing in {config.secrets_dir}")
    if public:
        return "\n".join(str(i.to_public()) for i in idents) + "\n"
    return local_identity_text(config).strip() + "\n"


# ---------------------------------------------------------------------------- listing

@dataclass
class ArchiveFile:
    name: str
    path: Path
    created_at: dt.datetime
    kind: str
    size: int


def archives_on_disk(config) -> list[ArchiveFile]:
    found = []
    d = Path(config.backup_dir)
    if not d.is_dir():
        return found
    for entry in d.iterdir():
        parsed = archive.parse_name(entry.name)
        if parsed and entry.is_file():
            found.append(ArchiveFile(entry.name, entry, parsed[0], parsed[1], entry.stat().st_size))
    found.sort(key=lambda a: (a.created_at, a.name), reverse=True)
    return found


def _file_sha256(path: Path) -> str:
    sha = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(archive.CHUNK):
            sha.update(chunk)
    return sha.hexdigest()


def reconcile(config, *, hash_new: bool = False) -> dict:
    """Make BackupRecord agree with the backup directory: rows for files without one, no rows
    for files that are gone. Returns {"added": [...], "removed": [...]}"""
    on_disk = {a.name: a for a in archives_on_disk(config)}
    rows = {r.file_name: r for r in BackupRecord.select()}
    added, removed = [], []
    copy_dir = get_settings(config).copy_dir
    for name, a in on_disk.items():
        if name in rows:
            continue
        BackupRecord.create(
            file_name=name, created_at=a.created_at, kind=a.kind, size=a.size,
            sha256=_file_sha256(a.path) if hash_new else "",
            copied=bool(copy_dir and (Path(copy_dir) / name).is_file()))
        added.append(name)
    for name, row in rows.items():
        if name not in on_disk:
            BackupDownload.update(backup=None).where(BackupDownload.backup == row.id).execute()
            row.delete_instance()
            removed.append(name)
    return {"added": added, "removed": removed}


def records() -> list[BackupRecord]:
    return list(BackupRecord.select().order_by(BackupRecord.created_at.desc(),
                                               BackupRecord.file_name.desc()))


def resolve_archive(config, name_or_path: str) -> Path:
    p = Path(name_or_path)
    if p.exists():
        return p
    candidate = Path(config.backup_dir) / name_or_path
    if archive.parse_name(name_or_path) and candidate.exists():
        return candidate
    raise BackupError(f"no such backup: {name_or_path}")


# ---------------------------------------------------------------------------- audit

def operator_org(config):
    from ..orgs.models import Organization

    if not config.first_org_slug:
        return None
    return Organization.get_or_none(Organization.slug == config.first_org_slug)


def audit(config, action: str, details: dict, *, actor=None, label: str = "leakctl") -> None:
    """A backup event in the operator organization's audit trail (skipped, logged, when
    there is no such organization yet)."""
    from ..audit import writer
    from ..authz import Actor

    try:
        if actor is None:
            org = operator_org(config)
            if org is None:
                log.info("backup event %s not audited: no organization %r",
                         action, config.first_org_slug)
                return
            actor = Actor.system(org, label=label)
        writer.event(actor, action, details=details)
    except pw.DatabaseError as exc:
        log.warning("backup event %s not audited: %s", action, exc)


# ---------------------------------------------------------------------------- create

def _h2_dir(config) -> Path:
    return Path(get_settings(config).keycloak_h2_dir
                or Path(config.data_dir).parent / "keycloak" / "h2")


def _keycloak_dist_version(config) -> str:
    path = Path(config.data_dir).parent / "keycloak-dist" / "version.txt"
    try:
        text = path.read_text().strip()
    except OSError:
        return "unknown"
    return text.rsplit(" ", 1)[-1] if text else "unknown"


def _is_postgres(config) -> bool:
    return config.database_url.startswith(("postgresql://", "postgres://"))


def _walk(root: Path, prefix: str) -> list[archive.Entry]:
    entries = []
    if not root.is_dir():
        return entries
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for fname in sorted(filenames):
            if fname.startswith("."):
                continue        # atomic_write's temporary files
            path = Path(dirpath) / fname
            rel = path.relative_to(root).as_posix()
            if not path.is_file() or path.is_symlink():
                continue
            if not archive.safe_member_name(f"{prefix}/{rel}"):
                log.warning("not backed up (unsafe name): %s", path)
                continue
            try:
                entries.append(archive.Entry(f"{prefix}/{rel}", path=path, mode=0o640))
            except FileNotFoundError:
                continue        # deleted meanwhile (a photo removed during the backup)
    return entries


def _unique_name(config, created_at: dt.datetime, kind: str) -> str:
    n = 0
    while True:
        name = archive.archive_name(created_at, kind, n)
        if not any((d / name).exists() for d in _target_dirs(config)):
            return name
        n += 1


def _publish(src: Path, final: Path) -> None:
    os.replace(src, final)
    fsync_dir(final.parent)


def _copy_to(path: Path, copy_dir: Path) -> None:
    copy_dir.mkdir(parents=True, exist_ok=True)
    tmp = copy_dir / f".{path.name}.partial"
    try:
        with open(path, "rb") as src, open(tmp, "wb") as dst:
            os.fchmod(dst.fileno(), 0o600)
            shutil.copyfileobj(src, dst, archive.CHUNK)
            dst.flush()
            os.fsync(dst.fileno())
        _publish(tmp, copy_dir / path.name)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


@dataclass
class Progress:
    """What long operations report; the CLI shows it as a progress bar."""
    start: object = None      # start(total_bytes, label)
    update: object = None     # update(n_bytes)


@dataclass
class Created:
    record: BackupRecord | None
    name: str
    path: Path
    size: int
    sha256: str
    manifest: dict
    warnings: list = field(default_factory=list)
    seconds: float = 0.0


def summary_of(manifest: dict) -> dict:
    out = {k: manifest.get(k) for k in MANIFEST_SUMMARY_KEYS if k in manifest}
    out["files"] = len(manifest.get("files") or {})
    out["bytes"] = sum(f.get("size", 0) for f in (manifest.get("files") or {}).values())
    return out


def create_backup(config, *, kind: str = "manual", actor=None, label: str = "leakctl",
                  progress: Progress | None = None, log_fn=None) -> Created:
    """Write one complete, encrypted archive into the backup directory (and the copy dir)."""
    import time

    if kind not in KINDS:
        raise BackupError(f"kind must be one of {', '.join(KINDS)}")
    settings = get_settings(config)
    started = time.monotonic()
    keys = recipients(config)
    signer = local_identities(config)[0]
    backup_dir = Path(config.backup_dir)
    with backup_lock(config, what=f"{kind} backup"):
        created_at = utcnow().replace(microsecond=0)
        name = _unique_name(config, created_at, kind)
        work = backup_dir / f".work-{name}"
        partial = backup_dir / f".{name}.partial"
        final = backup_dir / name
        warnings = []
        try:
            work.mkdir(mode=0o700)
            entries: list[archive.Entry] = []
            facts: dict = {}
            # 1. Leakhub's database (first: uploads referenced by its rows already exist)
            _say(log_fn, "dumping Leakhub's database")
            if _is_postgres(config):
                targets = databases.pg_targets(config, settings)
                out = work / "leakhub.pgdump"
                facts["app"] = databases.dump_pg(targets["app"], out, settings,
                                                 databases.app_facts_pg)
                entries.append(archive.Entry("db/leakhub.pgdump", path=out))
            else:
                out = work / "leakhub.sqlite3"
                facts["app"] = databases.dump_sqlite(databases.sqlite_path(config), out)
                entries.append(archive.Entry("db/leakhub.sqlite3", path=out))
            # 2. Keycloak's database
            kc = {"kind": settings.keycloak_db, "version": "unknown", "realms": [],
                  "consistency": "", "table_counts": {}}
            if settings.keycloak_db == "postgres":
                _say(log_fn, "dumping Keycloak's database")
                targets = databases.pg_targets(config, settings)
                out = work / "keycloak.pgdump"
                kc.update(databases.dump_pg(targets["keycloak"], out, settings,
                                            databases.keycloak_facts_pg))
                kc["consistency"] = "pg_dump snapshot"
                entries.append(archive.Entry("keycloak/keycloak.pgdump", path=out))
            elif settings.keycloak_db == "h2":
                _say(log_fn, "copying Keycloak's H2 database")
                info = databases.copy_h2(_h2_dir(config), work / "h2")
                kc["consistency"] = info["consistency"]
                kc["version"] = _keycloak_dist_version(config)
                for fname in info["files"]:
                    entries.append(archive.Entry(f"keycloak/h2/{fname}", path=work / "h2" / fname))
            else:
                warnings.append("Keycloak's database is not part of this backup "
                                "(LEAKHUB_BACKUP_KEYCLOAK_DB=none)")
            # 3. uploads, 4. secrets, 5. configuration
            uploads = _walk(Path(config.data_dir) / "uploads", "uploads")
            entries += uploads
            secret_names = []
            for entry in _walk(Path(config.secrets_dir), "secrets"):
                sname = entry.arcname.split("/", 1)[1]
                if sname in SECRETS_NOT_BACKED_UP or "/" in sname:
                    continue
                entry.mode = 0o600
                entries.append(entry)
                secret_names.append(sname)
            settings_doc = {
                "public_url": config.public_url, "internal_url": config.internal_url,
                "database": "postgresql" if _is_postgres(config) else "sqlite",
                "keycloak_url": config.keycloak_url, "first_org_slug": config.first_org_slug,
                "first_org_name": config.first_org_name,
                "backup": {"time": settings.time.strftime("%H:%M"),
                           "keep_daily": settings.keep_daily, "keep_weekly": settings.keep_weekly,
                           "keep_monthly": settings.keep_monthly,
                           "recipients": list(settings.recipients),
                           "copy_dir": str(settings.copy_dir or "")},
            }
            entries.append(archive.Entry("config/settings.json", mode=0o644,
                                         data=json.dumps(settings_doc, indent=1).encode()))

            def make_manifest(files):
                return {
                    "format": archive.FORMAT_VERSION,
                    "leakhub_version": leakhub_version(),
                    "schema_version": facts["app"]["schema_version"],
                    "keycloak_version": kc["version"],
                    "kind": kind,
                    "created_at": created_at.isoformat() + "Z",
                    "host": socket.gethostname(),
                    "database": settings_doc["database"],
                    "keycloak_db": kc["kind"],
                    "keycloak_consistency": kc["consistency"],
                    "organizations": facts["app"]["organizations"],
                    "realms": kc["realms"],
                    "table_counts": {"app": facts["app"]["table_counts"],
                                     "keycloak": kc["table_counts"]},
                    "uploads": {"files": len(uploads), "bytes": sum(e.size for e in uploads)},
                    "secrets": sorted(secret_names),
                    "public_url": config.public_url,
                    "internal_url": config.internal_url,
                    "recipients": [str(k) for k in keys],
                    "files": files,
                }

            total = sum(e.size for e in entries)
            if progress and progress.start:
                progress.start(total, f"writing {name}")
            _say(log_fn, f"writing {name} ({len(entries)} files, {total / 2**20:.1f} MiB before "
                         "encryption)")
            written = archive.write_archive(partial, entries, make_manifest, recipients=keys,
                                            signer=signer,
                                            progress=progress.update if progress else None)
            _publish(partial, final)
        except OSError as exc:
            raise _disk_error(exc, backup_dir) from None
        except (ArchiveError, DatabaseError) as exc:
            raise BackupError(str(exc)) from None
        finally:
            partial.unlink(missing_ok=True)
            shutil.rmtree(work, ignore_errors=True)

        copied = False
        if settings.copy_dir:
            try:
                _copy_to(final, Path(settings.copy_dir))
                copied = True
            except OSError as exc:
                warnings.append(f"copy to {settings.copy_dir} failed: {exc.strerror or exc}")
        manifest = written["manifest"]
        result = Created(None, name, final, written["size"], written["sha256"], manifest,
                         warnings, time.monotonic() - started)
        try:
            reconcile(config)
            record = BackupRecord.get(BackupRecord.file_name == name)
            record.sha256 = written["sha256"]
            record.size = written["size"]
            record.created_at = created_at
            record.manifest = json.dumps(summary_of(manifest))
            record.copied = copied
            record.save()
            result.record = record
            audit(config, "backup.created", {
                "file": name, "kind": kind, "size": written["size"],
                "sha256": written["sha256"], "copied": copied}, actor=actor, label=label)
        except pw.DatabaseError as exc:
            warnings.append(f"the backup is complete but could not be recorded: {exc}")
    for w in warnings:
        log.warning(w)
    return result


# ---------------------------------------------------------------------------- verify

@dataclass
class Verified:
    name: str
    ok: bool
    message: str
    manifest: dict = field(default_factory=dict)
    checks: list = field(default_factory=list)


def _staging(base: Path, prefix: str) -> Path:
    base.mkdir(parents=True, exist_ok=True, mode=0o700)
    path = base / f"{prefix}{uuid.uuid4().hex[:10]}"
    path.mkdir(mode=0o700)
    return path


def _compare_counts(label: str, want: dict, got: dict) -> None:
    diff = [t for t in set(want) | set(got) if want.get(t) != got.get(t)]
    if diff:
        t = sorted(diff)[0]
        raise BackupError(f"trial restore of {label}: table {t} has {got.get(t)} rows, the "
                          f"manifest says {want.get(t)} ({len(diff)} table(s) differ)")


def _trial_restore(config, extracted: archive.Extracted, checks: list) -> None:
    settings = get_settings(config)
    manifest = extracted.manifest
    staged = extracted.staging
    counts = manifest.get("table_counts") or {}
    if manifest.get("database") == "postgresql":
        targets = databases.pg_targets(config, settings)
        if not _is_postgres(config):
            raise BackupError("this backup is of a PostgreSQL installation; a trial restore needs "
                              "PostgreSQL (this installation uses SQLite)")
        sup = targets["super"]
        for stale in databases.list_databases(sup, "%\\_verify\\_%"):
            if stale.startswith((targets["app"].dbname + "_verify_",
                                 targets["keycloak"].dbname + "_verify_")):
                databases.drop_database(sup, stale)
        plan = [("app", "db/leakhub.pgdump", databases.app_facts_pg)]
        if manifest.get("keycloak_db") == "postgres":
            plan.append(("keycloak", "keycloak/keycloak.pgdump", databases.keycloak_facts_pg))
        for key, member, facts_fn in plan:
            role = targets[key]
            scratch = databases.scratch_name(f"{role.dbname}_verify")
            databases.create_database(sup, scratch, role.user)
            try:
                databases.restore_pg(staged / member, role, scratch, settings)
                facts = databases.facts_of(role, scratch, facts_fn)
            finally:
                databases.drop_database(sup, scratch)
            _compare_counts(key, counts.get(key) or {}, facts["table_counts"])
            if key == "app":
                if facts["schema_version"] != manifest.get("schema_version"):
                    raise BackupError(f"trial restore: schema version {facts['schema_version']}, "
                                      f"manifest says {manifest.get('schema_version')}")
                slugs = [o["slug"] for o in facts["organizations"]]
                if slugs != [o["slug"] for o in manifest.get("organizations") or []]:
                    raise BackupError("trial restore: the organizations differ from the manifest")
                checks.append(f"Leakhub database restored into a scratch database: schema "
                              f"version {facts['schema_version']}, {len(slugs)} organization(s)")
            else:
                if facts["realms"] != manifest.get("realms"):
                    raise BackupError("trial restore: Keycloak's realms differ from the manifest")
                checks.append(f"Keycloak database restored into a scratch database: "
                              f"{len(facts['realms'])} realm(s)")
    else:
        import sqlite3

        db_file = staged / "db" / "leakhub.sqlite3"
        conn = sqlite3.connect(str(db_file))
        try:
            result = conn.execute("PRAGMA integrity_check").fetchone()[0]
        finally:
            conn.close()
        if result != "ok":
            raise BackupError(f"trial restore: SQLite integrity check failed: {result}")
        facts = databases.app_facts_sqlite(db_file)
        _compare_counts("app", counts.get("app") or {}, facts["table_counts"])
        if facts["schema_version"] != manifest.get("schema_version"):
            raise BackupError(f"trial restore: schema version {facts['schema_version']}, "
                              f"manifest says {manifest.get('schema_version')}")
        checks.append(f"SQLite database opened and checked: schema version "
                      f"{facts['schema_version']}")
        if manifest.get("keycloak_db") == "h2":
            checks.append("Keycloak H2 files: checksums only (no trial start of Keycloak)")


def verify_backup(config, name_or_path: str, *, identity_files=(), progress=None,
                  record_result: bool = True, log_fn=None) -> Verified:
    """Decrypt, check every checksum, trial-restore into scratch databases. Records the result
    on the backup's row (when the file is in the backup directory)."""
    path = resolve_archive(config, name_or_path)
    identities = local_identities(config) + load_identity_files(identity_files)
    result = Verified(path.name, False, "")
    extracted = None
    with backup_lock(config, what=f"verify {path.name}"):
        staging = _staging(Path(config.backup_dir), ".work-verify-")
        try:
            if progress and progress.start:
                progress.start(path.stat().st_size, f"verifying {path.name}")
            _say(log_fn, f"decrypting and checking {path.name}")
            extracted = archive.extract_archive(path, identities, staging,
                                                progress=progress.update if progress else None)
            result.manifest = extracted.manifest
            result.checks.append(f"decrypted; {len(extracted.files)} file(s) match their SHA-256")
            if not extracted.authentic:
                raise BackupError("the manifest's MAC does not match any identity of this "
                                  "installation: the archive was not written by this appliance "
                                  "(or its key was replaced)")
            result.checks.append("manifest MAC verified (written by this appliance's key)")
            schema = extracted.manifest.get("schema_version", 0)
            if schema > migrations.head():
                raise BackupError(f"the backup has schema version {schema}, newer than this "
                                  f"Leakhub ({migrations.head()})")
            _say(log_fn, "trial restore into scratch databases")
            _trial_restore(config, extracted, result.checks)
            result.ok = True
            result.message = "; ".join(result.checks)
        except (BackupError, ArchiveError, DatabaseError) as exc:
            result.message = str(exc)
        except OSError as exc:
            result.message = str(_disk_error(exc, Path(config.backup_dir)))
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        if record_result and path.parent.resolve() == Path(config.backup_dir).resolve():
            try:
                reconcile(config)
                row = BackupRecord.get_or_none(BackupRecord.file_name == path.name)
                if row is not None:
                    if result.ok and row.sha256 and extracted.archive_sha256 != row.sha256:
                        result.ok = False
                        result.message = ("the file differs from the archive recorded when the "
                                          "backup was made (replaced?)")
                    if result.ok:
                        row.sha256 = row.sha256 or extracted.archive_sha256
                        row.size = extracted.archive_size
                        row.manifest = json.dumps(summary_of(extracted.manifest))
                    row.verified_at = utcnow()
                    row.verify_status = "ok" if result.ok else "failed"
                    row.verify_message = result.message[:4000]
                    row.save()
            except pw.DatabaseError as exc:
                log.warning("verification result not recorded: %s", exc)
    return result


# ---------------------------------------------------------------------------- rotation

def rotate(config, *, dry_run: bool = False, keep_daily=None, keep_weekly=None,
           keep_monthly=None, log_fn=None) -> tuple[list, list]:
    """Delete what the keep-daily/weekly/monthly rules do not keep (backup dir and copy dir)."""
    from .rotation import Item, plan

    settings = get_settings(config)
    with backup_lock(config, what="rotation"):
        reconcile(config)
        rows = records()
        items = [Item(r.file_name, r.created_at, r.verify_status) for r in rows]
        keep, delete = plan(
            items,
            keep_daily=settings.keep_daily if keep_daily is None else keep_daily,
            keep_weekly=settings.keep_weekly if keep_weekly is None else keep_weekly,
            keep_monthly=settings.keep_monthly if keep_monthly is None else keep_monthly)
        if dry_run or not delete:
            return keep, delete
        for item in delete:
            for d in _target_dirs(config):
                (d / item.name).unlink(missing_ok=True)
            _say(log_fn, f"deleted {item.name}")
        for d in _target_dirs(config):
            if d.is_dir():
                fsync_dir(d)
        reconcile(config)
        audit(config, "backup.deleted", {"files": [i.name for i in delete],
                                         "reason": "rotation"}, label="rotation")
    return keep, delete


# ---------------------------------------------------------------------------- restore

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
        value = f.read_text().strip()
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
    want_db = "postgresql" if _is_postgres(config) else "sqlite"
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
    from . import native

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
        staging = _staging(data_dir, ".restore-")
        try:
            _say(log_fn, f"decrypting and checking {path.name}")
            try:
                extracted = inspect_for_restore(config, path, identities, staging,
                                                allow_unsigned=allow_unsigned)
            except ArchiveError as exc:
                raise BackupError(str(exc)) from None
            except OSError as exc:
                raise _disk_error(exc, data_dir) from None
            manifest = extracted.manifest
            report.update(created_at=manifest.get("created_at"), kind=manifest.get("kind"),
                          schema_version=manifest.get("schema_version"),
                          organizations=[o["slug"] for o in manifest.get("organizations") or []])
            _say(log_fn, f"archive OK: made {manifest.get('created_at')} by Leakhub "
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
                _say(log_fn, f"stopping the native stack in {state.native_home}")
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
            ensure_all(config.secrets_dir, extra={IDENTITY_SECRET: archive.new_identity_text})

            if _is_postgres(config):
                targets = databases.pg_targets(config, settings)
                try:
                    with targets["super"].connect(autocommit=True):
                        pass
                except DatabaseError:
                    home = native.can_start_native_postgres(config)
                    if home is None:
                        raise
                    _say(log_fn, f"starting PostgreSQL of the native stack in {home}")
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
            _say(log_fn, "switching to the restored uploads and secrets")
            new_uploads = staging / "uploads"
            new_uploads.mkdir(exist_ok=True, mode=0o700)
            old_uploads = data_dir / f".uploads.prerestore-{stamp}"
            _swap_dir(data_dir / "uploads", new_uploads, old_uploads)
            report["uploads"] = (manifest.get("uploads") or {}).get("files", 0)
            report["secrets"] = _restore_secrets(config, staging, current_identity)
            (data_dir / REHOST_MARKER).write_text(json.dumps({
                "from_public_url": manifest.get("public_url"), "restored": path.name}) + "\n")

            # The live database is the restored one now: make the records agree with the
            # directory and write the event into the restored audit trail.
            _say(log_fn, "reconciling the backup records with the backup directory")
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
                _say(log_fn, "stopping PostgreSQL again")
                try:
                    if not database.is_closed():
                        database.close()
                except Exception:
                    pass
                started_pg.stop()
    return report


def _migrate_database(config, url: str, log_fn) -> list:
    db = open_database(url, password_file=Path(config.secrets_dir) / "postgres-leakhub-password")
    database.initialize(db)
    try:
        database.connect(reuse_if_open=True)
        applied = migrations.migrate(config.data_dir, log=lambda m: _say(log_fn, m))
        if isinstance(db, pw.SqliteDatabase):
            database.execute_sql("PRAGMA wal_checkpoint(TRUNCATE)")
            database.execute_sql("PRAGMA journal_mode=DELETE")
        return [m.version for m in applied]
    finally:
        if not database.is_closed():
            database.close()


def _restore_postgres(config, settings, targets, extracted, stamp, log_fn) -> dict:
    from urllib.parse import urlsplit, urlunsplit

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
        _say(log_fn, "restoring Leakhub's database into a new database")
        databases.restore_pg(staged / "db" / "leakhub.pgdump", app, new_app, settings)
        parts = urlsplit(config.database_url)
        migrated = _migrate_database(config, urlunsplit(parts._replace(path="/" + new_app)),
                                     log_fn)
        swaps.append((app.dbname, new_app, f"{app.dbname}_prerestore_{stamp}", app.user))
        if manifest.get("keycloak_db") == "postgres" and settings.keycloak_db == "postgres":
            new_kc = databases.scratch_name(f"{kc.dbname}_restore")
            databases.create_database(sup, new_kc, kc.user)
            made.append(new_kc)
            _say(log_fn, "restoring Keycloak's database into a new database")
            databases.restore_pg(staged / "keycloak" / "keycloak.pgdump", kc, new_kc, settings)
            swaps.append((kc.dbname, new_kc, f"{kc.dbname}_prerestore_{stamp}", kc.user))
        _say(log_fn, "switching to the restored databases")
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
    h2_live = _h2_dir(config)
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
    from ..identity.keycloak import admin_client
    from ..orgs.models import Organization

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


# ---------------------------------------------------------------------------- status

def newest_verified() -> BackupRecord | None:
    return (BackupRecord.select().where(BackupRecord.verify_status == "ok")
            .order_by(BackupRecord.created_at.desc()).first())


def newest_usable() -> BackupRecord | None:
    """The newest backup that is verified or not yet verified (a failed verification does not
    count): right after `leakctl backup create` it is the new one."""
    return (BackupRecord.select().where((BackupRecord.verify_status == "ok")
                                        | BackupRecord.verify_status.is_null())
            .order_by(BackupRecord.created_at.desc()).first())


def staleness(config, now: dt.datetime | None = None) -> str | None:
    """A warning when the newest verified backup is too old (None: all good)."""
    settings = get_settings(config)
    now = now or utcnow()
    newest = newest_verified()
    if newest is None:
        return "There is no verified backup yet."
    age = now - newest.created_at
    if age > dt.timedelta(hours=settings.max_age_hours):
        return (f"The newest verified backup is {int(age.total_seconds() // 3600)} hours old "
                f"(limit {settings.max_age_hours} hours).")
    return None
