"""`leak_daily`: leaks counted per (organization, site, status, component, day found), kept by
database triggers on every write to `leak`, so the dashboard aggregates a few thousand rows
instead of every leak (100,000 leaks of the demo seed: 24,000 rows; real surveys find their
leaks on a few days a year, so real registers fold further).

Why days: the energy settings change on arbitrary dates, and a leak's figures use the settings
valid on the day it was found; a row per day keeps that exact. Why integers: the rate sum is
kept in thousandths of l/min (the leak's own precision), so adding and subtracting millions of
times never drifts (SQLite has no exact decimal type).

Every write path goes through the triggers (the service, imports and the demo seed insert with
plain SQL, bulk updates, cascades, location path changes that move `site_id`):
- PostgreSQL: one statement-level trigger per operation with transition tables, so a bulk
  statement (an import of 10,000 rows, a bulk status change) is one grouped upsert, its keys in
  a fixed order (concurrent writers lock rows in the same order). `leak.site_id` is set by a
  BEFORE trigger (migration 0010), so the new rows already carry it.
- SQLite: row-level triggers. `leak.site_id` is set by an AFTER INSERT trigger that updates the
  row; that trigger is rebuilt here to count the new row first (under the site it was inserted
  with) and then set `site_id`, whose update trigger moves the count: one body, a fixed order.

A site id of 0 stands for "no site" (a location path that names none): the unique key needs a
value there (NULLs are distinct in a unique index). Rows whose count reaches 0 are deleted.
No foreign key to `organization`: rows come and go with the leaks of the organization.
"""
import peewee as pw

KEY = "organization_id, site_id, status, component, found_day"


def _is_pg(db) -> bool:
    return isinstance(db.obj if hasattr(db, "obj") else db, pw.PostgresqlDatabase)


def _create_table(db, pg: bool):
    serial = "SERIAL PRIMARY KEY" if pg else "INTEGER PRIMARY KEY AUTOINCREMENT"
    db.execute_sql(f"""
        CREATE TABLE leak_daily (
            id {serial},
            organization_id INTEGER NOT NULL,
            site_id INTEGER NOT NULL,
            status VARCHAR(16) NOT NULL,
            component VARCHAR(24) NOT NULL,
            found_day DATE NOT NULL,
            n INTEGER NOT NULL,
            rate_mlpm BIGINT NOT NULL)""")
    db.execute_sql(f"CREATE UNIQUE INDEX leak_daily_key ON leak_daily ({KEY})")
    # The dashboard's trend: leaks found per month as index ranges.
    db.execute_sql("CREATE INDEX leak_daily_found ON leak_daily (organization_id, found_day, n)")


def _pg(db):
    # The rows of a statement as signed contributions, grouped per key; keys whose
    # contributions cancel out (an edit of the description) are left alone.
    delta = """
        SELECT organization_id, COALESCE(site_id, 0) AS site_id, status, component,
               CAST(found_at AS DATE) AS found_day, SUM(sign) AS n,
               SUM(sign * CAST(rate_lpm * 1000 AS BIGINT)) AS rate_mlpm
        FROM (ROWS) AS c
        GROUP BY 1, 2, 3, 4, 5
        HAVING SUM(sign) <> 0 OR SUM(sign * CAST(rate_lpm * 1000 AS BIGINT)) <> 0
        ORDER BY 1, 2, 3, 4, 5"""
    upsert = f"""
        INSERT INTO leak_daily ({KEY}, n, rate_mlpm)
        {delta}
        ON CONFLICT ({KEY}) DO UPDATE SET n = leak_daily.n + EXCLUDED.n,
                                          rate_mlpm = leak_daily.rate_mlpm + EXCLUDED.rate_mlpm"""
    prune = f"""
        DELETE FROM leak_daily d USING (SELECT DISTINCT organization_id,
            COALESCE(site_id, 0) AS site_id, status, component,
            CAST(found_at AS DATE) AS found_day FROM old_rows) o
        WHERE d.n = 0 AND (d.{KEY.replace(', ', ', d.')}) = (o.{KEY.replace(', ', ', o.')})"""
    new = "SELECT *, 1 AS sign FROM new_rows"
    old = "SELECT *, -1 AS sign FROM old_rows"
    bodies = {
        "insert": upsert.replace("ROWS", new) + ";",
        "update": upsert.replace("ROWS", f"{new} UNION ALL {old}") + ";" + prune + ";",
        "delete": upsert.replace("ROWS", old) + ";" + prune + ";",
    }
    refs = {"insert": "NEW TABLE AS new_rows", "update": "OLD TABLE AS old_rows NEW TABLE AS "
            "new_rows", "delete": "OLD TABLE AS old_rows"}
    for op, body in bodies.items():
        db.execute_sql(f"""
            CREATE OR REPLACE FUNCTION leak_daily_{op}() RETURNS trigger AS $$
            BEGIN
                {body}
                RETURN NULL;
            END $$ LANGUAGE plpgsql""")
        # An UPDATE trigger with transition tables may not name columns: it fires on every
        # UPDATE of leak, and the grouped delta is empty unless a counted column changed.
        db.execute_sql(f"CREATE TRIGGER leak_daily_{op} AFTER {op.upper()} ON leak "
                       f"REFERENCING {refs[op]} FOR EACH STATEMENT "
                       f"EXECUTE FUNCTION leak_daily_{op}()")


