"""Timestamps as text. The database holds naive UTC (`core.db.utcnow`); machine-readable
output (JSON, CSV, manifests, audit details) writes them as ISO 8601 with a "Z"."""
from __future__ import annotations

import datetime as dt


def utc_iso(value: dt.datetime | None, timespec: str = "auto") -> str | None:
    """`2024-05-01T12:00:00Z` for a naive-UTC datetime (`timespec` as datetime.isoformat);
    None stays None."""
    if value is None:
        return None
    return value.isoformat(timespec=timespec) + "Z"
