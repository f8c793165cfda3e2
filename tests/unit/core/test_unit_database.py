"""The unit suite runs on the database it was asked for (LEAKHUB_TEST_UNIT_DB): a PostgreSQL
run that silently fell back to SQLite would prove nothing about the PostgreSQL half of the SQL."""
import peewee as pw
import pytest

from leakhub.core.db import (
    PG_PARALLEL_SETUP_COST,
    database,
    in_batches,
    is_postgres,
    iterate,
    parallel_scans,
)

from support import unit_postgres


def test_unit_tests_run_on_the_requested_database(app):
    assert is_postgres() == unit_postgres.wanted()
    assert database.execute_sql("SELECT 1").fetchone()[0] == 1


def test_parallel_scans_lower_the_setup_cost_for_their_statements_only(app):
    """core.db.parallel_scans: PostgreSQL plans the statements inside with a parallel setup
    cost of 100; before and after (also inside an outer transaction, where SET LOCAL would
    last to its end) the connection's own value holds; an error inside leaves none behind."""
    def setup_cost():
        return database.execute_sql("SHOW parallel_setup_cost").fetchone()[0]

    if not is_postgres():
        with parallel_scans():
            assert database.execute_sql("SELECT 1").fetchone()[0] == 1
        return
    before = setup_cost()
    assert before != str(PG_PARALLEL_SETUP_COST)
    with parallel_scans():
        assert setup_cost() == str(PG_PARALLEL_SETUP_COST)
    assert setup_cost() == before
    with database.atomic():
        with parallel_scans():
            assert setup_cost() == str(PG_PARALLEL_SETUP_COST)
        assert setup_cost() == before
    with database.atomic():
        with pytest.raises(pw.DataError), parallel_scans():
            database.execute_sql("SELECT 1/0")
        assert setup_cost() == before
    assert setup_cost() == before


def test_whole_table_reads_come_in_batches_and_allow_writes_meanwhile(app, org):
    """core.db.iterate / in_batches: every row in the query's order, as models, tuples or
    lists of tuples; on PostgreSQL from a server-side cursor (the client cursor would hold
    every row at once); a row written (and committed) between two rows read does not break
    the read."""
    from leakhub.audit import writer
    from leakhub.audit.models import AuditEntry
    from leakhub.authz import Actor

    actor = Actor(organization=org, kind="system", label="test")
    for i in range(11):
        writer.event(actor, "test.entry", details={"i": i})
    query = (AuditEntry.select().where(AuditEntry.organization == org.id)
             .order_by(AuditEntry.seq))
    expected = [e.seq for e in query]
    assert len(expected) >= 11
    seen = []
    for entry in iterate(query, size=3):
        if is_postgres() and not seen:
            assert database.execute_sql("SELECT count(*) FROM pg_cursors WHERE name LIKE "
                                        "'leakhub_read_%%'").fetchone()[0] == 1
        seen.append(entry.seq)
        if len(seen) == 4:
            writer.event(actor, "test.written.meanwhile")
    # PostgreSQL reads the snapshot of its start; SQLite's cursor on the same connection may
    # also step onto the row written meanwhile (the order holds either way).
    assert seen in (expected, expected + [expected[-1] + 1]) and isinstance(entry, AuditEntry)
    assert seen == expected or not is_postgres()
    assert [t[0] for t in iterate(query.select(AuditEntry.seq).tuples(), size=4)] == \
        expected + [expected[-1] + 1]
    batches = list(in_batches(query.select(AuditEntry.seq, AuditEntry.action), size=5))
    assert [len(b) for b in batches][:-1] == [5] * (len(batches) - 1)
    assert [row[0] for b in batches for row in b] == expected + [expected[-1] + 1]
    if is_postgres():     # closed at the end of the read
        assert database.execute_sql("SELECT count(*) FROM pg_cursors").fetchone()[0] == 0
