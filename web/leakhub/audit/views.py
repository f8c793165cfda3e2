"""The organization-wide audit log (admins and managers), its CSV export, and template
helpers shared with the security pages: times in the organization's time zone, date-range
filters, and `audit_activity(entity)` for detail pages."""
from __future__ import annotations

import csv
import datetime as dt
import io
from zoneinfo import ZoneInfo

from flask import Blueprint, Response, abort, render_template, request, stream_with_context
from flask_babel import gettext as _
from flask_login import login_required

from .. import authz
from ..core.db import iterate
from ..core.errors import Invalid
from ..core.times import utc_iso
from ..identity.login import current_actor
from . import writer
from .activity import audit_for, decode_changes
from .models import AuditEntry

bp = Blueprint("audit", __name__)

PAGE_SIZE = 50
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def org_tz(org) -> dt.tzinfo:
    try:
        return ZoneInfo(org.timezone or "UTC")
    except Exception:
        return dt.UTC


def to_local(value: dt.datetime, org) -> dt.datetime:
    return value.replace(tzinfo=dt.UTC).astimezone(org_tz(org))


@bp.app_template_global("audit_activity")
def audit_activity(entity, limit: int = 100):
    """`{{ activity(audit_activity(leak)) }}` on a detail page (see audit/_activity.html)."""
    return audit_for(current_actor(), entity, limit=limit)


class FilterError(Invalid, ValueError):
    def __init__(self, field: str, message: str):
        super().__init__(message)
        self.field = field
        self.errors = {field: message}


def date_range(args, org) -> tuple[dt.datetime | None, dt.datetime | None, dict]:
    """`from`/`to` (YYYY-MM-DD, inclusive, in the organization's time zone) as naive-UTC
    bounds [start, end). Returns (start, end, errors by field)."""
    tz = org_tz(org)
    bounds, errors = {}, {}
    for name in ("from", "to"):
        raw = (args.get(name) or "").strip()
        if not raw:
            bounds[name] = None
            continue
        try:
            day = dt.date.fromisoformat(raw)
        except ValueError:
            errors[name] = _("Use a date like 2025-03-31.")
            bounds[name] = None
            continue
        if name == "to":
            day += dt.timedelta(days=1)
        local = dt.datetime.combine(day, dt.time(), tzinfo=tz)
        bounds[name] = local.astimezone(dt.UTC).replace(tzinfo=None)
    if bounds["from"] and bounds["to"] and bounds["from"] >= bounds["to"]:
        errors["to"] = _("The end date is before the start date.")
    return bounds["from"], bounds["to"], errors


def page_number(args) -> int:
    try:
        return max(1, min(int(args.get("page", 1)), 100000))
    except (TypeError, ValueError):
        return 1


def neutralise(value) -> str:
    """A CSV cell that spreadsheets will not run as a formula (OWASP CSV injection)."""
    text = "" if value is None else str(value)
    if text.startswith(_FORMULA_START):
        return "'" + text
    return text


def _filtered(actor, args):
    query = authz.scope(actor, AuditEntry, "audit")
    filters = {k: (args.get(k) or "").strip()[:100]
               for k in ("entity_type", "action", "actor", "from", "to")}
    start, end, errors = date_range(args, actor.organization)
    if filters["entity_type"]:
        query = query.where(AuditEntry.entity_type == filters["entity_type"])
    if filters["action"]:
        query = query.where(AuditEntry.action == filters["action"])
    if filters["actor"]:
        query = query.where(AuditEntry.actor_label.contains(filters["actor"]))
    if start:
        query = query.where(AuditEntry.at >= start)
    if end:
        query = query.where(AuditEntry.at < end)
    return query, filters, errors


def _choices(actor, column):
    return [v for (v,) in authz.scope(actor, AuditEntry, "audit",
                                      AuditEntry.select(column).distinct())
            .where(column.is_null(False)).order_by(column).tuples()]


@bp.route("/audit")
@login_required
def audit_log():
    actor = current_actor()
    authz.require(actor, "audit")
    query, filters, errors = _filtered(actor, request.args)
    page = page_number(request.args)
    rows = list(query.order_by(AuditEntry.seq.desc())
                .offset((page - 1) * PAGE_SIZE).limit(PAGE_SIZE + 1))
    entries = []
    for entry in rows[:PAGE_SIZE]:
        changes, details = decode_changes(entry.changes)
        entries.append((entry, changes, details))
    args = {k: v for k, v in filters.items() if v}
    return render_template(
        "audit/log.html", entries=entries, filters=filters, errors=errors, page=page,
        has_next=len(rows) > PAGE_SIZE, args=args,
        entity_types=_choices(actor, AuditEntry.entity_type),
        actions=_choices(actor, AuditEntry.action),
    ), (422 if errors else 200)


CSV_COLUMNS = ("seq", "time_utc", "time_local", "actor_kind", "actor", "ip", "request_id",
               "action", "entity_type", "entity_id", "changes", "hash")


@bp.route("/audit.csv")
@login_required
def audit_csv():
    actor = current_actor()
    authz.require(actor, "audit")
    query, filters, errors = _filtered(actor, request.args)
    if errors:
        field, message = next(iter(errors.items()))
        label = _("From") if field == "from" else _("To")
        abort(400, description=_("The export was not made: %(errors)s",
                                 errors=f"{label}: {message}"))
    org = actor.organization
    writer.event(actor, "audit.exported",
                 details={"format": "csv", "filters": {k: v for k, v in filters.items() if v}})

    def generate():
        buf = io.StringIO()
        out = csv.writer(buf)
        out.writerow(CSV_COLUMNS)
        for entry in iterate(query.order_by(AuditEntry.seq)):
            out.writerow([neutralise(v) for v in (
                entry.seq, utc_iso(entry.at, "seconds"),
                to_local(entry.at, org).isoformat(timespec="seconds"), entry.actor_kind,
                entry.actor_label, entry.ip, entry.request_id, entry.action, entry.entity_type,
                entry.entity_id, entry.changes, entry.hash)])
            if buf.tell() > 64 * 1024:
                yield buf.getvalue()
                buf.seek(0)
                buf.truncate()
        yield buf.getvalue()

    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%d-%H%M")
    return Response(stream_with_context(generate()), mimetype="text/csv",
                    headers={"Content-Disposition":
                             f'attachment; filename="audit-{org.slug}-{stamp}.csv"'})
