"""Repair follow-up (issue 18 item 7).

- `leak.assignee_id`: the user who should repair the leak (NULL: nobody); the due date is the
  existing `leak.due_date`. `leak.order_number`: the maintenance order number ("" when none).
- `leak.after_lpm`: the leak rate measured when the repair was verified (NULL: not
  re-measured); savings then come from the measured values (rate − after).
- `follow_up_mail`: one row per (user, day) the daily follow-up mail went to that user, so the
  job sends at most one a day whatever how often it runs.
"""
import peewee as pw


def up(db):
    pg = isinstance(db.obj if hasattr(db, "obj") else db, pw.PostgresqlDatabase)

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

    class FollowUpMail(Base):
        organization = pw.ForeignKeyField(Organization, on_delete="CASCADE")
        user = pw.ForeignKeyField(User, on_delete="CASCADE")
        day = pw.DateField()
        sent_at = pw.DateTimeField()
        leaks = pw.IntegerField(default=0)

        class Meta:
            table_name = "follow_up_mail"
            indexes = ((("user", "day"), True),)

    ref = 'REFERENCES "user" (id) ON DELETE SET NULL'
    db.execute_sql(f"ALTER TABLE leak ADD COLUMN assignee_id INTEGER NULL {ref}")
    db.execute_sql("ALTER TABLE leak ADD COLUMN order_number VARCHAR(64) NOT NULL DEFAULT ''")
    db.execute_sql("ALTER TABLE leak ADD COLUMN after_lpm "
                   + ("NUMERIC(12, 3)" if pg else "DECIMAL(12, 3)") + " NULL")
    # (organization, due_date) exists since 0008 (the list's "due" sort).
    db.execute_sql("CREATE INDEX leak_organization_id_assignee_id ON leak "
                   "(organization_id, assignee_id)")
    db.create_tables([FollowUpMail])
