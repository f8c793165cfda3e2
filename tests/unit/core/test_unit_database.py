"""The unit suite runs on the database it was asked for (LEAKHUB_TEST_UNIT_DB): a PostgreSQL
run that silently fell back to SQLite would prove nothing about the PostgreSQL half of the SQL."""
import peewee as pw
import pytest

from leakhub.core.db import PG_PARALLEL_SETUP_COST, database, is_postgres, parallel_scans

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
