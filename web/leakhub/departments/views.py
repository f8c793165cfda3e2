"""Pages: /groups (the organization's administrators): departments, their members, the
directory group each may follow, and their grants. Every write goes through
departments.service / authz.grants like `leakctl group ...`."""
from __future__ import annotations

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _

from .. import authz
from ..authz import grants as grant_service
from ..authz.grants import grant_active, grant_target, grant_valid_through, list_grants
from ..authz.models import LEVEL_LABELS, LEVELS
from ..core.pages import member_required
from ..core.validation import ValidationError
from ..identity.login import current_actor_allowed
from ..identity.models import User
from ..locations import service as locations
from ..surveys.models import Survey
from ..users import service as users
from . import service

bp = Blueprint("departments", __name__)


@bp.route("/groups", methods=["GET", "POST"])
@member_required
def index():
    actor = current_actor_allowed("manage")
    form, errors = {}, {}
    if request.method == "POST":
        form = request.form.to_dict()
        try:
            group = service.create_group(actor, name=form.get("name", ""),
                                         kc_group=form.get("kc_group", ""))
        except ValidationError as exc:
            errors = exc.errors
        else:
            flash(_("Group %(name)s created.", name=group.name), "success")
            return redirect(url_for("departments.detail", group_id=group.id))
    return render_template("departments/index.html", groups=service.list_groups(actor),
                           counts=service.member_counts(actor), form=form,
                           errors=errors), (422 if errors else 200)


def _detail(actor, group, *, form=None, errors=None, member_errors=None, grant_form=None,
            grant_errors=None, code=200):
    tz = actor.organization.timezone
    candidates = [u for u in users.list_users(actor)
                  if u.enabled and u.id not in {m.user_id for m in service.members(actor, group)}]
    return render_template(
        "departments/detail.html", group=group, members=service.members(actor, group),
        candidates=[(u.id, u.email) for u in candidates],
        grants=[(g, grant_target(g), grant_active(g), grant_valid_through(g, tz))
                for g in list_grants(actor, group=group)],
        locations=locations.tree_options(actor),
        surveys=[(s.id, s.name) for s in authz.scope(actor, Survey, "view")
                 .order_by(Survey.period_start.desc(), Survey.name)],
        levels=[(lv, LEVEL_LABELS[lv]) for lv in LEVELS], level_labels=LEVEL_LABELS,
        form=form or {"name": group.name, "kc_group": group.kc_group}, errors=errors or {},
        member_errors=member_errors or {}, grant_form=grant_form or {"level": "view"},
        grant_errors=grant_errors or {}), code


@bp.route("/groups/<int:group_id>", methods=["GET", "POST"])
@member_required
def detail(group_id):
    actor = current_actor_allowed("manage")
    group = service.get_group(actor, group_id)
    if request.method == "POST":
        form = request.form.to_dict()
        try:
            service.update_group(actor, group, name=form.get("name", ""),
                                 kc_group=form.get("kc_group", ""))
        except ValidationError as exc:
            return _detail(actor, group, form=form, errors=exc.errors, code=422)
        flash(_("Group saved."), "success")
        return redirect(url_for("departments.detail", group_id=group.id))
    return _detail(actor, group)


@bp.route("/groups/<int:group_id>/delete", methods=["POST"])
@member_required
def delete(group_id):
    actor = current_actor_allowed("manage")
    group = service.get_group(actor, group_id)
    service.delete_group(actor, group)
    flash(_("Group %(name)s deleted; its members lost its grants at once.", name=group.name),
          "success")
    return redirect(url_for("departments.index"))


@bp.route("/groups/<int:group_id>/members", methods=["POST"])
@member_required
def add_member(group_id):
    actor = current_actor_allowed("manage")
    group = service.get_group(actor, group_id)
    user_id = request.form.get("user", "")
    user = authz.scope(actor, User, "manage").where(
        User.id == (int(user_id) if user_id.isdigit() else 0)).first()
    try:
        if user is None:
            raise ValidationError({"user": _("Choose one of the offered values.")})
        service.add_member(actor, group, user)
    except ValidationError as exc:
        return _detail(actor, group, member_errors=exc.errors, code=422)
    flash(_("%(email)s added to the group.", email=user.email), "success")
    return redirect(url_for("departments.detail", group_id=group.id))


@bp.route("/groups/<int:group_id>/members/<int:user_id>/remove", methods=["POST"])
@member_required
def remove_member(group_id, user_id):
    actor = current_actor_allowed("manage")
    group = service.get_group(actor, group_id)
    user = authz.get_or_404(actor, User, user_id, "manage")
    try:
        service.remove_member(actor, group, user)
    except ValidationError:
        abort(404)
    flash(_("%(email)s removed from the group; its grants no longer apply from the next "
            "click.", email=user.email), "success")
    return redirect(url_for("departments.detail", group_id=group.id))


@bp.route("/groups/<int:group_id>/grants", methods=["POST"])
@member_required
def add_grant(group_id):
    actor = current_actor_allowed("manage")
    group = service.get_group(actor, group_id)
    form = request.form.to_dict()
    try:
        grant_service.add_grant_from_form(actor, form, group=group)
    except ValidationError as exc:
        return _detail(actor, group, grant_form=form, grant_errors=exc.errors, code=422)
    flash(_("Grant given to the group %(name)s.", name=group.name), "success")
    return redirect(url_for("departments.detail", group_id=group.id))


@bp.route("/groups/<int:group_id>/grants/<int:grant_id>/revoke", methods=["POST"])
@member_required
def revoke_grant(group_id, grant_id):
    actor = current_actor_allowed("manage")
    group = service.get_group(actor, group_id)
    grant = grant_service.get_grant(actor, grant_id)
    if grant.group_id != group.id:
        abort(404)
    grant_service.revoke_grant(actor, grant)
    flash(_("Grant revoked; it no longer applies from the members' next click."), "success")
    return redirect(url_for("departments.detail", group_id=group.id))
