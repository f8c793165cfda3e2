from __future__ import annotations

import peewee as pw

from ..core.db import OrgScoped, utcnow
from ..identity.models import User
from ..leaks.models import Leak
from ..orgs.models import Organization


class Photo(OrgScoped):
    """One photo of a leak. `sha256` / `thumb_sha256` are the storage keys of the re-encoded
    image (no metadata) and its thumbnail; identical images share the stored bytes."""

    organization = pw.ForeignKeyField(Organization, on_delete="CASCADE")
    leak = pw.ForeignKeyField(Leak, backref="photos", on_delete="CASCADE")
    sha256 = pw.CharField(max_length=64)
    thumb_sha256 = pw.CharField(max_length=64)
    content_type = pw.CharField(max_length=32)
    size = pw.IntegerField()
    width = pw.IntegerField()
    height = pw.IntegerField()
    original_filename = pw.CharField(max_length=200, default="")
    uploaded_by = pw.ForeignKeyField(User, null=True, on_delete="SET NULL")
    uploaded_at = pw.DateTimeField(default=utcnow)
    # The UUID the tablet gave the queued photo ("" otherwise), unique per organization when
    # set (migration 0017): a replayed upload finds the stored photo.
    client_id = pw.CharField(max_length=36, default="")

    AUDIT_TYPE = "photo"

    class Meta:
        indexes = ((("organization", "leak"), False),
                   (("organization", "sha256"), False),
                   (("organization", "thumb_sha256"), False))
