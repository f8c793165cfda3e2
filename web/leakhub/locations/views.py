"""Locations tree and energy settings pages."""
from __future__ import annotations

import datetime as dt

import peewee as pw
from flask import Blueprint, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _

from .. import authz
from ..audit.writer import ConflictError
from ..core.pages import conflict_rows, member_required
from ..core.templating import input_num
from ..core.validation import ValidationError, parse_date, parse_decimal, parse_int
from ..identity.login import current_actor
from ..leaks.models import Leak
from . import service
from .models import EnergySettings, Location
from .settings import DEFAULTS, SettingsResolver

bp = Blueprint("locations", __name__)

def _kind_labels():
    return {"site": _("site"), "building": _("building"), "area": _("area")}


def _loc_form(loc: Location | None = None) -> dict:
    if loc is None:
        return {}
    return {"code": loc.code, "name": loc.name, "notes": loc.notes, "kind": loc.kind,
            "parent": loc.parent_id or ""}


@bp.route("/locations")
@member_required
def index():
    actor = current_actor()
    roots = service.tree(actor)
    counts = dict(authz.scope(actor, Leak, "view",
                              Leak.select(Leak.location, pw.fn.COUNT(Leak.id)))
                  .group_by(Leak.location).tuples())
    totals = {}

    def total(node):
        totals[node.location.id] = counts.get(node.location.id, 0) + sum(
            total(child) for child in node.children)
        return totals[node.location.id]
    for root in roots:
        total(root)
    return render_template("locations/index.html", roots=roots, counts=totals,
                           kinds=_kind_labels(),
                           # A new site lies outside every grant: only for unrestricted roles.
                           can_create=(authz.role_allows(actor, "create")
                                       and authz.unrestricted(actor, "create")))


def _parent_options(actor, kind=None):
    return [(loc.id, ("— " * loc.depth) + loc.label + f" ({_kind_labels()[loc.kind]})")
            for loc in service.flat_tree(actor) if loc.kind != "area" or kind in (None, "area")]


@bp.route("/locations/new", methods=["GET", "POST"])
@member_required
def new():
    actor = current_actor()
    authz.require(actor, "create")
    form = request.form.to_dict() if request.method == "POST" else {
        "parent": request.args.get("parent", ""), "kind": request.args.get("kind", "site")}
    errors = {}
    if request.method == "POST":
        try:
            values = service.parse_location_form(request.form, creating=True)
            loc = service.create_location(actor, **values)
            flash(_("Location %(name)s created.", name=loc.label), "success")
            return redirect(url_for("locations.detail", loc_id=loc.id))
        except ValidationError as exc:
            errors = exc.errors
    return render_template("locations/form.html", loc=None, form=form, errors=errors,
                           kinds=_kind_labels(), parents=_parent_options(actor)), \
        (422 if errors else 200)


@bp.route("/locations/<int:loc_id>")
@member_required
def detail(loc_id):
    actor = current_actor()
    loc = authz.get_or_404(actor, Location, loc_id)
    children = list(authz.scope(actor, Location, "view").where(Location.parent == loc.id)
                    .order_by(Location.code, Location.name))
    sub = service.subtree_ids_query(actor, loc)
    leak_count = authz.scope(actor, Leak, "view").where(Leak.location.in_(sub)).count()
    open_count = authz.scope(actor, Leak, "view").where(
        Leak.location.in_(sub), Leak.status.in_(("open", "repair_planned", "deferred"))).count()
    overrides = service.list_settings(actor, loc) if loc.kind == "site" else []
    effective = SettingsResolver(actor).at(loc.site_id, dt.date.today())
    return render_template("locations/detail.html", loc=loc, children=children,
                           ancestors=service.ancestors(actor, loc), kinds=_kind_labels(),
                           leak_count=leak_count, open_count=open_count, overrides=overrides,
                           effective=effective, can_edit=authz.can(actor, "edit", loc),
                           can_create=authz.can(actor, "create", loc),
                           can_manage=authz.can(actor, "manage"))


@bp.route("/locations/<int:loc_id>/edit", methods=["GET", "POST"])
@member_required
def edit(loc_id):
    actor = current_actor()
    loc = authz.get_or_404(actor, Location, loc_id, "edit")
    form = request.form.to_dict() if request.method == "POST" else _loc_form(loc)
    errors, conflict = {}, []
    version = loc.version
    if request.method == "POST":
        try:
            values = service.parse_location_form(request.form, creating=False)
            expected = parse_int(request.form.get("version"), "version")
            service.update_location(actor, loc, expected_version=expected, **values)
            flash(_("Saved."), "success")
            return redirect(url_for("locations.detail", loc_id=loc.id))
        except ValidationError as exc:
            errors = exc.errors
        except ConflictError as exc:
            current = exc.current
            version = current.version
            conflict = conflict_rows([("code", _("Code")), ("name", _("Name")),
                                      ("notes", _("Notes"))], form, current)
            return render_template("locations/form.html", loc=current, form=form, errors={},
                                   conflict=conflict, version=version, kinds=_kind_labels(),
                                   parents=[]), 409
    return render_template("locations/form.html", loc=loc, form=form, errors=errors,
                           version=version, kinds=_kind_labels(), parents=[],
                           conflict=conflict), (422 if errors else 200)


