"""Security events, review findings, Keycloak event cursors, review watermarks."""
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

    class SecurityEvent(Base):
        organization = pw.ForeignKeyField(Organization, null=True, on_delete="CASCADE")
        at = pw.DateTimeField()
        recorded_at = pw.DateTimeField(index=True)
        source = pw.CharField(max_length=16, default="leakhub")
        kind = pw.CharField(max_length=32)
        user = pw.ForeignKeyField(User, null=True, on_delete="SET NULL")
        username = pw.CharField(max_length=254, default="")
        ip = pw.CharField(max_length=45, null=True)
        ip_truncated = pw.BooleanField(default=False)
        request_id = pw.CharField(max_length=64, null=True)
        details = pw.TextField(default="{}")
        external_id = pw.CharField(max_length=80, null=True)

        class Meta:
            indexes = ((("organization", "external_id"), True),
                       (("organization", "at"), False),
                       (("organization", "kind", "at"), False))

    class Finding(Base):
        organization = pw.ForeignKeyField(Organization, on_delete="CASCADE")
        rule = pw.CharField(max_length=48)
        severity = pw.CharField(max_length=8)
        subject = pw.CharField(max_length=254)
        first_seen_at = pw.DateTimeField()
        last_seen_at = pw.DateTimeField(index=True)
        count = pw.IntegerField(default=0)
        details = pw.TextField(default="{}")
        status = pw.CharField(max_length=16, default="open")
        acknowledged_by = pw.ForeignKeyField(User, null=True, on_delete="SET NULL")
        acknowledged_at = pw.DateTimeField(null=True)
        ack_comment = pw.TextField(default="")
        created_at = pw.DateTimeField()
        updated_at = pw.DateTimeField()
        version = pw.IntegerField(default=1)

        class Meta:
            indexes = ((("organization", "status"), False),
                       (("organization", "rule", "subject", "status"), False))

    class FindingEvent(Base):
        organization = pw.ForeignKeyField(Organization, on_delete="CASCADE")
        finding = pw.ForeignKeyField(Finding, on_delete="CASCADE")
        rule = pw.CharField(max_length=48)
        ref = pw.CharField(max_length=32)

        class Meta:
            indexes = ((("organization", "rule", "ref"), True),)

    class KeycloakEventCursor(Base):
        organization = pw.ForeignKeyField(Organization, on_delete="CASCADE")
        kind = pw.CharField(max_length=8)
        last_time = pw.BigIntegerField(null=True)
        seen_ids = pw.TextField(default="[]")
        updated_at = pw.DateTimeField()

        class Meta:
            indexes = ((("organization", "kind"), True),)

    class SecurityReviewState(Base):
        organization = pw.ForeignKeyField(Organization, primary_key=True, on_delete="CASCADE")
        reviewed_until = pw.DateTimeField(null=True)
        last_digest_at = pw.DateTimeField(null=True)

    db.create_tables([SecurityEvent, Finding, FindingEvent, KeycloakEventCursor,
                      SecurityReviewState])
