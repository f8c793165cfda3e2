"""Exports written by the worker (issue 19): one row per requested large export."""
from __future__ import annotations

import peewee as pw

from ..core.db import OrgScoped, utcnow
from ..identity.models import User
from ..orgs.models import Organization

STATUSES = ("queued", "running", "done", "failed")


class ExportJob(OrgScoped):
    uid = pw.CharField(max_length=32, unique=True)     # in the URL; not guessable
    organization = pw.ForeignKeyField(Organization, on_delete="CASCADE")
    user = pw.ForeignKeyField(User, on_delete="CASCADE")  # only this user may download
    fmt = pw.CharField(max_length=8)                    # csv | xlsx
    args = pw.TextField(default="{}")                   # the list filter and CSV options
    status = pw.CharField(max_length=16, default="queued", index=True)
    rows_done = pw.IntegerField(default=0)
    rows_total = pw.IntegerField(default=0)
    file_name = pw.CharField(max_length=200, default="")  # under <data dir>/exports
    size = pw.BigIntegerField(default=0)
    message = pw.TextField(default="")
    created_at = pw.DateTimeField(default=utcnow, index=True)
    started_at = pw.DateTimeField(null=True)
    finished_at = pw.DateTimeField(null=True)
    expires_at = pw.DateTimeField(null=True, index=True)

    class Meta:
        table_name = "export_job"

    @property
    def percent(self) -> int:
        if self.status == "done":
            return 100
        return min(99, self.rows_done * 100 // self.rows_total) if self.rows_total else 0