def _sqlite_key(row: str) -> str:
    return (f"{row}.organization_id, COALESCE({row}.site_id, 0), {row}.status, "
            f"{row}.component, date({row}.found_at)")


def _sqlite(db):
    mlpm = "CAST(ROUND({row}.rate_lpm * 1000) AS INTEGER)"
    match = ("organization_id = {row}.organization_id AND site_id = COALESCE({row}.site_id, 0) "
             "AND status = {row}.status AND component = {row}.component "
             "AND found_day = date({row}.found_at)")
    add = (f"INSERT INTO leak_daily ({KEY}, n, rate_mlpm) VALUES ({_sqlite_key('NEW')}, 1, "
           f"{mlpm.format(row='NEW')}) ON CONFLICT ({KEY}) DO UPDATE SET n = n + 1, "
           f"rate_mlpm = rate_mlpm + excluded.rate_mlpm;")
    remove = (f"UPDATE leak_daily SET n = n - 1, rate_mlpm = rate_mlpm - "
              f"{mlpm.format(row='OLD')} WHERE {match.format(row='OLD')}; "
              f"DELETE FROM leak_daily WHERE n = 0 AND {match.format(row='OLD')};")
    changed = " OR ".join(f"OLD.{c} IS NOT NEW.{c}" for c in (
        "organization_id", "site_id", "status", "component", "found_at", "rate_lpm"))
    # Rebuilt from migration 0010: count the new row, then set its site (see the docstring).
    site = ("(SELECT CAST(substr(l.path, 2, instr(substr(l.path, 2), '/') - 1) AS INTEGER) "
            "FROM location l WHERE l.id = NEW.location_id AND l.path GLOB '/[0-9]*/*')")
    db.execute_sql("DROP TRIGGER IF EXISTS leak_site_id_insert")
    db.execute_sql(f"CREATE TRIGGER leak_site_id_insert AFTER INSERT ON leak BEGIN {add} "
                   f"UPDATE leak SET site_id = {site} WHERE id = NEW.id; END")
    db.execute_sql("CREATE TRIGGER leak_daily_update AFTER UPDATE OF organization_id, site_id, "
                   f"status, component, found_at, rate_lpm ON leak WHEN {changed} "
                   f"BEGIN {remove} {add} END")
    db.execute_sql(f"CREATE TRIGGER leak_daily_delete AFTER DELETE ON leak BEGIN {remove} END")


def backfill_sql(pg: bool) -> str:
    day = "CAST(found_at AS DATE)" if pg else "date(found_at)"
    mlpm = "CAST(rate_lpm * 1000 AS BIGINT)" if pg else "CAST(ROUND(rate_lpm * 1000) AS INTEGER)"
    return (f"INSERT INTO leak_daily ({KEY}, n, rate_mlpm) "
            f"SELECT organization_id, COALESCE(site_id, 0), status, component, {day}, "
            f"COUNT(*), SUM({mlpm}) FROM leak GROUP BY 1, 2, 3, 4, 5 ORDER BY 1, 2, 3, 4, 5")


def up(db):
    pg = _is_pg(db)
    _create_table(db, pg)
    db.execute_sql(backfill_sql(pg))
    (_pg if pg else _sqlite)(db)
