"""The deployment log (leakctl update): who updated from which version to which, result."""
import peewee as pw


def up(db):
    class Base(pw.Model):
        class Meta:
            database = db
            legacy_table_names = False

    class Deployment(Base):
        uid = pw.CharField(max_length=36, unique=True)
        started_at = pw.DateTimeField(index=True)
        finished_at = pw.DateTimeField(null=True)
        who = pw.CharField(max_length=200, default="")
        mode = pw.CharField(max_length=16, default="native")
        from_version = pw.CharField(max_length=100, default="")
        to_version = pw.CharField(max_length=100, default="")
        from_schema = pw.IntegerField(null=True)
        to_schema = pw.IntegerField(null=True)
        components = pw.TextField(default="{}")
        duration_ms = pw.IntegerField(default=0)
        result = pw.CharField(max_length=16)
        summary = pw.CharField(max_length=500, default="")
        log_excerpt = pw.TextField(default="")
        recorded_at = pw.DateTimeField()

        class Meta:
            table_name = "deployment"

    db.create_tables([Deployment])
