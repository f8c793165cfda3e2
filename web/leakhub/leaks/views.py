"""Leak pages: list with filters and bulk status, create/edit, detail with status workflow."""
from __future__ import annotations

from decimal import Decimal

from flask import Blueprint, abort, current_app, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _

from .. import authz
from ..audit.writer import ConflictError
from ..core.db import database, utcnow
from ..core.pages import conflict_rows, member_required, qr_svg
from ..core.templating import input_dt, input_num, org_tz
from ..core.validation import (
    ValidationError,
    parse_datetime,
    parse_decimal,
    parse_int,
    utc_to_local,
)
from ..core.web import safe_next
from ..identity.login import current_actor
from ..identity.models import User
from ..locations import service as locations
from ..locations.settings import SettingsResolver
from ..photos import service as photos
from ..security.events import record_http_error
from ..surveys.models import Survey, SurveyScope
from . import calc, service
from .models import CALCULATED_METHODS, COMPONENTS, FIXED_STATUSES, STATUSES, Leak

bp = Blueprint("leaks", __name__)


def _labels():
    return {"statuses": service.STATUS_LABELS, "components": service.COMPONENT_LABELS,
            "methods": service.METHOD_LABELS, "priorities": service.PRIORITY_LABELS,
            "estimates": service.ESTIMATE_LABELS}


def _survey_options(actor):
    return [(sid, f"{name} ({start.isoformat()})") for sid, name, start in
            authz.scope(actor, Survey, "view",
                        Survey.select(Survey.id, Survey.name, Survey.period_start))
            .order_by(Survey.period_start.desc()).limit(200).tuples()]


def _user_options(actor):
    """The users to choose as "Found by": those the actor may list, and always the actor
    (an external auditor sees no user list but records his own findings)."""
    options = [(u.id, u.display_name) for u in authz.scope(actor, User, "view")
               .where(User.role.is_null(False)).order_by(User.name, User.email)]
    me = actor.user if actor.kind == "user" else None
    if me is not None and me.id not in {uid for uid, _label in options}:
        options.insert(0, (me.id, me.display_name))
    return options


def _assignee_filter_options(actor, flt):
    """Assignees to filter by: those the actor may list, and always the actor himself."""
    options = service.assignee_options(actor)
    me = actor.user if actor.kind == "user" else None
    if me is not None and me.id not in {uid for uid, _label in options}:
        options.insert(0, (me.id, me.display_name))
    return options


def _form_options(actor):
    lb = _labels()
    return {
        "location_options": locations.tree_options(actor),
        "survey_options": _survey_options(actor),
        "user_options": _user_options(actor),
        "assignee_options": service.assignee_options(actor),
        "method_options": list(lb["methods"].items()),
        "estimate_options": list(lb["estimates"].items()),
        "component_options": [(c, lb["components"][c]) for c in COMPONENTS],
        "priority_options": list(lb["priorities"].items()),
        "initial_status_options": [(s, lb["statuses"][s]) for s in service.INITIAL_STATUSES],
        "default_cd": input_num(calc.DEFAULT_CD),
        "default_temperature": input_num(calc.DEFAULT_TEMPERATURE_C),
        "has_detector_table": bool(service.detector_table(actor)),
    }


FORM_FIELDS = ("tag", "location", "survey", "found_at", "found_by_user", "found_by",
               "device_serial", "method", "estimate_class", "rate_lpm", "rate_low_lpm",
               "rate_high_lpm", "pressure_bar", "gas", "component", "priority", "description",
               "recommended_action", "spare_part", "due_date", "repaired_at", "repaired_by",
               "repair_cost", "verification_note", "assignee", "order_number", "after_lpm")


def _unseen_references(actor, leak: Leak | None) -> dict:
    """The leak's references the actor may not see (a survey grant without the site, a site
    grant without the survey, a finder among users only managers see): the form shows them
    as kept instead of offering a choice that would replace them (issue 12)."""
    if leak is None:
        return {}
    out = {}
    for name in ("location", "survey", "found_by_user", "assignee"):
        if getattr(leak, name + "_id") is not None and not authz.can(actor, "view",
                                                                      getattr(leak, name)):
            out[name] = True
    return out


