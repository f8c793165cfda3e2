"""Issue 19 (performance): a partial index on the leaks re-measured after their repair
(`leak.after_lpm`, migration 0019), for the dashboard's savings: it subtracts the
re-measured rates of repaired leaks, grouped by site and day found. Without the index every
dashboard read every leak of the organization from the table to find the few re-measured
ones (100,000 leaks: ~120 ms of CPU on SQLite for every reader, the admin too). The index
holds only re-measured leaks, with the columns that query and the permission filter read.
The same SQL on SQLite and PostgreSQL (both know partial indexes)."""


def up(db):
    db.execute_sql(
        "CREATE INDEX IF NOT EXISTS leak_remeasured ON leak (organization_id, site_id, "
        "found_at, status, after_lpm, location_id, survey_id) WHERE after_lpm IS NOT NULL")
