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

The same SQL on SQLite and PostgreSQL (both know partial indexes)."""


def up(db):
    db.execute_sql(
        "CREATE INDEX IF NOT EXISTS leak_remeasured ON leak (organization_id, site_id, "
        "found_at, status, after_lpm, location_id, survey_id) WHERE after_lpm IS NOT NULL")
    db.execute_sql(
        "CREATE INDEX IF NOT EXISTS leak_follow_up ON leak (organization_id, status, due_date, "
        "location_id, survey_id, assignee_id)")
