"""Timestamps as text. The database holds naive UTC (`core.db.utcnow`); machine-readable
output (JSON, CSV, manifests, audit details) writes them as ISO 8601 with a "Z", and machine
input (the API's and devices' `date-time` values) is read as RFC 3339 here."""
from __future__ import annotations

import datetime as dt
import re

_DATE_TIME = re.compile(r"^\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d{1,9})?"
                        r"([Zz]|[+-]\d{2}:\d{2})$")


def utc_iso(value: dt.datetime | None, timespec: str = "auto") -> str | None:
    """`2024-05-01T12:00:00Z` for a naive-UTC datetime (`timespec` as datetime.isoformat);
    None stays None."""
    if value is None:
        return None
    return value.isoformat(timespec=timespec) + "Z"


def parse_rfc3339(text: str):
    """A JSON Schema `date-time` (RFC 3339: offset required) as an aware datetime, or None."""
    if not isinstance(text, str) or not _DATE_TIME.match(text):
        return None
    text = text.upper()
    head, dot, rest = text.partition(".")
    if dot:  # at most microseconds for Python
        digits = re.match(r"\d+", rest).group(0)
        text = head + "." + digits[:6].ljust(6, "0") + rest[len(digits):]
    try:
        return dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
