"""Recording and listing deployments (the updater's attempts, see ops/update.py).

The updater runs outside the application (it replaces it), so it hands each finished
attempt to the release that serves afterwards: `leakctl deployments record` reads the JSON
entry and stores it here, once per `uid`, with a "deployment.recorded" audit event in the
operator organization's trail. An attempt that could not be recorded (e.g. rolled back to a
release without this table) stays in the updater's pending file and is recorded next time.
"""
from __future__ import annotations

import datetime as dt
import json
import logging

import peewee as pw

from ..audit import writer
from ..authz import Actor
from ..core.db import database, utcnow
from ..core.errors import Invalid
from ..orgs.models import Organization
from .models import RESULTS, Deployment

log = logging.getLogger("leakhub.ops")

LOG_EXCERPT_MAX = 8000


class DeploymentError(Invalid, ValueError):
    """An entry the updater sent is malformed; the message names the field."""


def _time(entry: dict, key: str, required: bool = True) -> dt.datetime | None:
    value = entry.get(key)
    if value in (None, ""):
        if required:
            raise DeploymentError(f"{key}: required")
        return None
    try:
        parsed = dt.datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        raise DeploymentError(f"{key}: not an ISO 8601 time: {value!r}") from None
    if parsed.tzinfo is not None:
        parsed = parsed.astimezone(dt.UTC).replace(tzinfo=None)
    return parsed


def _text(entry: dict, key: str, limit: int) -> str:
    value = entry.get(key) or ""
    if not isinstance(value, str):
        raise DeploymentError(f"{key}: must be text")
    return value[-limit:] if key == "log_excerpt" else value[:limit]


def _int(entry: dict, key: str) -> int | None:
    value = entry.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise DeploymentError(f"{key}: must be a whole number")
    return value


def operator_org(config):
    if not config.first_org_slug:
        return None
    return Organization.get_or_none(Organization.slug == config.first_org_slug)


def record(config, entry: dict) -> tuple[Deployment, bool]:
    """Store one attempt; (row, created). Idempotent by entry["uid"]."""
    if not isinstance(entry, dict):
        raise DeploymentError("each entry must be a JSON object")
    uid = entry.get("uid")
    if not isinstance(uid, str) or not 8 <= len(uid) <= 36:
        raise DeploymentError("uid: required, 8-36 characters")
    result = entry.get("result")
    if result not in RESULTS:
        raise DeploymentError(f"result: one of {', '.join(RESULTS)}, got {result!r}")
    components = entry.get("components") or {}
    if not isinstance(components, dict):
        raise DeploymentError("components: must be a JSON object")
    duration = _int(entry, "duration_ms") or 0
    fields = dict(
        uid=uid, started_at=_time(entry, "started_at"),
        finished_at=_time(entry, "finished_at", required=False),
        who=_text(entry, "who", 200), mode=_text(entry, "mode", 16) or "native",
        from_version=_text(entry, "from_version", 100), to_version=_text(entry, "to_version", 100),
        from_schema=_int(entry, "from_schema"), to_schema=_int(entry, "to_schema"),
        components=json.dumps(components, sort_keys=True), duration_ms=max(0, duration),
        result=result, summary=_text(entry, "summary", 500),
        log_excerpt=_text(entry, "log_excerpt", LOG_EXCERPT_MAX), recorded_at=utcnow())
    existing = Deployment.get_or_none(Deployment.uid == uid)
    if existing is not None:
        return existing, False
    with database.atomic():
        try:
            row = Deployment.create(**fields)
        except pw.IntegrityError:   # recorded concurrently
            return Deployment.get(Deployment.uid == uid), False
        _audit(config, row)
    return row, True


def _audit(config, row: Deployment) -> None:
    org = operator_org(config)
    if org is None:
        log.info("deployment %s not audited: no organization %r", row.uid, config.first_org_slug)
        return
    actor = Actor.system(org, label=f"leakctl update ({row.who})"[:254] if row.who
                         else "leakctl update")
    writer.event(actor, "deployment.recorded", entity=row, details={
        "from_version": row.from_version, "to_version": row.to_version,
        "result": row.result, "duration_ms": row.duration_ms, "who": row.who,
        "summary": row.summary})


def recent(limit: int = 50) -> list[Deployment]:
    return list(Deployment.select().order_by(Deployment.started_at.desc(), Deployment.id.desc())
                .limit(limit))


def parse_entries(text: str) -> list[dict]:
    """One JSON object, a JSON array of them, or JSON lines."""
    text = text.strip()
    if not text:
        return []
    try:
        value = json.loads(text)
    except ValueError:
        value = None
    if isinstance(value, dict):
        return [value]
    if isinstance(value, list):
        return value
    entries = []
    for number, line in enumerate(text.splitlines(), 1):
        if line.strip():
            try:
                entries.append(json.loads(line))
            except ValueError:
                raise DeploymentError(f"line {number}: not JSON") from None
    return entries
