"""Issue 19 (fast under load).

- Exports as jobs: a large leak export is written by the worker, not inside a web request.
  One row per requested export: who asked (only that user may download it), the filter and
  options, progress (rows written of the total), the finished file's name under the data
  directory, and when it is deleted (retention).
- Covering indexes for the dashboard of readers limited by grants (the leaks their grants
  reach outside whole sites are counted one by one): the permission filter reads
  location_id and survey_id, the "outside whole sites" filter site_id. Without them in the
  index every leak is fetched from the table (SQLite picked an unrelated index and read
  100,000 rows at random: 230 ms for a count). Each replaces a narrower index of 0010 with
  the same leading columns, so the plans that used those keep their order.
- The audit entries of one record (a leak page's Activity section) by (organization, type,
  id, seq): with the index on (organization, type, id) alone SQLite walked the organization's
  whole trail backwards by seq to find the newest entries of an old leak (250 ms at 366,000
  entries); this one serves the filter and the order (the model still declares the narrower
  one; it stays).
"""
import peewee as pw


def up(db):
    class Base(pw.Model):
        class Meta:
            database = db
            legacy_table_names = False

    class Organization(Base):
        class Meta:
            table_name = "organization"

    class User(Base):
        class Meta:
            table_name = "user"

    class ExportJob(Base):
        uid = pw.CharField(max_length=32, unique=True)
        organization = pw.ForeignKeyField(Organization, on_delete="CASCADE")
        user = pw.ForeignKeyField(User, on_delete="CASCADE")
        fmt = pw.CharField(max_length=8)
        args = pw.TextField(default="{}")
        status = pw.CharField(max_length=16, default="queued", index=True)
        rows_done = pw.IntegerField(default=0)
        rows_total = pw.IntegerField(default=0)
        file_name = pw.CharField(max_length=200, default="")
        size = pw.BigIntegerField(default=0)
        message = pw.TextField(default="")
        created_at = pw.DateTimeField(index=True)
        started_at = pw.DateTimeField(null=True)
        finished_at = pw.DateTimeField(null=True)
        expires_at = pw.DateTimeField(null=True, index=True)

        class Meta:
            table_name = "export_job"
            indexes = ((("organization", "user", "created_at"), False),)

    db.create_tables([ExportJob])

    # Grouped figures: (site, status, component) in index order, periods as FILTERed sums.
    db.execute_sql("DROP INDEX IF EXISTS leak_dashboard")
    db.execute_sql("CREATE INDEX leak_dashboard ON leak (organization_id, site_id, status, "
                   "component, found_at, rate_lpm, location_id, survey_id)")
    # Leaks found per day (trend), and the list's default sort (found_at, id) as before.
    db.execute_sql("DROP INDEX IF EXISTS leak_organization_id_found_at_id")
    db.execute_sql("CREATE INDEX leak_organization_id_found_at_id ON leak "
                   "(organization_id, found_at, id, location_id, survey_id, site_id)")
    # Leaks repaired per day (trend).
    db.execute_sql("DROP INDEX IF EXISTS leak_organization_id_repaired_at_status")
    db.execute_sql("CREATE INDEX leak_organization_id_repaired_at_status ON leak "
                   "(organization_id, repaired_at, status, site_id, location_id, survey_id)")
    # One record's audit entries, newest first (the Activity section of a leak page).
    db.execute_sql("CREATE INDEX IF NOT EXISTS audit_entry_entity_seq ON audit_entry "
                   "(organization_id, entity_type, entity_id, seq)")
