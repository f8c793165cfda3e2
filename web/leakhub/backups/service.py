"""Backups: create, list, verify, restore, rotate — the one implementation behind `leakctl
backup`, the worker's jobs and the admin page. This module holds what they share (errors,
paths, the audit event); each operation lives in its own module:

- `lock`: one backup operation at a time per backup directory, clean-up of leftovers
- `keys`: this installation's age identity and the recipients of new archives
- `inventory`: the archives on disk, their BackupRecord rows, status of the newest one
- `create`, `verify`, `restore`: the operations; `rotation`: what to keep, and deleting the rest

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

import errno
import importlib.metadata
import logging
import uuid
from dataclasses import dataclass
from pathlib import Path

import peewee as pw

from ..audit import writer
from ..authz import Actor
from ..core.errors import Conflict, LeakhubError
from ..orgs.models import Organization
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


def leakhub_version() -> str:
    try:
        return importlib.metadata.version("leakhub")
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def say(log_fn, message):
    if log_fn:
        log_fn(message)
    log.info(message)


def disk_error(exc: OSError, where: Path) -> BackupError:
    if exc.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG):
        return BackupError(f"not enough space for the backup in {where} ({exc.strerror}); "
                           "the existing backups are unchanged")
    return BackupError(f"{exc.strerror or exc} ({getattr(exc, 'filename', None) or where})")


def target_dirs(config) -> list[Path]:
    dirs = [Path(config.backup_dir)]
    copy_dir = get_settings(config).copy_dir
    if copy_dir:
        dirs.append(Path(copy_dir))
    return dirs


def h2_dir(config) -> Path:
    return Path(get_settings(config).keycloak_h2_dir
                or Path(config.data_dir).parent / "keycloak" / "h2")


def uses_postgres(config) -> bool:
    return config.database_url.startswith(("postgresql://", "postgres://"))


def staging_dir(base: Path, prefix: str) -> Path:
    base.mkdir(parents=True, exist_ok=True, mode=0o700)
    path = base / f"{prefix}{uuid.uuid4().hex[:10]}"
    path.mkdir(mode=0o700)
    return path


@dataclass
class Progress:
    """What long operations report; the CLI shows it as a progress bar."""
    start: object = None      # start(total_bytes, label)
    update: object = None     # update(n_bytes)


def summary_of(manifest: dict) -> dict:
    out = {k: manifest.get(k) for k in MANIFEST_SUMMARY_KEYS if k in manifest}
    out["files"] = len(manifest.get("files") or {})
    out["bytes"] = sum(f.get("size", 0) for f in (manifest.get("files") or {}).values())
    return out


def operator_org(config):
    if not config.first_org_slug:
        return None
    return Organization.get_or_none(Organization.slug == config.first_org_slug)


def audit(config, action: str, details: dict, *, actor=None, label: str = "leakctl") -> None:
    """A backup event in the operator organization's audit trail (skipped, logged, when
    there is no such organization yet)."""
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
