"""Audit trail with a per-organization hash chain."""
import peewee as pw


def up(db):
    class Base(pw.Model):
        class Meta:
            database = db
            legacy_table_names = False

    class Organization(Base):
        class Meta:
            table_name = "organization"

    class AuditEntry(Base):
        organization = pw.ForeignKeyField(Organization, on_delete="CASCADE")
        seq = pw.BigIntegerField()
        at = pw.DateTimeField(index=True)
        actor_kind = pw.CharField(max_length=16)
        actor_id = pw.IntegerField(null=True)
        actor_label = pw.CharField(max_length=254, default="")
        ip = pw.CharField(max_length=45, null=True)
        request_id = pw.CharField(max_length=64, null=True)
        action = pw.CharField(max_length=48, index=True)
        entity_type = pw.CharField(max_length=48, null=True)
        entity_id = pw.IntegerField(null=True)
        changes = pw.TextField(default="{}")
        prev_hash = pw.CharField(max_length=64)
        hash = pw.CharField(max_length=64)

        class Meta:
            indexes = ((("organization", "seq"), True),
                       (("organization", "entity_type", "entity_id"), False))

    class AuditChainHead(Base):
        organization = pw.ForeignKeyField(Organization, primary_key=True, on_delete="CASCADE")
        seq = pw.BigIntegerField(default=0)
        hash = pw.CharField(max_length=64, default="0" * 64)
        anchor_seq = pw.BigIntegerField(default=0)
        anchor_hash = pw.CharField(max_length=64, default="0" * 64)

    db.create_tables([AuditEntry, AuditChainHead])
