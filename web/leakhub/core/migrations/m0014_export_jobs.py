"""Exports as jobs (issue 19): a large leak export is written by the worker, not inside a web
request. One row per requested export: who asked (only that user may download it), the
filter and options, progress (rows written of the total), the finished file's name under the
data directory, and when it is deleted (retention)."""
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
