"""The deployment log: one row per update attempt of this installation (appliance-wide, not
organization data: an update changes every organization's software at once)."""
from __future__ import annotations

import json

import peewee as pw

from ..core.db import BaseModel, utcnow
from ..core.times import utc_iso

RESULTS = ("ok", "failed", "rolled_back")


class Deployment(BaseModel):
    AUDIT_TYPE = "deployment"

    uid = pw.CharField(max_length=36, unique=True)      # the updater's id for this attempt
    started_at = pw.DateTimeField(index=True)
    finished_at = pw.DateTimeField(null=True)
    who = pw.CharField(max_length=200, default="")       # OS user@host that ran the update
    mode = pw.CharField(max_length=16, default="native")  # native | compose
    from_version = pw.CharField(max_length=100, default="")
    to_version = pw.CharField(max_length=100, default="")
    from_schema = pw.IntegerField(null=True)
    to_schema = pw.IntegerField(null=True)
    components = pw.TextField(default="{}")              # JSON: what was replaced, migrations
    duration_ms = pw.IntegerField(default=0)
    result = pw.CharField(max_length=16)                  # ok | failed | rolled_back
    summary = pw.CharField(max_length=500, default="")
    log_excerpt = pw.TextField(default="")
    recorded_at = pw.DateTimeField(default=utcnow)

    class Meta:
        table_name = "deployment"

    @property
    def components_dict(self) -> dict:
        try:
            return json.loads(self.components or "{}")
        except ValueError:
            return {}

    def as_dict(self) -> dict:
        return {"uid": self.uid, "started_at": utc_iso(self.started_at),
                "finished_at": utc_iso(self.finished_at), "who": self.who, "mode": self.mode,
                "from_version": self.from_version, "to_version": self.to_version,
                "from_schema": self.from_schema, "to_schema": self.to_schema,
                "components": self.components_dict, "duration_ms": self.duration_ms,
                "result": self.result, "summary": self.summary,
                "log_excerpt": self.log_excerpt}
