from __future__ import annotations

import peewee as pw

from ..core.db import OrgScoped, utcnow
from ..orgs.models import Organization


class Device(OrgScoped):
    organization = pw.ForeignKeyField(Organization, backref="devices", on_delete="CASCADE")
    name = pw.CharField(max_length=100)
    client_id = pw.CharField(max_length=100)
    model = pw.CharField(max_length=100, default="")
    serial = pw.CharField(max_length=64, default="")
    enabled = pw.BooleanField(default=True)
    created_at = pw.DateTimeField(default=utcnow)
    last_contact_at = pw.DateTimeField(null=True)
    version = pw.IntegerField(default=1)

    AUDIT_TYPE = "device"
    AUDIT_SKIP = ("last_contact_at",)

    class Meta:
        indexes = ((("organization", "client_id"), True),)


class IngestReceipt(OrgScoped):
    """A finding a device already delivered, by the device's own id: replays create nothing."""

    organization = pw.ForeignKeyField(Organization, on_delete="CASCADE")
    device = pw.ForeignKeyField(Device, on_delete="CASCADE")
    external_id = pw.CharField(max_length=100)
    leak_id = pw.IntegerField(null=True)
    received_at = pw.DateTimeField(default=utcnow)

    class Meta:
        table_name = "ingest_receipt"
        indexes = ((("device", "external_id"), True),)
