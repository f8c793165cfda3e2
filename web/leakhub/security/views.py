"""/security (administrators): open findings with acknowledgement, recent security events."""
from __future__ import annotations

from flask import Blueprint, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import login_required

from .. import authz
from ..audit import writer
from ..audit.views import date_range, page_number
from ..core.db import utcnow
from ..identity.login import current_actor
from .models import KINDS, SEVERITY_RANK, SOURCES, Finding, SecurityEvent
from .review import rule_title

bp = Blueprint("security", __name__)

PAGE_SIZE = 50
COMMENT_MAX = 1000

# What the page shows for the stored event kinds and sources (issue 14); the filters still
# send the stored names. Unknown names are shown as stored.
KIND_LABELS = {
    "sign_in": _l("Sign-in"), "sign_in_failed": _l("Failed sign-in"),
    "sign_out": _l("Sign-out"), "session_expired": _l("Session expired"),
    "access_denied": _l("Access denied"), "csrf_rejected": _l("Form check failed (CSRF)"),
    "token_rejected": _l("Token rejected"), "rate_limited": _l("Too many requests"),
    "lockout": _l("Account locked"), "credential_changed": _l("Credentials changed"),
    "auth_error": _l("Sign-in error"), "admin_event": _l("Change in the sign-in service"),
    "ip_denied": _l("Refused outside the admin networks"),
}
SOURCE_LABELS = {"leakhub": _l("Leakhub"), "keycloak": _l("Sign-in service (Keycloak)")}


def kind_label(kind: str) -> str:
    label = KIND_LABELS.get(kind)
    return str(label) if label is not None else kind


def source_label(source: str) -> str:
    label = SOURCE_LABELS.get(source)
    return str(label) if label is not None else source


@bp.app_template_global("security_nav_links")
def security_nav_links():
    """(href, label, test id) of this feature's pages the signed-in user may open."""
    from flask_login import current_user

    if not current_user.is_authenticated:
        return []
    actor = current_actor()
    links = []
    if authz.can(actor, "manage"):
        links.append((url_for("security.index"), _("Security"), "nav-security"))
    if authz.can(actor, "audit"):
        links.append((url_for("audit.audit_log"), _("Audit log"), "nav-audit"))
    return links


def _event_filters(actor, args):
    query = authz.scope(actor, SecurityEvent, "manage")
    filters = {k: (args.get(k) or "").strip()[:100]
               for k in ("kind", "source", "user", "ip", "from", "to")}
    start, end, errors = date_range(args, actor.organization)
    if filters["kind"]:
        query = query.where(SecurityEvent.kind == filters["kind"])
    if filters["source"]:
        query = query.where(SecurityEvent.source == filters["source"])
    if filters["user"]:
        query = query.where(SecurityEvent.username.contains(filters["user"]))
    if filters["ip"]:
        query = query.where(SecurityEvent.ip.startswith(filters["ip"]))
    if start:
        query = query.where(SecurityEvent.at >= start)
    if end:
        query = query.where(SecurityEvent.at < end)
    return query, filters, errors


@bp.route("/security")
@login_required
def index():
    actor = current_actor()
    authz.require(actor, "manage")
    findings = sorted(
        authz.scope(actor, Finding, "manage").where(Finding.status == "open"),
        key=lambda f: (SEVERITY_RANK.get(f.severity, 9), -f.last_seen_at.timestamp()))
    acknowledged = list(authz.scope(actor, Finding, "manage")
                        .where(Finding.status == "acknowledged")
                        .order_by(Finding.acknowledged_at.desc()).limit(20))
    query, filters, errors = _event_filters(actor, request.args)
    page = page_number(request.args)
    rows = list(query.order_by(SecurityEvent.at.desc(), SecurityEvent.id.desc())
                .offset((page - 1) * PAGE_SIZE).limit(PAGE_SIZE + 1))
    return render_template(
        "security/index.html", findings=findings, acknowledged=acknowledged,
        events=rows[:PAGE_SIZE], has_next=len(rows) > PAGE_SIZE, page=page, filters=filters,
        errors=errors, args={k: v for k, v in filters.items() if v}, kinds=KINDS,
        sources=SOURCES, rule_title=rule_title, kind_label=kind_label,
        source_label=source_label,
    ), (422 if errors else 200)


@bp.route("/security/findings/<int:finding_id>/acknowledge", methods=["POST"])
@login_required
def acknowledge(finding_id):
    actor = current_actor()
    authz.require(actor, "manage")
    finding = authz.get_or_404(actor, Finding, finding_id, "manage")
    comment = (request.form.get("comment") or "").strip()
    if not comment:
        flash(_("Comment: please say what you found or did before acknowledging."), "error")
        return redirect(url_for("security.index"), code=303)
    if len(comment) > COMMENT_MAX:
        flash(_("Comment: at most %(n)d characters.", n=COMMENT_MAX), "error")
        return redirect(url_for("security.index"), code=303)
    if finding.status != "open":
        flash(_("This finding was already acknowledged."), "error")
        return redirect(url_for("security.index"), code=303)
    try:
        version = int(request.form.get("version", finding.version))
    except ValueError:
        version = -1
    try:
        writer.update(actor, finding, {
            "status": "acknowledged", "acknowledged_by": actor.user,
            "acknowledged_at": utcnow(), "ack_comment": comment,
        }, expected_version=version, action="finding.acknowledged", permission="manage")
    except writer.ConflictError:
        flash(_("Someone else changed this finding in the meantime; please look again."),
              "error")
        return redirect(url_for("security.index"), code=303)
    flash(_("Finding acknowledged."), "success")
    return redirect(url_for("security.index"), code=303)
