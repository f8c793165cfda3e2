"""What backups there are: the archives in the backup directory, their BackupRecord rows
(reconciled with the directory, which is the truth), and the newest usable one."""
from __future__ import annotations

import datetime as dt
import hashlib
from dataclasses import dataclass
from pathlib import Path

from flask_babel import gettext as _

from ..core.db import utcnow
from . import archive
from .models import BackupDownload, BackupRecord
from .service import BackupError
from .settings import get_settings


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
        return _("There is no verified backup yet.")
    age = now - newest.created_at
    if age > dt.timedelta(hours=settings.max_age_hours):
        return _("The newest verified backup is %(hours)d hours old (limit %(limit)d hours).",
                 hours=int(age.total_seconds() // 3600), limit=settings.max_age_hours)
    return None