def _form_of(leak: Leak) -> dict:
    out = {}
    for name in FORM_FIELDS:
        field = Leak._meta.fields[name]
        value = getattr(leak, name + "_id") if hasattr(field, "rel_model") else getattr(leak, name)
        if name == "found_at":
            value = input_dt(value)
        elif isinstance(value, Decimal):
            value = input_num(value)
        elif hasattr(value, "isoformat"):
            value = value.isoformat()
        out[name] = "" if value is None else value
    for name, value in service.rate_inputs_of(leak).items():
        out[name] = input_num(value)
    return out


# ---------------------------------------------------------------- list + bulk

@bp.route("/leaks")
@member_required
def index():
    actor = current_actor()
    flt = service.parse_filter(request.args)
    # A filter value that cannot be read is shown at its field; listing the leaks without it
    # would show more than was asked for, so nothing is listed until it is corrected.
    page = (service.Page(rows=[], total=0, page=1, per_page=flt.per_page) if flt.errors
            else service.list_leaks(actor, flt, tzname=org_tz()))
    location = (authz.scope(actor, locations.Location, "view")
                .where(locations.Location.id == flt.location).first() if flt.location else None)
    totals = calc.Totals()
    for row in page.rows:
        totals.add(row.leak.rate_lpm, row.figures)
    return render_template(
        "leaks/index.html", page=page, flt=flt, location=location, totals=totals,
        location_options=locations.tree_options(actor), survey_options=_survey_options(actor),
        assignee_options=_assignee_filter_options(actor, flt),
        is_overdue=service.is_overdue, today=service.local_today(org_tz()),
        bulk_statuses=[(s, service.STATUS_LABELS[s]) for s in STATUSES if s != "to_review"],
        can_edit=authz.can(actor, "edit"), can_create=authz.can_create_somewhere(actor),
        **_labels())


@bp.route("/leaks/bulk-status", methods=["POST"])
@member_required
def bulk_status():
    actor = current_actor()
    authz.require(actor, "edit")
    back = safe_next(request.form.get("next"), url_for("leaks.index"))
    if not back.startswith("/leaks"):
        back = url_for("leaks.index")
    ids = [i for i in request.form.getlist("ids") if i.isdigit()]
    try:
        n = service.bulk_change_status(actor, ids, request.form.get("status", ""),
                                       note=(request.form.get("note") or "").strip()[:5000])
    except ValidationError as exc:
        flash(next(iter(exc.errors.values())), "error")
        return redirect(back)
    except ConflictError:
        flash(_("One of the leaks was changed by someone else meanwhile; nothing was changed. "
                "Please try again."), "error")
        return redirect(back)
    flash(_("Status changed for %(n)d leaks.", n=n), "success")
    return redirect(back)


# ---------------------------------------------------------------- create / edit

