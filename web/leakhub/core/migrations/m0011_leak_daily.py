"""Per-day leak counts for the dashboard, kept by database triggers on every write to `leak`,
so the dashboard aggregates a few thousand rows instead of every leak:

- `leak_daily`: leaks per (organization, site, status, component, day found) with Σ rate
  (100,000 leaks of the demo seed: 24,000 rows; real surveys find their leaks on a few days a
  year, so real registers fold further);
- `leak_repaired_daily`: repaired or verified leaks per (organization, site, repair date),
  for the trend of repairs.

Why days: the energy settings change on arbitrary dates, and a leak's figures use the settings
valid on the day it was found; a row per day keeps that exact. Why integers: the rate sum is
kept in thousandths of l/min (the leak's own precision), so adding and subtracting millions of
times never drifts (SQLite has no exact decimal type).

Every write path goes through the triggers (the service, imports and the demo seed insert with
plain SQL, bulk updates, cascades, location path changes that move `site_id`):
- PostgreSQL: one statement-level trigger per operation with transition tables, so a bulk
  statement (an import, a bulk status change) is one grouped upsert per table, its keys in a
  fixed order. `leak.site_id` is set by a BEFORE trigger (migration 0010), so the new rows
  already carry it.
- SQLite: row-level triggers. `leak.site_id` is set by an AFTER INSERT trigger that updates the
  row; that trigger is rebuilt here to count the new row first (under the site it was inserted
  with) and then set `site_id`, whose update trigger moves the count: one body, a fixed order.

A site id of 0 stands for "no site" (a location path that names none): the unique key needs a
value there (NULLs are distinct in a unique index). Rows whose count reaches 0 are deleted.
No foreign key to `organization`: rows come and go with the leaks of the organization.
Writers of one organization take its audit chain head first (audit/writer.py `begin`), so
they lock these rows in one order.
"""
from dataclasses import dataclass

import peewee as pw

FIXED = "('repaired', 'verified')"  # leaks/models.py FIXED_STATUSES when this was written


@dataclass(frozen=True)
class Rollup:
    table: str
    key: tuple[tuple[str, str, str], ...]  # (column, its type, expression over a leak row "r")
    sums: tuple[tuple[str, str], ...]      # (column, expression over "r"): Σ per key, with n
    where: str = ""                         # which leak rows count (over "r"); "" = all

    @property
    def columns(self) -> str:
        return ", ".join(c for c, _t, _e in self.key)


def _day(pg: bool, expr: str) -> str:
    return f"CAST({expr} AS DATE)" if pg else f"date({expr})"


def _mlpm(pg: bool) -> str:
    return ("CAST(r.rate_lpm * 1000 AS BIGINT)" if pg
            else "CAST(ROUND(r.rate_lpm * 1000) AS INTEGER)")


def rollups(pg: bool) -> list[Rollup]:
    org_site = (("organization_id", "INTEGER", "r.organization_id"),
                ("site_id", "INTEGER", "COALESCE(r.site_id, 0)"))
    return [
        Rollup("leak_daily", org_site + (
            ("status", "VARCHAR(16)", "r.status"), ("component", "VARCHAR(24)", "r.component"),
            ("found_day", "DATE", _day(pg, "r.found_at"))),
            (("rate_mlpm", _mlpm(pg)),)),
        Rollup("leak_repaired_daily", org_site + (("repaired_day", "DATE", "r.repaired_at"),),
               (), where=f"r.status IN {FIXED} AND r.repaired_at IS NOT NULL"),
    ]


# Columns of `leak` a rollup reads: an UPDATE that changes none of them changes no count.
COUNTED = ("organization_id", "site_id", "status", "component", "found_at", "rate_lpm",
           "repaired_at")


def _create_tables(db, pg: bool):
    serial = "SERIAL PRIMARY KEY" if pg else "INTEGER PRIMARY KEY AUTOINCREMENT"
    for ru in rollups(pg):
        cols = ", ".join(f"{c} {t} NOT NULL" for c, t, _e in ru.key)
        sums = "".join(f", {c} BIGINT NOT NULL" for c, _e in ru.sums)
        db.execute_sql(f"CREATE TABLE {ru.table} (id {serial}, {cols}, n INTEGER NOT NULL"
                       f"{sums})")
        db.execute_sql(f"CREATE UNIQUE INDEX {ru.table}_key ON {ru.table} ({ru.columns})")
    # The trends: leaks found or repaired per day since a date.
    db.execute_sql("CREATE INDEX leak_daily_found ON leak_daily (organization_id, found_day, n)")
    db.execute_sql("CREATE INDEX leak_repaired_daily_day ON leak_repaired_daily "
                   "(organization_id, repaired_day, n)")


