"""Issue 19 (performance): indexes for what the repair follow-up (migration 0019) added to
every dashboard and home page.

- A partial index on the leaks re-measured after their repair (`leak.after_lpm`), for the
  dashboard's savings: it subtracts the re-measured rates of repaired leaks, grouped by site
  and day found. Without it every dashboard read every leak of the organization from the
  table to find the few re-measured ones (100,000 leaks: ~120 ms of CPU on SQLite for every
  reader, the admin too). It holds only re-measured leaks, with the columns that query and
  the permission filter read.
- Overdue leaks (status still waiting for a repair, due date passed; dashboard and home
  counts): by (organization, status, due date) with the permission filter's columns, an
  index range per status; the (organization, due date) index of 0010 made SQLite fetch every
  leak with a past due date from the table to read its status (65 ms at 100,000 leaks).

- SQLite only: the dashboard's leaks counted one by one are grouped by (site, status,
  component, month found) (dashboard/service.py `_leaks_by_bucket`); an index on those with
  the month as the expression `substr(found_at, 1, 7)` lets SQLite group in index order
  instead of sorting 100,000 rows (every building: 64–91 → ~42 ms). PostgreSQL aggregates
  by hash and stores found_at as a timestamp (no such expression).

The first two: the same SQL on SQLite and PostgreSQL (both know partial indexes)."""


import peewee as pw


def up(db):
    db.execute_sql(
        "CREATE INDEX IF NOT EXISTS leak_remeasured ON leak (organization_id, site_id, "
        "found_at, status, after_lpm, location_id, survey_id) WHERE after_lpm IS NOT NULL")
    db.execute_sql(
        "CREATE INDEX IF NOT EXISTS leak_follow_up ON leak (organization_id, status, due_date, "
        "location_id, survey_id, assignee_id)")
    if not isinstance(db.obj if hasattr(db, "obj") else db, pw.PostgresqlDatabase):
        db.execute_sql(
            "CREATE INDEX IF NOT EXISTS leak_dashboard_month ON leak (organization_id, site_id, "
            "status, component, substr(found_at, 1, 7), rate_lpm, location_id, survey_id)")