@bp.route("/leaks/new", methods=["GET", "POST"])
@member_required
def new():
    actor = current_actor()
    authz.require(actor, "create")
    errors, code = {}, 200
    if request.method == "POST":
        form = request.form.to_dict()
        try:
            # Photos taken or chosen in the form: all checked before anything is saved, then
            # stored with the leak in one transaction — a bad photo saves nothing and names
            # the file (the leak's fields come back as typed, their errors beside it).
            found: dict = {}
            try:
                values = service.parse_leak_form(request.form, tzname=org_tz(), creating=True)
            except ValidationError as exc:
                found.update(exc.errors)
            try:
                cleaned = _photos_of_request()
            except photos.PhotoError as exc:
                found["photos"] = str(exc)
                if exc.status == 413:
                    code = 413
            if found:
                raise ValidationError(found)
            with database.atomic():
                leak = service.create_leak(actor, **values)
                if cleaned:
                    photos.store_photos(actor, leak, cleaned)
            if cleaned:
                flash(_("Leak %(tag)s recorded with %(n)d photos.", tag=leak.tag,
                        n=len(cleaned)), "success")
            else:
                flash(_("Leak %(tag)s recorded.", tag=leak.tag), "success")
            if request.form.get("another"):
                # The next finding of the same walk: same survey, location and finder.
                return redirect(url_for("leaks.new", survey=leak.survey_id or "",
                                        location=leak.location_id,
                                        found_by_user=leak.found_by_user_id or "",
                                        found_by=leak.found_by or None))
            return redirect(url_for("leaks.detail", leak_id=leak.id))
        except ValidationError as exc:
            errors = exc.errors
        except authz.TargetForbidden as exc:
            errors, code = {exc.field: exc.message}, 403
            record_http_error(403)
    else:
        now_local = utc_to_local(utcnow(), org_tz())
        form = {"found_at": now_local.strftime("%Y-%m-%dT%H:%M"), "method": "device",
                "component": "other", "priority": "2", "gas": "air", "status": "open",
                "found_by_user": actor.user.id if actor.user else ""}
        survey_id = request.args.get("survey", "")
        if survey_id.isdigit():
            survey = authz.scope(actor, Survey, "view").where(Survey.id == int(survey_id)).first()
            if survey is not None:
                form["survey"] = survey.id
                form["device_serial"] = ""
                scope = [s.location_id for s in authz.scope(actor, SurveyScope, "view")
                         .where(SurveyScope.survey == survey.id)]
                if len(scope) == 1:
                    form["location"] = scope[0]
        loc_id = request.args.get("location", "")
        if loc_id.isdigit():
            form["location"] = int(loc_id)
        # "Save and record another" carries the finder over (validated again on saving).
        if "found_by_user" in request.args:
            finder = request.args.get("found_by_user", "")
            form["found_by_user"] = int(finder) if finder.isdigit() else ""
        if request.args.get("found_by"):
            form["found_by"] = request.args.get("found_by", "")[:200]
    return render_template("leaks/form.html", leak=None, form=form, errors=errors, version=None,
                           conflict=[], unseen={}, **_form_options(actor), **_labels()), \
        (code if code != 200 else 422 if errors else 200)


def _photos_of_request() -> list:
    """The photos posted with the record form, checked and cleaned (photos.clean_image);
    PhotoError naming the first bad file."""
    files = [(f.filename or "", f.read()) for f in request.files.getlist("photos")
             if f and (f.filename or "")]
    if len(files) > photos.MAX_PHOTOS_PER_LEAK:
        raise photos.PhotoError(_("A leak can have at most %(n)d photos.",
                                  n=photos.MAX_PHOTOS_PER_LEAK), 422)
    out = []
    for name, data in files:
        clean_name = photos.sanitize_filename(name)
        out.append((clean_name, photos.clean_image(data, clean_name)))
    return out


@bp.route("/leaks/<int:leak_id>")
@member_required
def detail(leak_id):
    actor = current_actor()
    return _render_detail(actor, authz.get_or_404(actor, Leak, leak_id))


