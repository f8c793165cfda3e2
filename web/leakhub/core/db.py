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
import psycopg
from playhouse.pool import PooledDatabase, PooledPsycopg3Database
from playhouse.psycopg3_ext import Psycopg3Database

database = pw.DatabaseProxy()


def utcnow() -> dt.datetime:
    """Naive UTC timestamps everywhere in the DB; shown in the organization's time zone."""
    return dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)


class PooledPostgres(PooledPsycopg3Database):
    """The web server's connections, kept between requests: a new PostgreSQL connection costs
    a few ms and its first queries run on a cold backend (the dashboard at 100,000 leaks took
    ~40 ms longer). A pooled connection is checked before each reuse, as PostgreSQL may have
    restarted since."""

    def _is_closed(self, conn):
        if super()._is_closed(conn):
            return True
        try:
            conn.execute("SELECT 1")
        except psycopg.Error:
            return True
        return False


class WriteLockingSqlite(pw.SqliteDatabase):
    """SQLite whose transactions take the write lock when they begin (`BEGIN IMMEDIATE`).

    A deferred transaction that reads and then writes cannot wait for the lock: when another
    connection wrote meanwhile, SQLite answers SQLITE_BUSY at once (waiting could deadlock),
    whatever busy_timeout says. Concurrent requests then failed with "database is locked"
    after a few ms. Taking the lock at BEGIN makes writers queue (up to busy_timeout) before
    they read anything; readers outside transactions are never blocked (WAL). Every write
    path (web, API, worker, leakctl, imports) opens its transaction through `atomic()`, so
    this one place covers them all. PostgreSQL keeps its own MVCC behaviour."""

    def begin(self, lock_type: str | None = "IMMEDIATE"):
        super().begin(lock_type)


# How long a writer queues for SQLite's write lock before it gives up. Long enough for the
# largest single transaction (an import of thousands of rows), short of gunicorn's timeout.
SQLITE_BUSY_TIMEOUT_MS = 30_000


def open_database(url: str, *, password_file: Path | None = None,
                  pooled: bool = False) -> pw.Database:
    """`pooled` only for the long-running web server: command-line tools must really close
    their connections (a restore renames and drops databases, which needs them gone)."""
    if url.startswith("sqlite:///"):
        path = url[len("sqlite:///"):]
        if path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        return WriteLockingSqlite(
            path,
            timeout=SQLITE_BUSY_TIMEOUT_MS / 1000,
            pragmas={"journal_mode": "wal", "foreign_keys": 1,
                     "busy_timeout": SQLITE_BUSY_TIMEOUT_MS,
                     "cache_size": -65536,  # 64 MiB: dashboard GROUP BYs over 100k leaks
                     "synchronous": "normal"},
            check_same_thread=False,
        )
    parts = urlsplit(url)
    password = unquote(parts.password) if parts.password else None
    if password is None and password_file is not None and password_file.exists():
        password = password_file.read_text().strip()
    kind, pool = (PooledPostgres, {"max_connections": 32, "stale_timeout": 600, "timeout": 30}) \
        if pooled else (Psycopg3Database, {})
    return kind(
        parts.path.lstrip("/"),
        **pool,
        user=unquote(parts.username) if parts.username else None,
        password=password,
        host=parts.hostname,
        port=parts.port or 5432,
        autorollback=True,
        connect_timeout=5,
    )


def init_database(config, *, pooled: bool = False) -> pw.Database:
    db = open_database(
        config.database_url, password_file=config.secrets_dir / "postgres-leakhub-password",
        pooled=pooled,
    )
    database.initialize(db)
    return db


def close_all_connections() -> None:
    """Really close every connection (pooled ones too): before gunicorn forks its workers,
    which must not share the master's sockets."""
    db = database.obj
    if isinstance(db, PooledDatabase):
        db.close_all()
    elif db is not None and not db.is_closed():
        db.close()


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
