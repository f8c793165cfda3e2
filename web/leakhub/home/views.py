from __future__ import annotations

from flask import Blueprint, current_app, jsonify, render_template
from flask_login import current_user, login_required

from ..core import migrations
from ..core.db import database

bp = Blueprint("home", __name__)


@bp.route("/")
@login_required
def index():
    if current_user.is_pending:
        return render_template("identity/waiting.html"), 403
    return render_template("home/index.html", org=current_user.organization, user=current_user.user)


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
