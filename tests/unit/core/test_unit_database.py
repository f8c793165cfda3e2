"""The unit suite runs on the database it was asked for (LEAKHUB_TEST_UNIT_DB): a PostgreSQL
run that silently fell back to SQLite would prove nothing about the PostgreSQL half of the SQL."""
from leakhub.core.db import database, is_postgres

from support import unit_postgres


def test_unit_tests_run_on_the_requested_database(app):
    assert is_postgres() == unit_postgres.wanted()
    assert database.execute_sql("SELECT 1").fetchone()[0] == 1
