"""/admin/system: the installation's health (the checks of `leakctl status`), the deployment
log and the worker jobs' last runs.

Who: administrators ("manage") of the operator organization (LEAKHUB_ORG_SLUG) only. The
page describes the whole appliance — every organization on it — so for the administrators of
the other organizations (tenants of the same appliance) the URL does not exist (404).

The blueprint also carries two app-wide hooks of this feature: the admin pages' IP allow-list
(ops/allowlist.py) and the web's request metrics (ops/metrics.py).
"""
from __future__ import annotations

import time

from flask import Blueprint, abort, current_app, g, render_template, request, url_for
from flask_babel import gettext as _
from flask_login import current_user, login_required

from .. import authz
from ..identity.login import current_actor
from ..jobs.models import JobRun
from . import allowlist, metrics
from .deployments import recent
from .status import all_checks

bp = Blueprint("ops", __name__)


# -- app-wide hooks of this feature (registered with the blueprint) -----------------------------

@bp.before_app_request
def _admin_allow_list():
    """Admin pages only from LEAKHUB_ADMIN_ALLOW (ops/allowlist.py)."""
    return allowlist.check_request()


@bp.after_app_request
def _count_request(response):
    started = g.get("started")
    if started is not None:
        metrics.observe_request(request.method, request.endpoint, response.status_code,
                                time.perf_counter() - started)
    return response


@bp.record_once
def _fresh_request_metrics(state):
    """The web's request counters start from zero with each start of the web."""
    if metrics.web_metrics_enabled():
        metrics.reset_multiproc_dir()


def _operator_org_actor(actor) -> bool:
    config = current_app.config["LEAKHUB"]
    return bool(config.first_org_slug) and actor.organization.slug == config.first_org_slug


@bp.app_template_global("ops_nav_links")
def ops_nav_links():
    if not current_user.is_authenticated or getattr(current_user, "is_pending", False):
        return []
    actor = current_actor()
    if not (_operator_org_actor(actor) and authz.can(actor, "manage")):
        return []
    return [(url_for("ops.system"), _("System"), "nav-system")]


def job_last_runs() -> list[tuple[str, JobRun | None, JobRun | None]]:
    """(job, last run, last failed run) for every job the worker schedules or has run."""
    names = [row.job for row in JobRun.select(JobRun.job).distinct()]
    try:
        from leakhub_worker.schedule import JOBS

        names = [name for name, _f, _t in JOBS] + sorted(set(names) - {n for n, _f, _t in JOBS})
    except Exception:   # the worker's table is optional for this page
        names = sorted(names)
    out = []
    for name in names:
        last = JobRun.select().where(JobRun.job == name).order_by(JobRun.started_at.desc()).first()
        failed = (JobRun.select().where((JobRun.job == name) & (JobRun.status == "failed"))
                  .order_by(JobRun.started_at.desc()).first())
        out.append((name, last, failed))
    return out


@bp.route("/admin/system")
@login_required
def system():
    actor = current_actor()
    if not _operator_org_actor(actor):
        abort(404)
    authz.require(actor, "manage")
    config = current_app.config["LEAKHUB"]
    checks = all_checks(config)
    return render_template("ops/system.html", checks=checks, ok=all(c.ok for c in checks),
                           deployments=recent(20), jobs=job_last_runs())
