"""The database handle, the model base classes and database-wide locks.

SQLite is the embedded default; PostgreSQL (psycopg 3) is selected by DATABASE_URL.
"""
from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import hashlib
import itertools
import logging
import random
import threading
import time
from pathlib import Path
from urllib.parse import unquote, urlsplit

import peewee as pw
import psycopg
from playhouse.pool import PooledDatabase, PooledPsycopg3Database
from playhouse.psycopg3_ext import Psycopg3Database

from .errors import Unavailable

database = pw.DatabaseProxy()

_peewee_format_date_time = pw.format_date_time


def _format_date_time(value, formats, post_process=None):
    """peewee reads every DATETIME/DATE text (SQLite) with strptime over a list of formats:
    ~20 µs a value, two tries for a timestamp without a fraction. At 50 leaks × 8 dates that
    was a tenth of the leak list's time (issue 19). The layouts peewee itself stores
    (YYYY-MM-DD, YYYY-MM-DD HH:MM:SS, YYYY-MM-DD HH:MM:SS.ffffff) parse with fromisoformat to
    the same value in well under a µs; anything else still goes peewee's way."""
    if isinstance(value, str) and value[4:5] == "-" and (
            len(value) == 10 or (len(value) in (19, 26) and value[10] == " ")):
        try:
            parsed = dt.datetime.fromisoformat(value)
        except ValueError:
            return _peewee_format_date_time(value, formats, post_process)
        return post_process(parsed) if post_process else parsed
    return _peewee_format_date_time(value, formats, post_process)


# Module-level in peewee: DateTimeField, DateField and TimeField call it by this name.
pw.format_date_time = _format_date_time


def utcnow() -> dt.datetime:
    """Naive UTC timestamps everywhere in the DB; shown in the organization's time zone."""
    return dt.datetime.now(dt.UTC).replace(tzinfo=None)


_after_commit = threading.local()


class AfterCommit:
    """Database mixin: callbacks registered with `after_commit` run once the transaction
    commits and are dropped when it rolls back (files that belong to rows, e.g. a floor
    plan's, are removed only when the row's deletion really happened); those registered with
    `also_on_rollback` run either way (a file written for a row that was not committed)."""

    def commit(self):
        result = super().commit()
        _run_pending(rolled_back=False)
        return result

    def rollback(self):
        try:
            return super().rollback()
        finally:
            _run_pending(rolled_back=True)


def _run_pending(*, rolled_back: bool) -> None:
    pending, _after_commit.pending = getattr(_after_commit, "pending", []), []
    for fn, on_rollback in pending:
        if rolled_back and not on_rollback:
            continue
        try:
            fn()
        except Exception:  # a cleanup must not turn a committed change into an error
            logging.getLogger("leakhub.db").exception("after-commit callback failed")


def after_commit(fn, *, also_on_rollback: bool = False) -> None:
    """Run `fn()` after the current transaction commits (now when there is none); with
    `also_on_rollback` after it rolls back too. A savepoint that rolls back does not drop
    it: `fn` checks the committed state itself (idempotent)."""
    if database.obj is None or not database.in_transaction():
        fn()
        return
    if not hasattr(_after_commit, "pending"):
        _after_commit.pending = []
    _after_commit.pending.append((fn, also_on_rollback))


class Postgres(AfterCommit, Psycopg3Database):
    """PostgreSQL for command-line tools and the worker (not pooled)."""


class PooledPostgres(AfterCommit, PooledPsycopg3Database):
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


# Writers queue for SQLite's write lock in Python, not in SQLite's busy handler (see
# WriteLockingSqlite); the handler only bridges the short waits of readers.
SQLITE_BUSY_TIMEOUT_MS = 50
# How long a writer queues before it gives up: long enough for the largest single
# transaction (an import of thousands of rows), short of gunicorn's timeout.
SQLITE_WRITE_LOCK_TIMEOUT_S = 30.0
_WRITE_VERBS = ("INSERT", "UPDATE", "DELETE", "REPLACE")


def _is_write(sql: str) -> bool:
    return sql.lstrip()[:7].upper().startswith(_WRITE_VERBS)


class DatabaseBusy(Unavailable):
    """The write lock stayed taken for longer than a writer queues (SQLite)."""


