"""Floor plan pages: `/locations/<id>/plan` shows the plan with its pins (an SVG over the
image, pins coloured and shaped by status, with a legend), takes an upload (replacing asks
whether to keep the pins) and places a leak by a click or tap (static/js/floorplan.js fills
the fractions; without script the x/y fields can be typed)."""
from __future__ import annotations

import logging

from flask import Blueprint, abort, flash, redirect, render_template, request, send_file, url_for
from flask_babel import gettext as _

from .. import authz
from ..core.crypto import DataKeyError
from ..core.pages import member_required
from ..identity.login import current_actor
from ..leaks.service import STATUS_LABELS
from ..locations.models import Location
from . import service

bp = Blueprint("plans", __name__)
log = logging.getLogger("leakhub.plans")


def _legend():
    return [(status, STATUS_LABELS.get(status, status), colour, shape,
             service.SHAPE_LABELS[shape])
            for status, (colour, shape) in service.STATUS_STYLE.items()]


@bp.app_template_global()
def leak_plan(leak):
    """For the leak page: (plan page URL, pinned?) of the leak's floor plan, or None."""
    try:
        plan = service.plan_for_leak(current_actor(), leak)
    except Exception:  # noqa: BLE001 - a plan problem must not break the leak page
        return None
    if plan is None:
        return None
    return (url_for("plans.show", loc_id=plan.location_id, leak=leak.id),
            service.is_pinned(leak, plan))


@bp.route("/locations/<int:loc_id>/plan")
@member_required
def show(loc_id, error=None, status=200):
    actor = current_actor()
    loc = authz.get_or_404(actor, Location, loc_id)
    plan = service.plan_of(actor, loc)
    leaks = service.plan_leaks(actor, loc)
    pins = [service.pin_of(lk) for lk in leaks if service.is_pinned(lk, plan)]
    selected = request.values.get("leak", type=int)
    return render_template("plans/show.html", loc=loc, plan=plan, leaks=leaks, pins=pins,
                           pinned={p.leak.id for p in pins}, selected=selected,
                           legend=_legend(), error=error,
                           status_labels={k: str(v) for k, v in STATUS_LABELS.items()},
                           can_edit=authz.can(actor, "edit", loc)), status


@bp.route("/locations/<int:loc_id>/plan", methods=["POST"])
@member_required
def upload(loc_id):
    actor = current_actor()
    loc = authz.get_or_404(actor, Location, loc_id, "edit")
    f = request.files.get("plan")
    data = f.read() if f else b""
    keep = request.form.get("pins") == "keep"
    try:
        service.upload_plan(actor, loc, (f.filename if f else "") or "", data, keep_pins=keep)
    except service.PlanError as exc:
        return show(loc_id, error=str(exc), status=exc.status)
    flash(_("Floor plan saved."), "success")
    return redirect(url_for("plans.show", loc_id=loc.id))


@bp.route("/locations/<int:loc_id>/plan/delete", methods=["POST"])
@member_required
def delete(loc_id):
    actor = current_actor()
    loc = authz.get_or_404(actor, Location, loc_id, "edit")
    service.delete_plan(actor, loc)
    flash(_("Floor plan removed; its pins were cleared."), "success")
    return redirect(url_for("plans.show", loc_id=loc.id))


@bp.route("/locations/<int:loc_id>/plan/pin", methods=["POST"])
@member_required
def pin(loc_id):
    actor = current_actor()
    loc = authz.get_or_404(actor, Location, loc_id)
    leak_id = request.form.get("leak", type=int)
    if not leak_id:
        return show(loc_id, error=_("Choose the leak to place."), status=422)
    try:
        if request.form.get("clear"):
            leak = service.clear_pin(actor, leak_id)
            flash(_("Pin of %(tag)s removed.", tag=leak.tag), "success")
        else:
            leak = service.set_pin(actor, loc, leak_id, request.form.get("x"),
                                   request.form.get("y"))
            flash(_("%(tag)s placed on the plan.", tag=leak.tag), "success")
    except service.PlanError as exc:
        return show(loc_id, error=str(exc), status=exc.status)
    return redirect(url_for("plans.show", loc_id=loc.id))


@bp.route("/locations/<int:loc_id>/plan/image")
@member_required
def image(loc_id):
    actor = current_actor()
    loc = authz.get_or_404(actor, Location, loc_id)
    plan = service.plan_of(actor, loc)
    if plan is None:
        abort(404)
    try:
        fh = service.plan_storage(plan.organization_id).open(plan.sha256)
    except FileNotFoundError:
        abort(404)
    except DataKeyError as exc:
        log.error("floor plan %s: %s", plan.id, exc)
        abort(500, description=_("This floor plan cannot be decrypted on the server; the "
                                 "administrators find the details in the log."))
    resp = send_file(fh, mimetype=plan.content_type, download_name="plan",
                     as_attachment=False, etag=plan.sha256, conditional=True, max_age=3600)
    resp.headers["Cache-Control"] = "private, max-age=3600"
    resp.headers["X-Content-Type-Options"] = "nosniff"
    resp.headers["Content-Security-Policy"] = "default-src 'none'; sandbox"
    return resp
