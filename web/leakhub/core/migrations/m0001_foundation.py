"""Organizations, users, server-side sessions, job runs."""
import peewee as pw


def up(db):
    class Base(pw.Model):
        class Meta:
            database = db
            legacy_table_names = False

    class Organization(Base):
        slug = pw.CharField(max_length=40, unique=True)
        name = pw.CharField(max_length=200)
        timezone = pw.CharField(max_length=64, default="Europe/Berlin")
        language = pw.CharField(max_length=8, default="en")
        security_mode = pw.SmallIntegerField(default=1)
        oidc_client_secret = pw.CharField(max_length=128)
        created_at = pw.DateTimeField()

    class User(Base):
        organization = pw.ForeignKeyField(Organization, on_delete="CASCADE")
        sub = pw.CharField(max_length=64)
        email = pw.CharField(max_length=254)
        name = pw.CharField(max_length=200, default="")
        role = pw.CharField(max_length=16, null=True)
        enabled = pw.BooleanField(default=True)
        created_at = pw.DateTimeField()
        last_login_at = pw.DateTimeField(null=True)

        class Meta:
            indexes = ((("organization", "sub"), True),)

    class WebSession(Base):
        id = pw.CharField(max_length=64, primary_key=True)
        organization = pw.ForeignKeyField(Organization, null=True, on_delete="CASCADE")
        user = pw.ForeignKeyField(User, null=True, on_delete="CASCADE")
        data = pw.TextField(default="{}")
        created_at = pw.DateTimeField()
        last_seen_at = pw.DateTimeField(index=True)
        expires_at = pw.DateTimeField(index=True)
        kc_sid = pw.CharField(max_length=64, null=True, index=True)
        id_token = pw.TextField(null=True)
        ip = pw.CharField(max_length=45, null=True)
        user_agent = pw.CharField(max_length=300, null=True)

    class JobRun(Base):
        job = pw.CharField(max_length=64, index=True)
        started_at = pw.DateTimeField(index=True)
        finished_at = pw.DateTimeField(null=True)
        status = pw.CharField(max_length=16, default="running")
        duration_ms = pw.IntegerField(null=True)
        message = pw.TextField(default="")
        host = pw.CharField(max_length=128, default="")

    db.create_tables([Organization, User, WebSession, JobRun])