class WriteLockingSqlite(AfterCommit, pw.SqliteDatabase):
    """SQLite whose writers take the write lock before they do anything (`BEGIN IMMEDIATE`).

    A deferred transaction that reads and then writes cannot wait for the lock: when another
    connection wrote meanwhile, SQLite answers SQLITE_BUSY at once (waiting could deadlock),
    whatever busy_timeout says; concurrent requests failed with "database is locked" after a
    few ms. So every transaction begins IMMEDIATE, and a write statement outside a
    transaction gets one of its own. Readers outside transactions are never blocked (WAL).

    The wait for the lock happens here, in Python, with the connection idle: SQLite's busy
    handler sleeps while holding the connection's mutex, and the garbage collector of the
    thread that holds the write lock may finalize a cursor of that very connection (a query
    left unfinished inside a reference cycle), which needs the mutex: both threads then
    waited for each other until the busy timeout ran out (30 s stalls, then 500s).

    Every write path (web, API, worker, leakctl, imports) goes through `atomic()` or a
    write statement, so this one class covers them all. PostgreSQL keeps its behaviour."""

    def begin(self, lock_type: str | None = "IMMEDIATE"):
        deadline = time.monotonic() + SQLITE_WRITE_LOCK_TIMEOUT_S
        pause = 0.002
        while True:
            try:
                return super().begin(lock_type)
            except pw.OperationalError as exc:
                if "locked" not in str(exc):
                    raise
                if time.monotonic() > deadline:
                    raise DatabaseBusy(
                        f"the database stayed busy with other writers for "
                        f"{SQLITE_WRITE_LOCK_TIMEOUT_S:.0f} s; try again") from exc
            time.sleep(pause * random.uniform(0.5, 1.5))
            pause = min(pause * 2, 0.05)

    def execute_sql(self, sql, params=None, commit=None):
        if _is_write(sql) and not self.in_transaction():
            with self.atomic():
                return super().execute_sql(sql, params)
        return super().execute_sql(sql, params)


