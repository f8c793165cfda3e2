"""SQLite write transactions queue for the write lock instead of failing (issue: concurrent
writes on the embedded default). Real threads on a real database file: every transaction
reads, waits until all the others have read as well, then writes — the interleaving that made
deferred transactions fail with "database is locked" after a few milliseconds."""
from __future__ import annotations

import threading
import time

import peewee as pw
import pytest

from leakhub.core.db import SQLITE_BUSY_TIMEOUT_MS, WriteLockingSqlite, open_database

THREADS = 6


def _interleaved_writers(db: pw.Database, tmp_path) -> tuple[int, list[Exception]]:
    class Counter(pw.Model):
        value = pw.IntegerField()

        class Meta:
            database = db

    db.connect(reuse_if_open=True)
    db.create_tables([Counter])
    db.close()
    everyone_has_read = threading.Barrier(THREADS, timeout=1)
    errors: list[Exception] = []

    def writer():
        try:
            with db.connection_context():
                with db.atomic():
                    Counter.select().count()          # the read before the write
                    try:
                        everyone_has_read.wait()
                    except threading.BrokenBarrierError:
                        pass  # writers queued at BEGIN never meet here; that is the point
                    Counter.create(value=1)
        except Exception as exc:  # noqa: BLE001 — collected and asserted below
            errors.append(exc)

    threads = [threading.Thread(target=writer) for _ in range(THREADS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    with db.connection_context():
        count = Counter.select().count()
    return count, errors


def test_interleaved_read_then_write_transactions_all_succeed(tmp_path):
    db = open_database(f"sqlite:///{tmp_path}/leakhub.db")
    assert isinstance(db, WriteLockingSqlite)
    count, errors = _interleaved_writers(db, tmp_path)
    assert errors == []
    assert count == THREADS


def test_without_the_lock_at_begin_the_same_writers_fail(tmp_path):
    """The control: the test above would catch a regression to deferred transactions."""
    db = pw.SqliteDatabase(f"{tmp_path}/plain.db", check_same_thread=False,
                           pragmas={"journal_mode": "wal", "busy_timeout": 10000})
    count, errors = _interleaved_writers(db, tmp_path)
    assert errors, "deferred transactions no longer collide; the locking test proves nothing"
    assert all(isinstance(e, pw.OperationalError) and "locked" in str(e) for e in errors)
    assert count == THREADS - len(errors)


def test_wal_mode_and_busy_timeout(tmp_path):
    db = open_database(f"sqlite:///{tmp_path}/leakhub.db")
    with db.connection_context():
        assert db.execute_sql("PRAGMA journal_mode").fetchone()[0] == "wal"
        # Short: writers wait in Python (below), readers of a WAL database barely wait.
        assert db.execute_sql("PRAGMA busy_timeout").fetchone()[0] == SQLITE_BUSY_TIMEOUT_MS


def test_a_write_outside_a_transaction_waits_for_the_lock(tmp_path):
    db = open_database(f"sqlite:///{tmp_path}/leakhub.db")
    with db.connection_context():
        db.execute_sql("CREATE TABLE t (v INTEGER)")
    holding = threading.Event()

    def holder():
        with db.connection_context(), db.atomic():
            db.execute_sql("INSERT INTO t VALUES (1)")
            holding.set()
            time.sleep(0.6)   # 12× the busy timeout

    t = threading.Thread(target=holder)
    t.start()
    holding.wait(5)
    with db.connection_context():
        db.execute_sql("INSERT INTO t VALUES (2)")   # autocommit: queued, not refused
        t.join()
        assert db.execute_sql("SELECT count(*) FROM t").fetchone()[0] == 2


def test_a_writer_that_queued_too_long_gets_a_clear_503_error(tmp_path, monkeypatch):
    from leakhub.core import db as core_db
    from leakhub.core.errors import Unavailable

    monkeypatch.setattr(core_db, "SQLITE_WRITE_LOCK_TIMEOUT_S", 0.3)
    db = open_database(f"sqlite:///{tmp_path}/leakhub.db")
    holding, release = threading.Event(), threading.Event()

    def holder():
        with db.connection_context(), db.atomic():
            holding.set()
            release.wait(5)

    t = threading.Thread(target=holder)
    t.start()
    holding.wait(5)
    try:
        with db.connection_context():
            with pytest.raises(Unavailable, match="busy with other writers") as info:
                with db.atomic():
                    pass
        assert info.value.status == 503
    finally:
        release.set()
        t.join()
