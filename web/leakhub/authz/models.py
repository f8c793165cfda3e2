from __future__ import annotations

import peewee as pw
from flask_babel import lazy_gettext as _l

from ..core.db import OrgScoped, utcnow
from ..identity.models import User
from ..locations.models import Location
from ..orgs.models import Organization
from ..surveys.models import Survey

LEVELS = ("view", "edit")
LEVEL_LABELS = {"view": _l("view"), "edit": _l("view and edit")}
ACTION_LABELS = {"view": _l("see"), "edit": _l("edit")}


class Grant(OrgScoped):
    """User × (location subtree or survey) × view/edit, optionally until a date.
    Location grants inherit down the tree (materialized path)."""

    organization = pw.ForeignKeyField(Organization, on_delete="CASCADE")
    user = pw.ForeignKeyField(User, backref="grants", on_delete="CASCADE")
    location = pw.ForeignKeyField(Location, null=True, backref="grants", on_delete="CASCADE")
    survey = pw.ForeignKeyField(Survey, null=True, backref="grants", on_delete="CASCADE")
    level = pw.CharField(max_length=8, default="view")
    expires_at = pw.DateTimeField(null=True)
    note = pw.CharField(max_length=200, default="")
    created_at = pw.DateTimeField(default=utcnow)

    AUDIT_TYPE = "grant"

    class Meta:
        indexes = ((("organization", "user"), False),)
