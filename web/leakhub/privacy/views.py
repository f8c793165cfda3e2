"""Pages: unlock, erase and export a user (administrators, from the user page), one's own
export (/account/export.json), the organization's lock-out mode and profiling rules
(/organization/privacy, shown on the settings page)."""
from __future__ import annotations

import json

from flask import Blueprint, Response, current_app, flash, redirect, request, url_for
from flask_babel import gettext as _
from flask_login import current_user, login_required

from ..core.pages import member_required
from ..core.validation import ValidationError
from ..identity.login import current_actor, current_actor_allowed
from . import service

bp = Blueprint("privacy", __name__)


def _config():
    return current_app.config["LEAKHUB"]



def _json_download(data: dict, name: str) -> Response:
    body = json.dumps(data, indent=2, ensure_ascii=False, sort_keys=True)
    return Response(body, mimetype="application/json", headers={
        "Content-Disposition": f'attachment; filename="{name}"',
        "Cache-Control": "no-store"})


@bp.app_template_global("privacy_lock_state")
def lock_state(user):
    """Keycloak's lock-out state of `user` for the user page ({failures, locked}), or None
    when Keycloak cannot tell (unreachable, user unknown there)."""
    return service.lock_state(_config(), current_actor_allowed("manage"), user)


@bp.route("/users/<int:user_id>/unlock", methods=["POST"])
@member_required
def unlock(user_id):
    actor = current_actor_allowed("manage")
    user = service.get_user(actor, user_id)
    try:
        service.unlock(_config(), actor, user)
    except service.PrivacyError as exc:
        flash(str(exc), "error")
    else:
        flash(_("%(email)s is unlocked and may sign in again.", email=user.email), "success")
    return redirect(url_for("users.detail", user_id=user.id))


@bp.route("/users/<int:user_id>/erase", methods=["POST"])
@member_required
def erase(user_id):
    actor = current_actor_allowed("manage")
    user = service.get_user(actor, user_id)
    if (request.form.get("confirm_email") or "").strip().lower() != user.email.lower():
        flash(_("Type the user's e-mail address to confirm the erasure."), "error")
        return redirect(url_for("users.detail", user_id=user.id))
    try:
        service.erase_user(_config(), actor, user)
    except service.PrivacyError as exc:
        flash(str(exc), "error")
        return redirect(url_for("users.detail", user_id=user.id))
    flash(_("The user was erased; they appear as %(name)s from now on.",
            name=service.pseudonym(user.id)), "success")
    return redirect(url_for("users.index"))


@bp.route("/users/<int:user_id>/export.json")
@member_required
def export(user_id):
    actor = current_actor_allowed("manage")
    user = service.get_user(actor, user_id)
    return _json_download(service.export_user(actor, user), f"leakhub-user-{user.id}.json")


@bp.route("/account/export.json")
@login_required
def my_export():
    actor = current_actor()
    user = current_user.user
    return _json_download(service.export_user(actor, user), "leakhub-my-data.json")


@bp.route("/organization/privacy", methods=["POST"])
@member_required
def org_privacy():
    actor = current_actor_allowed("manage")
    try:
        service.set_privacy_settings(_config(), actor, request.form)
    except ValidationError as exc:
        for message in exc.errors.values():
            flash(message, "error")
    except service.PrivacyError as exc:
        flash(str(exc), "error")
    else:
        flash(_("Data protection settings saved."), "success")
    return redirect(url_for("users.org_settings"))
