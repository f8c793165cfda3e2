from __future__ import annotations

import peewee as pw

from ..core.db import OrgScoped, utcnow
from ..identity.models import User
from ..locations.models import Location
from ..orgs.models import Organization

STATUSES = ("planned", "in_progress", "completed", "cancelled")


class Survey(OrgScoped):
    """An audit campaign: who surveyed (a user or an external company), when, with which
    device, which locations (SurveyScope) and how much of them (coverage)."""

    organization = pw.ForeignKeyField(Organization, backref="surveys", on_delete="CASCADE")
    name = pw.CharField(max_length=200)
    period_start = pw.DateField()
    period_end = pw.DateField(null=True)
    auditor_user = pw.ForeignKeyField(User, null=True, on_delete="SET NULL")
    auditor_company = pw.CharField(max_length=200, default="")
    device = pw.CharField(max_length=200, default="")
    status = pw.CharField(max_length=16, default="planned")
    coverage_percent = pw.SmallIntegerField(null=True)
    notes = pw.TextField(default="")
    version = pw.IntegerField(default=1)
    created_at = pw.DateTimeField(default=utcnow)
    updated_at = pw.DateTimeField(default=utcnow)

    AUDIT_TYPE = "survey"
    AUDIT_SKIP = ("updated_at",)

    class Meta:
        indexes = ((("organization", "period_start"), False),
                   (("organization", "status"), False))

    @property
    def auditor(self) -> str:
        if self.auditor_user_id:
            return self.auditor_user.display_name
        return self.auditor_company

    def __str__(self):
        return self.name


class SurveyScope(OrgScoped):
    """One location (with its subtree) in a survey's scope."""

    organization = pw.ForeignKeyField(Organization, on_delete="CASCADE")
    survey = pw.ForeignKeyField(Survey, backref="scope", on_delete="CASCADE")
    location = pw.ForeignKeyField(Location, on_delete="CASCADE")

    AUDIT_TYPE = "survey_scope"

    class Meta:
        table_name = "survey_scope"
        indexes = ((("survey", "location"), True),
                   (("organization", "location"), False))
