"""Survey pages: list, create/edit, detail, comparison with the previous survey, tag sheet."""
from __future__ import annotations

import peewee as pw
from flask import Blueprint, abort, current_app, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from werkzeug.datastructures import MultiDict

from .. import authz
from ..audit.writer import ConflictError
from ..core.pages import conflict_rows, member_required, qr_svg
from ..core.validation import ValidationError, parse_int
from ..identity.login import current_actor
from ..identity.models import User
from ..leaks.models import FIXED_STATUSES, OPEN_STATUSES, Leak
from ..leaks.service import COMPONENT_LABELS, STATUS_LABELS
from ..locations import service as locations
from . import service
from .models import STATUSES, Survey

bp = Blueprint("surveys", __name__)


def status_labels():
    return {"planned": _("planned"), "in_progress": _("in progress"),
            "completed": _("completed"), "cancelled": _("cancelled")}


def _options(actor):
    users = list(authz.scope(actor, User, "view").where(User.role.is_null(False))
                 .order_by(User.name, User.email))
    return {
        "users": [(u.id, u.display_name) for u in users],
        "locations": locations.tree_options(actor),
        "statuses": list(status_labels().items()),
    }


def _form_of(actor, survey: Survey | None) -> dict:
    if survey is None:
        return {"status": "planned", "scope": []}
    return {"name": survey.name, "period_start": survey.period_start.isoformat(),
            "period_end": survey.period_end.isoformat() if survey.period_end else "",
            "auditor_user": survey.auditor_user_id or "", "auditor_company": survey.auditor_company,
            "device": survey.device, "status": survey.status,
            "coverage_percent": "" if survey.coverage_percent is None else survey.coverage_percent,
            "notes": survey.notes, "scope": sorted(service.scope_ids(survey))}


def _posted_form() -> dict:
    form = request.form.to_dict()
    form["scope"] = [int(i) for i in request.form.getlist("scope") if i.isdigit()]
    return form


def _auditor_unseen(survey: Survey | None, options: dict) -> bool:
    """The survey's auditor is a user the reader may not see (an external user sees no user
    list): the form shows it as kept and saving keeps it, instead of offering "none"."""
    return bool(survey is not None and survey.auditor_user_id
                and survey.auditor_user_id not in {uid for uid, _label in options["users"]})


def _submitted(survey: Survey | None, options: dict) -> MultiDict:
    data = MultiDict(request.form)
    if _auditor_unseen(survey, options):
        data["auditor_user"] = str(survey.auditor_user_id)
    return data


@bp.route("/surveys")
@member_required
def index():
    actor = current_actor()
    status = request.args.get("status") if request.args.get("status") in STATUSES else None
    surveys = list(service.list_surveys(actor, status=status))
    counts = {}
    if surveys:
        rows = (authz.scope(actor, Leak, "view",
                            Leak.select(Leak.survey, Leak.status, pw.fn.COUNT(Leak.id)))
                .where(Leak.survey.in_([s.id for s in surveys]))
                .group_by(Leak.survey, Leak.status).tuples())
        for sid, st, n in rows:
            c = counts.setdefault(sid, {"total": 0, "open": 0, "fixed": 0})
            c["total"] += n
            if st in OPEN_STATUSES:
                c["open"] += n
            elif st in FIXED_STATUSES:
                c["fixed"] += n
    return render_template("surveys/index.html", surveys=surveys, counts=counts,
                           statuses=status_labels(), status=status,
                           can_create=service.may_create_survey(actor))


@bp.route("/surveys/new", methods=["GET", "POST"])
@member_required
def new():
    actor = current_actor()
    authz.require(actor, "create")
    if not service.may_create_survey(actor):
        abort(403)
    form = _posted_form() if request.method == "POST" else _form_of(actor, None)
    errors = {}
    if request.method == "POST":
        try:
            values = service.parse_survey_form(request.form)
            survey = service.create_survey(actor, **values)
            flash(_("Survey %(name)s created.", name=survey.name), "success")
            return redirect(url_for("surveys.detail", survey_id=survey.id))
        except ValidationError as exc:
            errors = exc.errors
    return render_template("surveys/form.html", survey=None, form=form, errors=errors,
                           version=None, conflict=[], **_options(actor)), \
        (422 if errors else 200)