def _pg_statements(ru: Rollup, op: str) -> list[str]:
    """SQL for one statement's rows (transition tables new_rows / old_rows)."""
    exprs = ", ".join(f"{e} AS {c}" for c, _t, e in ru.key)
    signed = ", ".join(["SUM(r.sign) AS n"] + [f"SUM(r.sign * {e}) AS {c}"
                                                 for c, e in ru.sums])
    nonzero = " OR ".join(["SUM(r.sign) <> 0"] + [f"SUM(r.sign * {e}) <> 0"
                                                   for _c, e in ru.sums])
    rows = {"insert": "SELECT *, 1 AS sign FROM new_rows",
            "delete": "SELECT *, -1 AS sign FROM old_rows",
            "update": "SELECT *, 1 AS sign FROM new_rows UNION ALL "
                      "SELECT *, -1 AS sign FROM old_rows"}[op]
    where = f"WHERE {ru.where}" if ru.where else ""
    positions = ", ".join(str(i + 1) for i in range(len(ru.key)))
    sums = ", ".join(["n"] + [c for c, _e in ru.sums])
    update = ", ".join(f"{c} = {ru.table}.{c} + EXCLUDED.{c}" for c in ["n"] + [
        c for c, _e in ru.sums])
    # The rows of the statement as signed contributions, grouped per key; keys whose
    # contributions cancel out (an edit of the description) are left alone.
    out = [f"INSERT INTO {ru.table} ({ru.columns}, {sums}) "
           f"SELECT {exprs}, {signed} FROM ({rows}) AS r {where} "
           f"GROUP BY {positions} HAVING {nonzero} ORDER BY {positions} "
           f"ON CONFLICT ({ru.columns}) DO UPDATE SET {update}"]
    if op != "insert":
        match = " AND ".join(f"d.{c} = o.{c}" for c, _t, _e in ru.key)
        out.append(f"DELETE FROM {ru.table} d USING (SELECT DISTINCT {exprs} FROM old_rows r "
                   f"{where}) o WHERE d.n = 0 AND {match}")
    return out


def _pg(db):
    refs = {"insert": "NEW TABLE AS new_rows", "update": "OLD TABLE AS old_rows NEW TABLE AS "
            "new_rows", "delete": "OLD TABLE AS old_rows"}
    for op in ("insert", "update", "delete"):
        body = "".join(f"{sql};\n" for ru in rollups(True) for sql in _pg_statements(ru, op))
        db.execute_sql(f"""
            CREATE OR REPLACE FUNCTION leak_daily_{op}() RETURNS trigger AS $$
            BEGIN
                {body}
                RETURN NULL;
            END $$ LANGUAGE plpgsql""")
        # An UPDATE trigger with transition tables may not name columns: it fires on every
        # UPDATE of leak, and the grouped deltas are empty unless a counted column changed.
        db.execute_sql(f"CREATE TRIGGER leak_daily_{op} AFTER {op.upper()} ON leak "
                       f"REFERENCING {refs[op]} FOR EACH STATEMENT "
                       f"EXECUTE FUNCTION leak_daily_{op}()")


def _sqlite_add_remove(ru: Rollup) -> tuple[str, str]:
    """Trigger statements counting NEW in / OLD out of one rollup."""
    def over(row: str, expr: str) -> str:
        return expr.replace("r.", f"{row}.")

    sums = ", ".join(["n"] + [c for c, _e in ru.sums])
    new_values = ", ".join([over("NEW", e) for _c, _t, e in ru.key] + ["1"] + [
        over("NEW", e) for _c, e in ru.sums])
    update = ", ".join(["n = n + 1"] + [f"{c} = {c} + excluded.{c}" for c, _e in ru.sums])
    add = (f"INSERT INTO {ru.table} ({ru.columns}, {sums}) SELECT {new_values} "
           f"WHERE {over('NEW', ru.where) or 'true'} "
           f"ON CONFLICT ({ru.columns}) DO UPDATE SET {update};")
    match = " AND ".join(f"{c} = {over('OLD', e)}" for c, _t, e in ru.key)
    if ru.where:
        match += f" AND {over('OLD', ru.where)}"
    minus = ", ".join(["n = n - 1"] + [f"{c} = {c} - {over('OLD', e)}" for c, e in ru.sums])
    remove = (f"UPDATE {ru.table} SET {minus} WHERE {match}; "
              f"DELETE FROM {ru.table} WHERE n = 0 AND {match};")
    return add, remove


def _sqlite(db):
    parts = [_sqlite_add_remove(ru) for ru in rollups(False)]
    add = " ".join(a for a, _r in parts)
    remove = " ".join(r for _a, r in parts)
    changed = " OR ".join(f"OLD.{c} IS NOT NEW.{c}" for c in COUNTED)
    # Rebuilt from migration 0010: count the new row, then set its site (see the docstring).
    site = ("(SELECT CAST(substr(l.path, 2, instr(substr(l.path, 2), '/') - 1) AS INTEGER) "
            "FROM location l WHERE l.id = NEW.location_id AND l.path GLOB '/[0-9]*/*')")
    db.execute_sql("DROP TRIGGER IF EXISTS leak_site_id_insert")
    db.execute_sql(f"CREATE TRIGGER leak_site_id_insert AFTER INSERT ON leak BEGIN {add} "
                   f"UPDATE leak SET site_id = {site} WHERE id = NEW.id; END")
    db.execute_sql(f"CREATE TRIGGER leak_daily_update AFTER UPDATE OF {', '.join(COUNTED)} "
                   f"ON leak WHEN {changed} BEGIN {remove} {add} END")
    db.execute_sql(f"CREATE TRIGGER leak_daily_delete AFTER DELETE ON leak BEGIN {remove} END")


def backfill_sql(pg: bool) -> list[str]:
    out = []
    for ru in rollups(pg):
        exprs = ", ".join(e for _c, _t, e in ru.key)
        sums = ", ".join(["COUNT(*)"] + [f"SUM({e})" for _c, e in ru.sums])
        positions = ", ".join(str(i + 1) for i in range(len(ru.key)))
        where = f"WHERE {ru.where}" if ru.where else ""
        out.append(f"INSERT INTO {ru.table} ({ru.columns}, "
                   f"{', '.join(['n'] + [c for c, _e in ru.sums])}) "
                   f"SELECT {exprs}, {sums} FROM leak r {where} "
                   f"GROUP BY {positions} ORDER BY {positions}")
    return out


def up(db):
    pg = isinstance(db.obj if hasattr(db, "obj") else db, pw.PostgresqlDatabase)
    _create_tables(db, pg)
    for sql in backfill_sql(pg):
        db.execute_sql(sql)
    (_pg if pg else _sqlite)(db)
