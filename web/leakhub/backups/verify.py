"""Verify a backup: decrypt, check every checksum and the manifest's MAC, trial-restore into
scratch databases; the result is recorded on the backup's row."""
from __future__ import annotations

import json
import shutil
import sqlite3
from dataclasses import dataclass, field
from pathlib import Path

import peewee as pw

from ..core import migrations
from ..core.db import utcnow
from . import archive, databases
from .archive import ArchiveError
from .databases import DatabaseError
from .inventory import reconcile, resolve_archive
from .keys import load_identity_files, local_identities
from .lock import backup_lock
from .models import BackupRecord
from .service import BackupError, disk_error, log, say, staging_dir, summary_of, uses_postgres
from .settings import get_settings


@dataclass
class Verified:
    name: str
    ok: bool
    message: str
    manifest: dict = field(default_factory=dict)
    checks: list = field(default_factory=list)


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
        if not uses_postgres(config):
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
        staging = staging_dir(Path(config.backup_dir), ".work-verify-")
        try:
            if progress and progress.start:
                progress.start(path.stat().st_size, f"verifying {path.name}")
            say(log_fn, f"decrypting and checking {path.name}")
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
            say(log_fn, "trial restore into scratch databases")
            _trial_restore(config, extracted, result.checks)
            result.ok = True
            result.message = "; ".join(result.checks)
        except (BackupError, ArchiveError, DatabaseError) as exc:
            result.message = str(exc)
        except OSError as exc:
            result.message = str(disk_error(exc, Path(config.backup_dir)))
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
