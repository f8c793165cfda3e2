"""Grants (user × location subtree or survey × level), devices and their ingest receipts."""
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

    class Location(Base):
        class Meta:
            table_name = "location"

    class Survey(Base):
        class Meta:
            table_name = "survey"

    class Grant(Base):
        organization = pw.ForeignKeyField(Organization, on_delete="CASCADE")
        user = pw.ForeignKeyField(User, on_delete="CASCADE")
        location = pw.ForeignKeyField(Location, null=True, on_delete="CASCADE")
        survey = pw.ForeignKeyField(Survey, null=True, on_delete="CASCADE")
        level = pw.CharField(max_length=8, default="view")
        expires_at = pw.DateTimeField(null=True)
        note = pw.CharField(max_length=200, default="")
        created_at = pw.DateTimeField()

        class Meta:
            indexes = ((("organization", "user"), False),)

    class Device(Base):
        organization = pw.ForeignKeyField(Organization, on_delete="CASCADE")
        name = pw.CharField(max_length=100)
        client_id = pw.CharField(max_length=100)
        model = pw.CharField(max_length=100, default="")
        serial = pw.CharField(max_length=64, default="")
        enabled = pw.BooleanField(default=True)
        created_at = pw.DateTimeField()
        last_contact_at = pw.DateTimeField(null=True)
        version = pw.IntegerField(default=1)

        class Meta:
            indexes = ((("organization", "client_id"), True),)

    class IngestReceipt(Base):
        organization = pw.ForeignKeyField(Organization, on_delete="CASCADE")
        device = pw.ForeignKeyField(Device, on_delete="CASCADE")
        external_id = pw.CharField(max_length=100)
        leak_id = pw.IntegerField(null=True)
        received_at = pw.DateTimeField()

        class Meta:
            table_name = "ingest_receipt"
            indexes = ((("device", "external_id"), True),)

    db.create_tables([Grant, Device, IngestReceipt])
