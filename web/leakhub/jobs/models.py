from __future__ import annotations

import peewee as pw

from ..core.db import BaseModel, utcnow


class JobRun(BaseModel):
    job = pw.CharField(max_length=64, index=True)
    started_at = pw.DateTimeField(default=utcnow, index=True)
    finished_at = pw.DateTimeField(null=True)
    status = pw.CharField(max_length=16, default="running")  # running | ok | failed
    duration_ms = pw.IntegerField(null=True)
    message = pw.TextField(default="")
    host = pw.CharField(max_length=128, default="")