def _render_detail(actor, leak: Leak, status_errors=None, status_form=None, code=200):
    # The leak is authorized; where it is belongs to it (a survey grant may not cover the site).
    location = leak.location
    params = SettingsResolver(actor).at(location.site_id, leak.found_at)
    survey = (authz.scope(actor, Survey, "view").where(Survey.id == leak.survey_id).first()
              if leak.survey_id else None)
    url = current_app.config["LEAKHUB"].public_url.rstrip("/") + url_for(
        "leaks.detail", leak_id=leak.id)
    saved_lpm = calc.saved_lpm(leak.rate_lpm, leak.after_lpm)
    # The assignee by name when the reader may list users, else as "assigned" (no user data
    # beyond what the reader may see), except the reader himself.
    assignee_label = ""
    if leak.assignee_id:
        assignee_label = (leak.assignee.display_name
                          if (actor.user is not None and actor.user.id == leak.assignee_id)
                          or authz.can(actor, "view", leak.assignee) else _("assigned"))
    return render_template(
        "leaks/detail.html", leak=leak, location=location,
        ancestors=locations.ancestors(actor, location), survey=survey, params=params,
        figures=calc.figures(leak.rate_lpm, params), history=service.history(actor, leak),
        rate_inputs=service.rate_inputs_of(leak), calculated=leak.method in CALCULATED_METHODS,
        transitions=[(s, service.STATUS_LABELS[s])
                     for s in service.allowed_transitions(leak.status)],
        qr=qr_svg(url, label=_("Leak %(tag)s", tag=leak.tag)),
        status_errors=status_errors or {}, status_form=status_form or {},
        fixed=leak.status in FIXED_STATUSES, saved_lpm=saved_lpm,
        assignee_options=(service.assignee_options(actor)
                          if "repair_planned" in service.allowed_transitions(leak.status)
                          else []),
        saved=calc.figures(saved_lpm, params), assignee_label=assignee_label,
        overdue=service.is_overdue(leak, service.local_today(org_tz())),
        can_edit=authz.can(actor, "edit", leak), **_labels()), code


def _conflict_fields():
    return [("tag", _("Tag number")), ("location", _("Location")), ("survey", _("Survey")),
            ("found_at", _("Found at")), ("found_by", _("Found by")),
            ("device_serial", _("Device serial")), ("method", _("Method")),
            ("estimate_class", _("Estimate class")), ("rate_lpm", _("Leak rate l/min")),
            ("orifice_diameter_mm", _("Hole diameter")),
            ("discharge_coefficient", _("Discharge coefficient Cd")),
            ("temperature_c", _("Air temperature")), ("detector_db", _("Detector reading")),
            ("detector_distance_m", _("Distance of the reading")),
            ("rate_low_lpm", _("Low")), ("rate_high_lpm", _("High")),
            ("pressure_bar", _("Pressure bar")), ("gas", _("Gas")), ("component", _("Component")),
            ("priority", _("Priority")), ("description", _("Description")),
            ("recommended_action", _("Recommended action")), ("spare_part", _("Spare part")),
            ("due_date", _("Due date")), ("repaired_at", _("Repair date")),
            ("repaired_by", _("Repaired by")), ("repair_cost", _("Repair cost")),
            ("verification_note", _("Verification note")),
            ("assignee", _("Assignee")), ("order_number", _("Maintenance order number")),
            ("after_lpm", _("Leak rate after the repair"))]


def _normalize_for_compare(name, value):
    """Compare what the user typed with what is stored, ignoring formatting differences."""
    if value is None:
        return ""
    value = str(value).strip()
    if name in ("rate_lpm", "rate_low_lpm", "rate_high_lpm", "pressure_bar", "repair_cost",
                "after_lpm",
                *service.RATE_INPUTS):
        try:
            return input_num(parse_decimal(value))
        except ValidationError:
            return value
    if name == "found_at":
        try:
            parsed = parse_datetime(value)
            return parsed.strftime("%Y-%m-%dT%H:%M") if parsed else ""
        except ValidationError:
            return value
    return value


