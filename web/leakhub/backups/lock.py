"""One backup operation at a time per backup directory: an flock on `<backup dir>/.lock`
(released by the kernel if the holder dies), and the clean-up of what a killed run left."""
from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import socket
from pathlib import Path

from ..core.db import utcnow
from ..core.times import utc_iso
from . import databases
from .databases import DatabaseError
from .service import BackupBusy, h2_dir, log, target_dirs, uses_postgres
from .settings import get_settings


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
                 f"{utc_iso(utcnow(), 'seconds')}\n")
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


def _clean_leftovers(config) -> None:
    """Remove what a killed run left (we hold the lock, so nothing else is using them)."""
    for d in target_dirs(config):
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
    h2 = h2_dir(config)
    if h2.parent.is_dir():
        for entry in h2.parent.glob(f".{h2.name}.prerestore-*"):
            shutil.rmtree(entry, ignore_errors=True)
    if uses_postgres(config):
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
