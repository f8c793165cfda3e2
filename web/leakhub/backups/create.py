"""Create a backup: one complete, encrypted and signed archive of the databases, uploads,
secrets and settings, published atomically into the backup directory (and the copy dir)."""
from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import socket
import time
from dataclasses import dataclass, field
from pathlib import Path

import peewee as pw

from ..core import crypto
from ..core import keys as data_keys
from ..core.db import utcnow
from ..core.files import fsync_dir
from ..core.times import utc_iso
from . import archive, databases
from .archive import ArchiveError
from .databases import DatabaseError
from .inventory import reconcile
from .keys import local_identities, recipients
from .lock import backup_lock
from .models import KINDS, BackupRecord
from .service import (
    SECRETS_NOT_BACKED_UP,
    BackupError,
    Progress,
    audit,
    disk_error,
    h2_dir,
    leakhub_version,
    log,
    say,
    summary_of,
    target_dirs,
    uses_postgres,
)
from .settings import get_settings


def _keycloak_dist_version(config) -> str:
    path = Path(config.data_dir).parent / "keycloak-dist" / "version.txt"
    try:
        text = path.read_text().strip()
    except OSError:
        return "unknown"
    return text.rsplit(" ", 1)[-1] if text else "unknown"


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
        if not any((d / name).exists() for d in target_dirs(config)):
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
class Created:
    record: BackupRecord | None
    name: str
    path: Path
    size: int
    sha256: str
    manifest: dict
    warnings: list = field(default_factory=list)
    seconds: float = 0.0


def create_backup(config, *, kind: str = "manual", actor=None, label: str = "leakctl",
                  progress: Progress | None = None, log_fn=None) -> Created:
    """Write one complete, encrypted archive into the backup directory (and the copy dir)."""
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
            say(log_fn, "dumping Leakhub's database")
            if uses_postgres(config):
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
                say(log_fn, "dumping Keycloak's database")
                targets = databases.pg_targets(config, settings)
                out = work / "keycloak.pgdump"
                kc.update(databases.dump_pg(targets["keycloak"], out, settings,
                                            databases.keycloak_facts_pg))
                kc["consistency"] = "pg_dump snapshot"
                entries.append(archive.Entry("keycloak/keycloak.pgdump", path=out))
            elif settings.keycloak_db == "h2":
                say(log_fn, "copying Keycloak's H2 database")
                info = databases.copy_h2(h2_dir(config), work / "h2")
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
                if sname in SECRETS_NOT_BACKED_UP or "/" in sname or sname == crypto.KEYRING_NAME:
                    continue
                entry.mode = 0o600
                entries.append(entry)
                secret_names.append(sname)
            # The data keys of the encrypted uploads and secrets, unwrapped (the archive is
            # encrypted with age): a restore on a new host wraps them under its own master key
            # and needs nothing but the appliance identity (docs/encryption.md).
            dek_doc = data_keys.dek_export(config)
            if dek_doc:
                entries.append(archive.Entry("keys/data-keys.json", mode=0o600,
                                             data=json.dumps(dek_doc).encode()))
            settings_doc = {
                "public_url": config.public_url, "internal_url": config.internal_url,
                "database": "postgresql" if uses_postgres(config) else "sqlite",
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
                    "created_at": utc_iso(created_at),
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
            say(log_fn, f"writing {name} ({len(entries)} files, {total / 2**20:.1f} MiB before "
                         "encryption)")
            written = archive.write_archive(partial, entries, make_manifest, recipients=keys,
                                            signer=signer,
                                            progress=progress.update if progress else None)
            _publish(partial, final)
        except OSError as exc:
            raise disk_error(exc, backup_dir) from None
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
