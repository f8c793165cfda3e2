from __future__ import annotations

import peewee as pw

from ..core.db import OrgScoped, utcnow
from ..identity.models import User
from ..orgs.models import Organization


class ImportPreset(OrgScoped):
    """A saved column mapping ("detector preset"), shared in the organization: `mapping` is
    JSON {column header in the file: field key or "ignore"}. Name unique per organization."""

    organization = pw.ForeignKeyField(Organization, on_delete="CASCADE")
    name = pw.CharField(max_length=80)
    mapping = pw.TextField()
    created_by = pw.ForeignKeyField(User, null=True, on_delete="SET NULL")
    created_at = pw.DateTimeField(default=utcnow)

    AUDIT_TYPE = "import_preset"

    class Meta:
        table_name = "import_preset"
        indexes = ((("organization", "name"), True),)