PG_WORK_MEM = "16MB"


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
        if pooled else (Postgres, {})
    return kind(
        parts.path.lstrip("/"),
        **pool,
        user=unquote(parts.username) if parts.username else None,
        password=password,
        host=parts.hostname,
        port=parts.port or 5432,
        autorollback=True,
        connect_timeout=5,
        # The dashboard of a reader limited to buildings or surveys groups up to every leak of
        # the organization; with PostgreSQL's default 4 MB the sort spilled to disk: 212 →
        # 131 ms for 100,000 leaks (issue 19). Per sort or hash step of a query, so at most a
        # few times this per connection, and only while such a query runs.
        options=f"-c work_mem={PG_WORK_MEM}",
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


PG_PARALLEL_SETUP_COST = 100


@contextlib.contextmanager
def parallel_scans():
    """PostgreSQL: the statements inside may be planned with parallel workers on the
    planner's estimate alone (parallel_setup_cost 100 instead of 1,000, in a transaction).
    For aggregates over up to every leak of an organization: a dashboard of a reader limited
    to buildings or surveys groups 100,000 leaks in ~95 ms on one core and ~65 ms on two; its
    plan with the default costs stayed on one core by a hair. Not for every connection: the
    leak list's page count then went parallel too and took 6 → 14 ms (issue 19). SQLite: no
    effect."""
    if not is_postgres():
        yield
        return
    with database.atomic():
        database.execute_sql(f"SET LOCAL parallel_setup_cost = {PG_PARALLEL_SETUP_COST}")
        yield
        # Inside an outer transaction `atomic` is a savepoint, and SET LOCAL would outlive its
        # release (a rollback to it, on an error, undoes the SET by itself).
        database.execute_sql("SET LOCAL parallel_setup_cost TO DEFAULT")


_cursor_names = itertools.count(1)


@contextlib.contextmanager
def _server_cursor(query, size: int):
    """PostgreSQL: `query` executed on a server-side cursor, which hands rows over `size` at
    a time; the client cursor would fetch every row at once (364,000 audit entries: +360 MB).
    WITH HOLD: it outlives a commit, so the caller may write (and commit, in autocommit)
    while it reads."""
    sql, params = query.sql()
    name = f"leakhub_read_{next(_cursor_names)}"
    with database.connection().cursor(name=name, withhold=True) as cursor:
        cursor.itersize = size
        cursor.execute(sql, params)
        yield cursor


def in_batches(query, size: int = 2000):
    """The rows of `query` (tuples, as the raw cursor gives them) in lists of up to `size`,
    memory bounded: for reads over a whole organization's data (exports, the security
    review's pass over the audit trail). SQLite steps its cursor."""
    if not is_postgres():
        cursor = database.execute(query)
        while batch := cursor.fetchmany(size):
            yield batch
        return
    with _server_cursor(query, size) as cursor:
        while batch := cursor.fetchmany(size):
            yield batch


class _Prefetching:
    """What peewee's row wrappers read of a cursor (fetchone, description), served from
    `fetchmany` batches: a server-side cursor's fetchone is a round trip per row."""

    def __init__(self, cursor, size: int):
        self.cursor, self.size, self.description = cursor, size, cursor.description
        self._rows: list = []

    def fetchone(self):
        if not self._rows:
            self._rows = self.cursor.fetchmany(self.size)[::-1]
            if not self._rows:
                return None
        return self._rows.pop()

    def close(self):            # the server cursor is closed by its `with`
        pass


def iterate(query, size: int = 2000):
    """`query.iterator()` (model instances, dicts or tuples as the query says) with memory
    bounded on PostgreSQL too: for passes over a whole organization's audit trail or events
    (verification, the audit CSV, retention, erasure)."""
    if not is_postgres():
        yield from query.clone().iterator()     # a fresh cursor, also for a query run before
        return
    with _server_cursor(query, size) as cursor:
        # peewee builds its rows from any cursor through the query's own row wrapper.
        yield from query._get_cursor_wrapper(_Prefetching(cursor, size)).iterator()


def on_a_connection_of_its_own(fn):
    """`fn()` (a short write) on a connection of its own, in a helper thread; returns its
    result. For a write made while this thread's connection still steps through a long read:
    on SQLite that read holds a snapshot, and a connection whose snapshot is older than
    another connection's commit can never take the write lock (SQLITE_BUSY_SNAPSHOT) until
    the read ends. PostgreSQL has no such limit: `fn` runs here."""
    if is_postgres():
        return fn()
    box: dict = {}

    def run():
        try:
            database.connect(reuse_if_open=True)
            box["value"] = fn()
        except BaseException as exc:  # handed to the caller's thread
            box["error"] = exc
        finally:
            if not database.is_closed():
                database.close()

    helper = threading.Thread(target=run, name="leakhub-side-write")
    helper.start()
    helper.join()
    if "error" in box:
        raise box["error"]
    return box.get("value")


def bulk_insert(model, rows: list[dict], *, batch: int = 1000) -> None:
    """INSERT many rows of `model` (dicts of field name -> value, all with the keys of the
    first) on the raw cursor: peewee's insert_many builds SQL text value by value, which
    dominates at 10,000+ rows. Values go through each field's db_value, as peewee's own
    insert would. SQLite: executemany of one prepared statement, `batch` rows at a time;
    PostgreSQL: one multi-row VALUES statement per chunk (executemany would cost a round trip
    per row; at most 65,535 parameters per statement). Run it inside the caller's transaction
    (imports, the demo seed and the audit writer do), so the rows land all or nothing."""
    if not rows:
        return
    names = list(rows[0])
    fields = [model._meta.fields[n] for n in names]
    params = [tuple(f.db_value(r.get(n)) for f, n in zip(fields, names, strict=False))
              for r in rows]
    head = 'INSERT INTO "{}" ({}) VALUES '.format(
        model._meta.table_name, ", ".join(f'"{f.column_name}"' for f in fields))
    cursor = database.cursor()
    if is_postgres():
        per = max(1, min(batch, 65000 // len(fields)))
        row_sql = "(" + ", ".join(["%s"] * len(fields)) + ")"
        for i in range(0, len(params), per):
            chunk = params[i:i + per]
            cursor.execute(head + ", ".join([row_sql] * len(chunk)),
                           [v for row in chunk for v in row])
        return
    row_sql = "(" + ", ".join([database.obj.param] * len(fields)) + ")"
    for i in range(0, len(params), batch):
        cursor.executemany(head + row_sql, params[i:i + batch])


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
