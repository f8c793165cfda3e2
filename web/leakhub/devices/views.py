"""Devices: the administrators' Devices page (/devices: list, add with the secret shown once,
disable/enable). Devices send their findings to `POST /api/v1/ingest/findings` (api/ingest.py)."""
from __future__ import annotations

from flask import Blueprint, current_app, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_login import current_user

from .. import authz
from ..core.pages import member_required
from ..core.validation import ValidationError
from ..identity.login import current_actor, current_actor_allowed
from . import service

pages = Blueprint("devices", __name__)


# ------------------------------------------------------------------ admin page

def _config():
    return current_app.config["LEAKHUB"]



@pages.app_template_global("devices_nav_links")
def devices_nav_links():
    """(href, label, test id) of the Devices page for administrators."""
    if not current_user.is_authenticated or current_user.is_pending:
        return []
    if not authz.can(current_actor(), "manage"):
        return []
    return [(url_for("devices.index"), _("Devices"), "nav-devices")]


def _urls(actor) -> dict:
    """Where a device gets its token and sends its findings."""
    return {"token_url": f"{_config().issuer_for(actor.organization.slug)}"
                         "/protocol/openid-connect/token",
            "ingest_url": _config().public_url + url_for("devices_api.ingest_findings")}


@pages.route("/devices")
@member_required
def index():
    actor = current_actor_allowed("manage")
    return render_template("devices/index.html", devices=service.list_devices(actor),
                           **_urls(actor))


@pages.route("/devices/add", methods=["GET", "POST"])
@member_required
def add():
    actor = current_actor_allowed("manage")
    form, errors = {}, {}
    if request.method == "POST":
        form = {k: request.form.get(k, "") for k in ("name", "model", "serial")}
        try:
            device, secret = service.add_device(_config(), actor, **form)
        except ValidationError as exc:
            errors = exc.errors
        except service.DeviceError as exc:
            errors = {"": str(exc)}
        else:
            # Rendered, never redirected or stored: the secret exists only in this response.
            response = current_app.make_response(render_template(
                "devices/added.html", device=device, secret=secret, **_urls(actor)))
            response.headers["Cache-Control"] = "no-store"
            return response
    return render_template("devices/add.html", form=form, errors=errors), \
        (422 if errors else 200)


def _toggle(device_id, enabled: bool):
    actor = current_actor_allowed("manage")
    try:
        device = service.get_device(actor, device_id)
        service.set_enabled(_config(), actor, device, enabled)
    except service.DeviceError as exc:
        flash(str(exc), "error")
    else:
        flash(_("%(name)s is enabled; it can get tokens again.", name=device.name) if enabled
              else _("%(name)s is disabled; its tokens are refused from now on.",
                     name=device.name), "success")
    return redirect(url_for("devices.index"))


@pages.route("/devices/<int:device_id>/disable", methods=["POST"])
@member_required
def disable(device_id):
    return _toggle(device_id, False)


@pages.route("/devices/<int:device_id>/enable", methods=["POST"])
@member_required
def enable(device_id):
    return _toggle(device_id, True)
