from __future__ import annotations

import peewee as pw

from ..core.db import OrgScoped, utcnow
from ..identity.models import User
from ..locations.models import Location
from ..orgs.models import Organization


class FloorPlan(OrgScoped):
    """The current floor plan of a location: a cleaned PNG/JPEG (a PDF's first page is
    rendered to PNG) stored encrypted in the uploads storage under `sha256`. `version` grows
    with every replacement; a leak's pin (leak.plan_x/plan_y) counts only while its
    `plan_version` equals it."""

    organization = pw.ForeignKeyField(Organization, on_delete="CASCADE")
    location = pw.ForeignKeyField(Location, unique=True, on_delete="CASCADE",
                                  backref="floor_plans")
    version = pw.IntegerField(default=1)
    sha256 = pw.CharField(max_length=64)
    content_type = pw.CharField(max_length=32)
    size = pw.IntegerField()
    width = pw.IntegerField()
    height = pw.IntegerField()
    original_filename = pw.CharField(max_length=200, default="")
    uploaded_by = pw.ForeignKeyField(User, null=True, on_delete="SET NULL")
    uploaded_at = pw.DateTimeField(default=utcnow)

    AUDIT_TYPE = "floor_plan"

    class Meta:
        table_name = "floor_plan"
        indexes = ((("organization", "sha256"), False),)
