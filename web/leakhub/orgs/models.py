from __future__ import annotations

import peewee as pw

from ..core.db import BaseModel, utcnow

SECURITY_MODES = {
    1: "everybody reads and writes all data",
    2: "everybody reads all data, writes only where granted",
    3: "reads and writes only where granted",
}


class Organization(BaseModel):
    slug = pw.CharField(max_length=40, unique=True)
    name = pw.CharField(max_length=200)
    timezone = pw.CharField(max_length=64, default="Europe/Berlin")
    language = pw.CharField(max_length=8, default="en")
    security_mode = pw.SmallIntegerField(default=1)
    # The confidential OIDC client's secret for this realm. Kept in the database (not the
    # secrets volume) so every web replica and a restored backup have it; never logged.
    oidc_client_secret = pw.CharField(max_length=128)
    created_at = pw.DateTimeField(default=utcnow)

    def __str__(self):
        return self.slug