@bp.route("/surveys/<int:survey_id>")
@member_required
def detail(survey_id):
    actor = current_actor()
    survey = authz.get_or_404(actor, Survey, survey_id)
    counts = dict(authz.scope(actor, Leak, "view", Leak.select(Leak.status, pw.fn.COUNT(Leak.id)))
                  .where(Leak.survey == survey.id).group_by(Leak.status).tuples())
    return render_template("surveys/detail.html", survey=survey, counts=counts,
                           scope=service.scope_locations(actor, survey),
                           statuses=status_labels(), leak_statuses=STATUS_LABELS,
                           previous=service.previous_survey(actor, survey),
                           can_edit=authz.can(actor, "edit", survey),
                           can_create=(authz.can_create_somewhere(actor)
                                       and authz.can(actor, "create", survey)))


@bp.route("/surveys/<int:survey_id>/edit", methods=["GET", "POST"])
@member_required
def edit(survey_id):
    actor = current_actor()
    survey = authz.get_or_404(actor, Survey, survey_id, "edit")
    form = _posted_form() if request.method == "POST" else _form_of(actor, survey)
    errors, version = {}, survey.version
    options = _options(actor)
    unseen = {"auditor_user": _auditor_unseen(survey, options)}
    if request.method == "POST":
        try:
            values = service.parse_survey_form(_submitted(survey, options))
            expected = parse_int(request.form.get("version"), "version")
            service.update_survey(actor, survey, expected_version=expected, **values)
            flash(_("Saved."), "success")
            return redirect(url_for("surveys.detail", survey_id=survey.id))
        except ValidationError as exc:
            errors = exc.errors
        except ConflictError as exc:
            current = exc.current
            theirs = _form_of(actor, current)
            fields = [("name", _("Name")), ("period_start", _("Start")), ("period_end", _("End")),
                      ("auditor_company", _("External company")), ("device", _("Device")),
                      ("status", _("Status")), ("coverage_percent", _("Coverage %")),
                      ("notes", _("Notes"))]
            rows = conflict_rows(fields, form, theirs)
            return render_template("surveys/form.html", survey=current, form=form, errors={},
                                   version=current.version, conflict=rows, unseen=unseen,
                                   **options), 409
    return render_template("surveys/form.html", survey=survey, form=form, errors=errors,
                           version=version, conflict=[], unseen=unseen, **options), \
        (422 if errors else 200)


@bp.route("/surveys/<int:survey_id>/delete", methods=["POST"])
@member_required
def delete(survey_id):
    actor = current_actor()
    survey = authz.get_or_404(actor, Survey, survey_id, "delete")
    try:
        service.delete_survey(actor, survey)
    except ValidationError as exc:
        flash(next(iter(exc.errors.values())), "error")
        return redirect(url_for("surveys.detail", survey_id=survey.id))
    flash(_("Survey deleted."), "success")
    return redirect(url_for("surveys.index"))


@bp.route("/surveys/<int:survey_id>/compare")
@member_required
def compare(survey_id):
    actor = current_actor()
    survey = authz.get_or_404(actor, Survey, survey_id)
    earlier = service.earlier_surveys(actor, survey)
    against = request.args.get("against", "")
    previous = None
    if against.isdigit():
        previous = next((s for s in earlier if s.id == int(against)), None)
    if previous is None:
        previous = service.previous_survey(actor, survey)
    result = service.compare(actor, survey, previous)
    same_scope = previous is not None and service.scope_ids(previous) == service.scope_ids(survey)
    return render_template("surveys/compare.html", survey=survey, result=result, earlier=earlier,
                           same_scope=same_scope, leak_statuses=STATUS_LABELS,
                           components=COMPONENT_LABELS)


@bp.route("/surveys/<int:survey_id>/tags")
@member_required
def tags(survey_id):
    """Printable tag sheet: tag number + QR code that opens the leak's page."""
    actor = current_actor()
    survey = authz.get_or_404(actor, Survey, survey_id)
    base = current_app.config["LEAKHUB"].public_url.rstrip("/")
    leaks = list(authz.scope(actor, Leak, "view").where(Leak.survey == survey.id,
                                                          Leak.status != "not_a_leak")
                 .order_by(Leak.tag_number, Leak.tag).limit(2000))
    locs = {loc.id: loc for loc in locations.all_locations(actor)}
    cards = [{"leak": lk, "location": locs.get(lk.location_id),
              "url": base + url_for("leaks.detail", leak_id=lk.id),
              "qr": qr_svg(base + url_for("leaks.detail", leak_id=lk.id),
                           label=_("Leak %(tag)s", tag=lk.tag))} for lk in leaks]
    return render_template("surveys/tags.html", survey=survey, cards=cards,
                           components=COMPONENT_LABELS)