@bp.route("/locations/<int:loc_id>/delete", methods=["POST"])
@member_required
def delete(loc_id):
    actor = current_actor()
    loc = authz.get_or_404(actor, Location, loc_id, "delete")
    parent_id = loc.parent_id
    try:
        service.delete_location(actor, loc)
    except ValidationError as exc:
        flash(next(iter(exc.errors.values())), "error")
        return redirect(url_for("locations.detail", loc_id=loc.id))
    flash(_("Location deleted."), "success")
    return redirect(url_for("locations.detail", loc_id=parent_id) if parent_id
                    else url_for("locations.index"))


# ---------------------------------------------------------------- energy settings

SETTINGS_FIELDS = ("valid_from", "price_per_kwh", "currency", "specific_power",
                   "operating_hours", "co2_factor", "price_per_m3", "control_factor", "note")


def _settings_labels():
    return [("valid_from", _("Valid from")), ("price_per_kwh", _("Electricity price per kWh")),
            ("currency", _("Currency")),
            ("specific_power", _("Specific power kW/(m³/min)")),
            ("operating_hours", _("Operating hours per year")),
            ("co2_factor", _("CO2 factor kg/kWh")),
            ("price_per_m3", _("Price per m³ of compressed air")),
            ("control_factor", _("Compressor control factor")), ("note", _("Note"))]


def _settings_form(row: EnergySettings | None) -> dict:

    if row is None:
        return {}
    out = {k: input_num(getattr(row, k)) if k not in ("valid_from", "currency", "note")
           else (getattr(row, k) or "") for k in SETTINGS_FIELDS}
    out["valid_from"] = row.valid_from.isoformat()
    out["site"] = row.site_id or ""
    return out


@bp.route("/settings/energy", methods=["GET", "POST"])
@member_required
def energy():
    """Organization defaults (and an overview of site overrides). Admins only."""
    actor = current_actor()
    authz.require(actor, "manage")
    site_id = request.values.get("site", "")
    site_id = int(site_id) if site_id.isdigit() else None
    form = request.form.to_dict() if request.method == "POST" else {"site": site_id or ""}
    errors = {}
    if request.method == "POST":
        try:
            site_row = bool(request.form.get("site"))
            values = service.parse_settings_form(request.form, site_row=site_row)
            row = service.create_settings(actor, **values)
            flash(_("Energy settings saved."), "success")
            if row.site_id:
                return redirect(url_for("locations.detail", loc_id=row.site_id))
            return redirect(url_for("locations.energy"))
        except ValidationError as exc:
            errors = exc.errors
    rows = service.list_settings(actor, None)
    overrides = [r for r in service.list_settings(actor) if r.site_id is not None]
    sites = {s.id: s for s in service.sites(actor)}
    return render_template("locations/energy.html", rows=rows, overrides=overrides, sites=sites,
                           site_options=[(s.id, s.label) for s in sites.values()],
                           form=form, errors=errors, defaults=DEFAULTS,
                           labels=dict(_settings_labels())), (422 if errors else 200)


@bp.route("/settings/energy/<int:row_id>/edit", methods=["GET", "POST"])
@member_required
def energy_edit(row_id):
    actor = current_actor()
    authz.require(actor, "manage")
    row = authz.get_or_404(actor, EnergySettings, row_id, "manage")
    form = request.form.to_dict() if request.method == "POST" else _settings_form(row)
    errors, conflict, version = {}, [], row.version
    if request.method == "POST":
        if request.form.get("delete"):
            site_id = row.site_id
            service.delete_settings(actor, row)
            flash(_("Energy settings deleted."), "success")
            return redirect(url_for("locations.detail", loc_id=site_id) if site_id
                            else url_for("locations.energy"))
        try:
            values = service.parse_settings_form(request.form, site_row=row.site_id is not None)
            values.pop("site", None)
            expected = parse_int(request.form.get("version"), "version")
            service.update_settings(actor, row, expected_version=expected, **values)
            flash(_("Energy settings saved."), "success")
            return redirect(url_for("locations.detail", loc_id=row.site_id) if row.site_id
                            else url_for("locations.energy"))
        except ValidationError as exc:
            errors = exc.errors
        except ConflictError as exc:
            conflict = conflict_rows(_settings_labels(), form, exc.current,
                                     fmt=lambda n, v: _fmt_setting(n, v))
            version = exc.current.version
            return render_template("locations/energy_form.html", row=exc.current, form=form,
                                   errors={}, conflict=conflict, version=version,
                                   labels=dict(_settings_labels())), 409
    return render_template("locations/energy_form.html", row=row, form=form, errors=errors,
                           conflict=conflict, version=version,
                           labels=dict(_settings_labels())), (422 if errors else 200)


def _fmt_setting(name, value):

    if value in (None, ""):
        return ""
    try:
        if name == "valid_from":
            return parse_date(value).isoformat()
        if name in ("currency", "note"):
            return str(value)
        return input_num(parse_decimal(value))
    except ValidationError:
        return str(value)
