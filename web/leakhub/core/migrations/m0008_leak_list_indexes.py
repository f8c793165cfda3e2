"""Indexes for the leak list at 100,000 leaks: sorting by rate (≈ cost) and due date, and a
trigram index for the free-text search on PostgreSQL (pg_trgm; skipped with a note in the
log when the extension cannot be created — the search then scans, which is still correct)."""
import logging

import peewee as pw

# The expression the leak list searches (leaks/service.py SEARCH_COLUMNS); the index must be
# built on exactly this expression for PostgreSQL to use it.
SEARCH_EXPR = ("(tag || ' ' || description || ' ' || spare_part || ' ' || found_by || ' ' "
               "|| recommended_action)")


def up(db):
    db.execute_sql('CREATE INDEX IF NOT EXISTS leak_organization_id_rate_lpm '
                   'ON leak (organization_id, rate_lpm)')
    db.execute_sql('CREATE INDEX IF NOT EXISTS leak_organization_id_due_date '
                   'ON leak (organization_id, due_date)')
    if not isinstance(db.obj if hasattr(db, "obj") else db, pw.PostgresqlDatabase):
        return
    try:
        with db.atomic():  # a savepoint: a refused extension must not abort the migration
            db.execute_sql("CREATE EXTENSION IF NOT EXISTS pg_trgm")
    except pw.DatabaseError as exc:
        logging.getLogger("leakhub.migrations").warning(
            "pg_trgm not available (%s); the leak search works without its index",
            str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__)
        return
    db.execute_sql(f"CREATE INDEX IF NOT EXISTS leak_search_trgm ON leak "
                   f"USING gin ({SEARCH_EXPR} gin_trgm_ops)")
