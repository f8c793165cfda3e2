"""/admin/backups: list, create now, download (logged), last scheduled run, staleness banner.

Who: administrators ("manage") of the operator organization only — LEAKHUB_ORG_SLUG, the
organization setup creates first. A backup holds every organization's data, so the admins of
the other organizations (tenants of the same appliance) must not see or download it; for them
these URLs do not exist (404).
"""
from __future__ import annotations

from flask import (
    Blueprint,
    abort,
    current_app,
    flash,
    redirect,
    render_template,
    request,
    send_file,
    url_for,
)
from flask_babel import gettext as _
from flask_login import current_user, login_required

from .. import authz
from ..audit import writer
from ..core.db import database, utcnow
from ..identity.login import current_actor
from ..jobs.models import JobRun
from . import archive, pitr
from .inventory import reconcile, records, staleness
from .jobs import REQUEST, open_request, request_backup
from .lock import lock_is_free
from .models import BackupDownload, BackupRecord
from .settings import get_settings

bp = Blueprint("backups", __name__)


def _is_operator_admin(actor) -> bool:
    config = current_app.config["LEAKHUB"]
    return (bool(config.first_org_slug) and actor.organization.slug == config.first_org_slug
            and authz.can(actor, "manage"))


def _require_operator_admin():
    actor = current_actor()
    config = current_app.config["LEAKHUB"]
    if not config.first_org_slug or actor.organization.slug != config.first_org_slug:
        abort(404)
    authz.require(actor, "manage")
    return actor


@bp.app_template_global("backup_nav_links")
def backup_nav_links():
    if not current_user.is_authenticated or current_user.is_pending:
        return []
    if not _is_operator_admin(current_actor()):
        return []
    return [(url_for("backups.index"), _("Backups"), "nav-backups")]


@bp.app_template_global("backup_warning")
def backup_warning():
    """The banner text for operator admins when backups are stale (None otherwise)."""
    if not current_user.is_authenticated or current_user.is_pending:
        return None
    if not _is_operator_admin(current_actor()):
        return None
    try:
        return staleness(current_app.config["LEAKHUB"])
    except Exception:   # a banner must never break a page
        return None


@bp.route("/admin/backups")
@login_required
def index():
    _require_operator_admin()
    config = current_app.config["LEAKHUB"]
    settings = get_settings(config)
    reconcile(config)
    last_run = {job: JobRun.select().where(JobRun.job == job)
                .order_by(JobRun.started_at.desc()).first()
                for job in ("backup", "backup-verify", "backup-rotate", REQUEST)}
    last_run["pitr-base"] = (JobRun.select().where(JobRun.job == "pitr-base")
                             .order_by(JobRun.started_at.desc()).first())
    downloads = list(BackupDownload.select().order_by(BackupDownload.at.desc()).limit(50))
    return render_template(
        "backups/index.html", records=records(), last_run=last_run,
        downloads=downloads, settings=settings, warning=staleness(config),
        busy=not lock_is_free(config), requested=open_request(),
        backup_dir=config.backup_dir, pitr=_pitr_state(config))


def _pitr_state(config) -> dict:
    """The restorable window for the page: {"window": Window} or {"off": reason code}."""
    try:
        return {"window": pitr.current_window(config), "command": pitr.restore_command()}
    except pitr.PitrError as exc:
        text = str(exc)
        return {"off": "sqlite" if text.startswith("PITR needs PostgreSQL")
                else "elsewhere" if text.startswith("PITR is set up by") else "error"}
    except Exception:   # the page must show the archives whatever pgBackRest says
        return {"off": "error"}


@bp.route("/admin/backups/create", methods=["POST"])
@login_required
def create():
    actor = _require_operator_admin()
    if get_settings(current_app.config["LEAKHUB"]).scheduler == "external":
        # No worker here makes backups (LEAKHUB_BACKUP_SCHEDULER=external): a request would wait
        # forever. The page shows how to start the outside scheduler's job instead.
        flash(_("Backups are made by an outside scheduler here (LEAKHUB_BACKUP_SCHEDULER="
                "external); start its backup job instead. Nothing was requested."), "error")
        return redirect(url_for("backups.index"), code=303)
    _row, new = request_backup(actor)
    if new:
        flash(_("Backup requested: the worker starts it within a minute; it appears below when "
                "it is written, and is verified within 15 minutes after that."), "success")
    else:
        flash(_("A backup requested earlier has not finished yet; it appears below when it is "
                "written."), "info")
    return redirect(url_for("backups.index"), code=303)


@bp.route("/admin/backups/<int:backup_id>/download")
@login_required
def download(backup_id):
    actor = _require_operator_admin()
    config = current_app.config["LEAKHUB"]
    record = BackupRecord.get_or_none(BackupRecord.id == backup_id)
    if record is None:
        abort(404)
    path = config.backup_dir / record.file_name
    if not archive.parse_name(record.file_name) or not path.is_file():
        abort(404)
    with database.atomic():
        BackupDownload.create(
            backup=record, file_name=record.file_name, organization=actor.organization,
            user=actor.user, user_label=actor.display[:254], ip=actor.ip,
            user_agent=(request.user_agent.string or "")[:300], at=utcnow())
        writer.event(actor, "backup.downloaded", entity=record,
                     details={"file": record.file_name, "size": record.size,
                              "sha256": record.sha256, "ip": actor.ip})
    response = send_file(path, mimetype="application/octet-stream", as_attachment=True,
                         download_name=record.file_name, conditional=False, etag=False)
    response.headers["Cache-Control"] = "no-store"
    return response