@bp.route("/leaks/<int:leak_id>/edit", methods=["GET", "POST"])
@member_required
def edit(leak_id):
    actor = current_actor()
    leak = authz.get_or_404(actor, Leak, leak_id, "edit")
    errors, version, code = {}, leak.version, 200
    unseen = _unseen_references(actor, leak)
    form = request.form.to_dict() if request.method == "POST" else _form_of(leak)
    if request.method == "POST":
        try:
            data = request.form.copy()
            if unseen.get("location"):  # not offered: kept, as the API keeps a field not sent
                data.setdefault("location", str(leak.location_id))
            values = service.parse_leak_form(data, tzname=org_tz(), creating=False)
            expected = parse_int(request.form.get("version"), "version")
            service.update_leak(actor, leak, expected_version=expected, **values)
            flash(_("Saved."), "success")
            return redirect(url_for("leaks.detail", leak_id=leak.id))
        except ValidationError as exc:
            errors = exc.errors
        except authz.TargetForbidden as exc:
            errors, code = {exc.field: exc.message}, 403
            record_http_error(403)
        except ConflictError as exc:
            current = exc.current
            if current is None:
                abort(404)
            rows = conflict_rows(_conflict_fields(), form, _form_of(current),
                                 fmt=_normalize_for_compare)
            return render_template("leaks/form.html", leak=current, form=form, errors={},
                                   version=current.version, conflict=rows,
                                   unseen=_unseen_references(actor, current),
                                   **_form_options(actor), **_labels()), 409
    return render_template("leaks/form.html", leak=leak, form=form, errors=errors,
                           version=version, conflict=[], unseen=unseen, **_form_options(actor),
                           **_labels()), (code if code != 200 else 422 if errors else 200)


@bp.route("/leaks/<int:leak_id>/status", methods=["POST"])
@member_required
def status(leak_id):
    actor = current_actor()
    leak = authz.get_or_404(actor, Leak, leak_id, "edit")
    try:
        values = service.parse_status_form(request.form)
        expected = parse_int(request.form.get("version"), "version")
        to_status = values.pop("to_status")
        service.change_status(actor, leak, to_status, expected_version=expected, **values)
    except ValidationError as exc:
        return _render_detail(actor, Leak.get_by_id(leak.id), exc.errors, request.form.to_dict(),
                              422)
    except ConflictError as exc:
        current = exc.current
        if current is None:
            abort(404)
        flash(_("Someone else changed this leak in the meantime (status now “%(s)s”). Nothing "
                "was changed; check the current state and try again.",
                s=service.STATUS_LABELS[current.status]), "error")
        return _render_detail(actor, current, {"": _("Conflict: not saved.")},
                              request.form.to_dict(), 409)
    flash(_("Status changed to “%(s)s”.", s=service.STATUS_LABELS[to_status]), "success")
    return redirect(url_for("leaks.detail", leak_id=leak.id))


@bp.route("/leaks/<int:leak_id>/delete", methods=["POST"])
@member_required
def delete(leak_id):
    actor = current_actor()
    leak = authz.get_or_404(actor, Leak, leak_id, "delete")
    service.delete_leak(actor, leak)
    flash(_("Leak %(tag)s deleted.", tag=leak.tag), "success")
    return redirect(url_for("leaks.index"))


@bp.route("/leaks/tag/<tag>")
@member_required
def by_tag(tag):
    """Open a leak by its tag number (typed or scanned from a pre-printed tag)."""
    leak = service.leak_by_tag(current_actor(), tag[:32])
    if leak is None:
        abort(404)
    return redirect(url_for("leaks.detail", leak_id=leak.id))


# ---------------------------------------------------------------- detector table (settings)

@bp.route("/settings/detector-table", methods=["GET", "POST"])
@member_required
def detector_table():
    """The organization's detector table, entered by an administrator from the instrument's
    documentation: it turns a dB reading at a distance and pressure into l/min."""
    actor = current_actor()
    authz.require(actor, "manage")
    errors, code = {}, 200
    if request.method == "POST":
        text = request.form.get("table", "")
        try:
            points = service.parse_detector_table(text)
            n = service.save_detector_table(actor, points)
            flash(_("Detector table saved (%(n)d rows).", n=n), "success")
            return redirect(url_for("leaks.detector_table"))
        except ValidationError as exc:
            errors, code = exc.errors, 422
    else:
        text = service.detector_table_text(service.detector_table(actor))
    return render_template("leaks/detector_table.html", text=text, errors=errors,
                           rows=service.detector_table(actor)), code
