"""Schema migrations: numbered modules `mNNNN_<name>.py`, each with `up(db)`.

Each migration defines the tables it creates with its own frozen model classes, never the
live ones in the feature folders, so that old migrations keep meaning what they meant.
Applied in order, each in its own transaction, under a database-wide lock, recorded in
`schema_version`. Runs on web start, in `leakctl migrate` and after a restore.
"""
from __future__ import annotations

import importlib
import pkgutil
import re
from dataclasses import dataclass

import peewee as pw

from ..db import database, exclusive_lock, utcnow
from ..errors import LeakhubError

_NAME = re.compile(r"^m(\d{4})_(\w+)$")


class MigrationError(LeakhubError):
    pass


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    module: str

    def load(self):
        return importlib.import_module(self.module)


def available() -> list[Migration]:
    found = []
    for info in pkgutil.iter_modules(__path__):
        m = _NAME.match(info.name)
        if m:
            found.append(Migration(int(m.group(1)), m.group(2), f"{__name__}.{info.name}"))
    found.sort(key=lambda m: m.version)
    versions = [m.version for m in found]
    if versions != list(range(1, len(found) + 1)):
        raise MigrationError(f"migration numbers must be 1..n without gaps, found {versions}")
    return found


def head() -> int:
    return available()[-1].version


def _ensure_version_table(db):
    db.execute_sql(
        "CREATE TABLE IF NOT EXISTS schema_version ("
        " version INTEGER PRIMARY KEY, name VARCHAR(100) NOT NULL, applied_at TIMESTAMP NOT NULL)"
    )


def current_version(db=None) -> int:
    db = db or database
    if "schema_version" not in db.get_tables():
        return 0
    row = db.execute_sql("SELECT MAX(version) FROM schema_version").fetchone()
    return row[0] or 0


def pending(db=None) -> list[Migration]:
    version = current_version(db)
    return [m for m in available() if m.version > version]


def migrate(lock_dir, *, target: int | None = None, log=print) -> list[Migration]:
    """Bring the schema to `target` (default: head). Returns what was applied."""
    db = database
    applied = []
    with exclusive_lock("migrations", lock_dir=lock_dir):
        _ensure_version_table(db)
        version = current_version(db)
        latest = head()
        if version > latest:
            raise MigrationError(
                f"the database has schema version {version}, newer than this Leakhub ({latest}); "
                "install the newer Leakhub version instead of downgrading"
            )
        for mig in available():
            if mig.version <= version or (target is not None and mig.version > target):
                continue
            log(f"applying migration {mig.version:04d} {mig.name}")
            with db.atomic():
                mig.load().up(db)
                db.execute_sql(
                    "INSERT INTO schema_version (version, name, applied_at) VALUES (%s, %s, %s)"
                    if isinstance(db.obj, pw.PostgresqlDatabase)
                    else "INSERT INTO schema_version (version, name, applied_at) VALUES (?, ?, ?)",
                    (mig.version, mig.name, utcnow()),
                )
            applied.append(mig)
    return applied
