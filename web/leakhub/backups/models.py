"""Backup bookkeeping. Appliance-wide (not organization data): a backup holds every
organization, so these rows are not OrgScoped and only the operator organization's
administrators see them (backups.views).

The rows live in the database that is being backed up; after a restore they describe the
moment of the backup, so `service.reconcile()` makes them agree with the backup directory
again — the directory is the truth.
"""
from __future__ import annotations

import json

import peewee as pw

from ..core.db import BaseModel, utcnow
from ..identity.models import User
from ..orgs.models import Organization

KINDS = ("scheduled", "manual", "pre-update")


class BackupRecord(BaseModel):
    AUDIT_TYPE = "backup"

    file_name = pw.CharField(max_length=200, unique=True)
    created_at = pw.DateTimeField(index=True)
    kind = pw.CharField(max_length=16)
    size = pw.BigIntegerField(default=0)
    sha256 = pw.CharField(max_length=64, default="")     # of the archive file ("" = not known yet)
    manifest = pw.TextField(default="{}")                 # summary of the manifest (no secrets)
    verified_at = pw.DateTimeField(null=True)
    verify_status = pw.CharField(max_length=16, null=True)  # ok | failed | None (not yet)
    verify_message = pw.TextField(default="")
    copied = pw.BooleanField(default=False)                # also in LEAKHUB_BACKUP_COPY_DIR

    class Meta:
        table_name = "backup_record"

    @property
    def summary(self) -> dict:
        try:
            return json.loads(self.manifest or "{}")
        except ValueError:
            return {}


class BackupDownload(BaseModel):
    """Who downloaded which archive, when, from where (also an audit event)."""

    backup = pw.ForeignKeyField(BackupRecord, null=True, on_delete="SET NULL")
    file_name = pw.CharField(max_length=200)
    organization = pw.ForeignKeyField(Organization, null=True, on_delete="SET NULL")
    user = pw.ForeignKeyField(User, null=True, on_delete="SET NULL")
    user_label = pw.CharField(max_length=254, default="")
    ip = pw.CharField(max_length=45, null=True)
    user_agent = pw.CharField(max_length=300, default="")
    at = pw.DateTimeField(default=utcnow, index=True)

    class Meta:
        table_name = "backup_download"
