"""Issue 19 (performance), PostgreSQL only: extended statistics on how many groups the
dashboard's leak-by-leak aggregate makes (dashboard/service.py `_leaks_by_bucket`: per site,
status, component and month found).

Without them the planner multiplies the columns' distinct counts and expects ~49,000 groups
for 100,000 demo leaks where there are 2,640; with that estimate a parallel plan would ship
every leak to one process to be grouped there, so the statement stayed on one core. With the
right estimate each worker groups its share (dashboard of a reader granted every building or
survey, 100,000 leaks, with core/db.py `parallel_scans`: ~95 → ~65 ms of SQL on 2 cores).
Kept up to date by ANALYZE (autovacuum) like any statistics. SQLite has no such statistics."""

import peewee as pw


def up(db):
    if isinstance(db.obj if hasattr(db, "obj") else db, pw.PostgresqlDatabase):
        db.execute_sql(
            "CREATE STATISTICS IF NOT EXISTS leak_dashboard_groups (ndistinct) ON site_id, "
            "status, component, (date_trunc('month', found_at)) FROM leak")
        db.execute_sql("ANALYZE leak")
