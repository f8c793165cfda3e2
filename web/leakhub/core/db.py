"""The database handle, the model base classes and database-wide locks.

SQLite is the embedded default; PostgreSQL (psycopg 3) is selected by DATABASE_URL.
"""
from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import hashlib
import threading
from pathlib import Path
from urllib.parse import unquote, urlsplit

import peewee as pw
from playhouse.psycopg3_ext import Psycopg3Database

database = pw.DatabaseProxy()


def utcnow() -> dt.datetime:
    """Naive UTC timestamps everywhere in the DB; shown in the organization's time zone."""
    return dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)


def open_database(url: str, *, password_file: Path | None = None) -> pw.Database:
    if url.startswith("sqlite:///"):
        path = url[len("sqlite:///"):]
        if path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        return pw.SqliteDatabase(
            path,
            pragmas={"journal_mode": "wal", "foreign_keys": 1, "busy_timeout": 10000,
                     "cache_size": -65536,  # 64 MiB: dashboard GROUP BYs over 100k leaks
                     "synchronous": "normal"},
            check_same_thread=False,
        )
    parts = urlsplit(url)
    password = unquote(parts.password) if parts.password else None
    if password is None and password_file is not None and password_file.exists():
        password = password_file.read_text().strip()
    return Psycopg3Database(
        parts.path.lstrip("/"),
        user=unquote(parts.username) if parts.username else None,
        password=password,
        host=parts.hostname,
        port=parts.port or 5432,
        autorollback=True,
        connect_timeout=5,
    )


def init_database(config) -> pw.Database:
    db = open_database(
        config.database_url, password_file=config.secrets_dir / "postgres-leakhub-password"
    )
    database.initialize(db)
    return db


def is_postgres() -> bool:
    return isinstance(database.obj, pw.PostgresqlDatabase)


class BaseModel(pw.Model):
    class Meta:
        database = database
        legacy_table_names = False


class OrgScoped(BaseModel):
    """Base for every row of organization data.

    Queries for these rows go through `leakhub.authz.scope` — never `Model.select()` in a view.
    Subclasses declare `organization = pw.ForeignKeyField(Organization, ...)`.
    """


_thread_lock = threading.Lock()


def _lock_key(name: str) -> int:
    return int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big", signed=True)


@contextlib.contextmanager
def exclusive_lock(name: str, *, lock_dir: Path, blocking: bool = True):
    """A lock shared by every process using this database.

    PostgreSQL: a session advisory lock (released if the process dies).
    SQLite: an flock on a file beside the data (same host is the only deployment for SQLite).
    Yields True when acquired; with blocking=False yields False when another holder exists.
    """
    db = database.obj
    if isinstance(db, pw.PostgresqlDatabase):
        key = _lock_key(name)
        fn = "pg_advisory_lock" if blocking else "pg_try_advisory_lock"
        row = db.execute_sql(f"SELECT {fn}(%s)", (key,)).fetchone()
        acquired = True if blocking else bool(row[0])
        try:
            yield acquired
        finally:
            if acquired:
                db.execute_sql("SELECT pg_advisory_unlock(%s)", (key,))
    else:
        lock_dir.mkdir(parents=True, exist_ok=True)
        fh = open(lock_dir / f".{name}.lock", "a+")
        try:
            try:
                fcntl.flock(fh, fcntl.LOCK_EX | (0 if blocking else fcntl.LOCK_NB))
                acquired = True
            except BlockingIOError:
                acquired = False
            yield acquired
        finally:
            if acquired:
                fcntl.flock(fh, fcntl.LOCK_UN)
            fh.close()
