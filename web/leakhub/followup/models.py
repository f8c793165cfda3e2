from __future__ import annotations

import peewee as pw

from ..core.db import BaseModel, utcnow
from ..identity.models import User
from ..orgs.models import Organization


class FollowUpMail(BaseModel):
    """The daily follow-up mail went to `user` on `day` (the organization's local date):
    the job sends at most one a day per user, however often it runs (migration 0019)."""

    organization = pw.ForeignKeyField(Organization, on_delete="CASCADE")
    user = pw.ForeignKeyField(User, on_delete="CASCADE")
    day = pw.DateField()
    sent_at = pw.DateTimeField(default=utcnow)
    leaks = pw.IntegerField(default=0)

    class Meta:
        table_name = "follow_up_mail"
        indexes = ((("user", "day"), True),)
