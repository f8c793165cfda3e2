from __future__ import annotations

from flask import Blueprint, current_app, jsonify, render_template
from flask_login import current_user, login_required

from .. import authz
from ..core import migrations
from ..core.db import database
from ..core.templating import org_tz
from ..identity.login import current_actor
from ..leaks import service as leaks
from ..surveys.models import Survey

bp = Blueprint("home", __name__)

HOME_SURVEYS = 20


def my_surveys(actor) -> list[tuple[Survey, bool]]:
    """The next step for someone who records leaks: the planned and running surveys the actor
    sees (his own as auditor first), each with whether he may record a leak in it."""
    me = actor.user.id if actor.user is not None else 0
    mine = Survey.auditor_user == me
    rows = list(authz.scope(actor, Survey, "view")
                .where(Survey.status.in_(("planned", "in_progress")))
                .order_by(mine.desc(), Survey.period_start.desc(), Survey.id.desc())
                .limit(HOME_SURVEYS))
    somewhere = authz.can_create_somewhere(actor)
    return [(s, somewhere and authz.can(actor, "create", s)) for s in rows]


@bp.route("/")
@login_required
def index():
    if current_user.is_pending:
        return render_template("identity/waiting.html"), 403
    actor = current_actor()
    return render_template("home/index.html", org=current_user.organization,
                           user=current_user.user, surveys=my_surveys(actor),
                           can_record=authz.can_create_somewhere(actor),
                           follow_up=leaks.follow_up_counts(actor, tzname=org_tz()))


@bp.route("/healthz")
def healthz():
    """Liveness: the process answers. No dependencies checked."""
    return jsonify(status="ok")


@bp.route("/readyz")
def readyz():
    """Readiness: database reachable and migrated, Keycloak reachable."""
    import requests

    config = current_app.config["LEAKHUB"]
    checks = {}
    try:
        database.execute_sql("SELECT 1")
        checks["database"] = "ok" if not migrations.pending() else "migrations pending"
    except Exception as exc:
        checks["database"] = f"error: {type(exc).__name__}"
    try:
        resp = requests.get(f"{config.keycloak_url}/realms/master", timeout=3)
        checks["keycloak"] = "ok" if resp.status_code == 200 else f"status {resp.status_code}"
    except requests.RequestException as exc:
        checks["keycloak"] = f"error: {type(exc).__name__}"
    ok = all(v == "ok" for v in checks.values())
    return jsonify(status="ok" if ok else "unavailable", checks=checks), (200 if ok else 503)
