"""Leak list and dashboard at 100,000 leaks.

- `leak.site_id`: the site of the leak's location (first id of the location's materialized
  path), so the dashboard groups by site without joining locations and parsing paths. Kept by
  triggers on every write path (the service, imports and the demo seed insert with plain SQL):
  on insert, on a change of `location_id`, and for a location's leaks when its path changes.
- A covering index for the dashboard's aggregate, in the order of its groups (site, status,
  component: an index-only scan aggregated as it comes), and one for the trend of repairs.
- The leak list: (found_at, id, …) and (rate_lpm, id) so the ordered page reads its rows in
  index order (the id is the tie-breaker of every sort).
- Grants: the subtree of a granted location is a range of paths; on PostgreSQL the range is
  compared in the "C" collation (byte order, whatever the database's collation), which needs
  its own index.
"""
import peewee as pw


def _is_pg(db) -> bool:
    return isinstance(db.obj if hasattr(db, "obj") else db, pw.PostgresqlDatabase)


def _pg_site(path: str) -> str:
    """The first id of a materialized path "/12/34/"; NULL for anything else."""
    return f"CAST(substring({path} FROM '^/([0-9]+)/') AS INTEGER)"


def up(db):
    pg = _is_pg(db)
    db.execute_sql("ALTER TABLE leak ADD COLUMN site_id INTEGER")
    if pg:
        db.execute_sql(
            f"UPDATE leak SET site_id = {_pg_site('l.path')} "
            "FROM location l WHERE l.id = leak.location_id")
        # The UPDATE left a dead version of every row (a table twice its size for sequential
        # scans until it is rewritten): rewrite it now (a USING expression forces the rewrite).
        db.execute_sql("ALTER TABLE leak ALTER COLUMN site_id TYPE INTEGER USING site_id + 0")
        db.execute_sql("""
            CREATE OR REPLACE FUNCTION leak_set_site_id() RETURNS trigger AS $$
            BEGIN
                SELECT SITE INTO NEW.site_id FROM location l WHERE l.id = NEW.location_id;
                RETURN NEW;
            END $$ LANGUAGE plpgsql""".replace("SITE", _pg_site("l.path")))
        db.execute_sql("CREATE TRIGGER leak_site_id BEFORE INSERT OR UPDATE OF location_id "
                       "ON leak FOR EACH ROW EXECUTE FUNCTION leak_set_site_id()")
        db.execute_sql("""
            CREATE OR REPLACE FUNCTION location_path_site_id() RETURNS trigger AS $$
            BEGIN
                UPDATE leak SET site_id = SITE WHERE location_id = NEW.id;
                RETURN NULL;
            END $$ LANGUAGE plpgsql""".replace("SITE", _pg_site("NEW.path")))
        db.execute_sql("CREATE TRIGGER location_path_site_id AFTER UPDATE OF path ON location "
                       "FOR EACH ROW WHEN (OLD.path IS DISTINCT FROM NEW.path) "
                       "EXECUTE FUNCTION location_path_site_id()")
        db.execute_sql('CREATE INDEX IF NOT EXISTS location_organization_id_path_c '
                       'ON location (organization_id, path COLLATE "C")')
    else:
        site = ("(SELECT CAST(substr(l.path, 2, instr(substr(l.path, 2), '/') - 1) AS INTEGER) "
                "FROM location l WHERE l.id = {ref} AND l.path GLOB '/[0-9]*/*')")
        db.execute_sql("UPDATE leak SET site_id = " + site.format(ref="leak.location_id"))
        db.execute_sql("CREATE TRIGGER leak_site_id_insert AFTER INSERT ON leak BEGIN "
                       "UPDATE leak SET site_id = " + site.format(ref="NEW.location_id")
                       + " WHERE id = NEW.id; END")
        db.execute_sql("CREATE TRIGGER leak_site_id_update AFTER UPDATE OF location_id ON leak "
                       "BEGIN UPDATE leak SET site_id = " + site.format(ref="NEW.location_id")
                       + " WHERE id = NEW.id; END")
        db.execute_sql("CREATE TRIGGER location_path_site_id AFTER UPDATE OF path ON location "
                       "WHEN OLD.path IS NOT NEW.path BEGIN UPDATE leak SET site_id = "
                       + site.format(ref="NEW.id") + " WHERE location_id = NEW.id; END")
    db.execute_sql("CREATE INDEX IF NOT EXISTS leak_dashboard ON leak "
                   "(organization_id, site_id, status, component, found_at, rate_lpm)")
    db.execute_sql("CREATE INDEX IF NOT EXISTS leak_organization_id_repaired_at_status ON leak "
                   "(organization_id, repaired_at, status)")
    # Sort indexes with the id as tie-breaker; they replace the ones without it. The default
    # sort's also holds what the permission filter reads (location, survey): the pages and
    # counts of users with grants come from an index-only scan too.
    db.execute_sql("CREATE INDEX IF NOT EXISTS leak_organization_id_found_at_id ON leak "
                   "(organization_id, found_at, id, location_id, survey_id)")
    db.execute_sql("DROP INDEX IF EXISTS leak_organization_id_found_at")
    db.execute_sql("CREATE INDEX IF NOT EXISTS leak_organization_id_rate_lpm_id ON leak "
                   "(organization_id, rate_lpm, id)")
    db.execute_sql("DROP INDEX IF EXISTS leak_organization_id_rate_lpm")
