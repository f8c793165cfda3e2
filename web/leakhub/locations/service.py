"""Locations and energy settings: services used by the web views, the API, imports and the CLI.
Reads go through authz.scope, writes through audit.writer."""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

from flask_babel import gettext as _

from .. import authz
from ..audit import writer
from ..core.db import database, utcnow
from ..core.validation import Fields, ValidationError
from ..leaks.models import Leak
from ..plans.service import release_files_of
from .models import KINDS, PARENT_KINDS, EnergySettings, Location

# ---------------------------------------------------------------- locations: reading

def subtree_condition(location: Location):
    """SQL condition "is `location` or below it" on Location (path prefix, indexed)."""
    return Location.path.startswith(location.path)


def subtree_ids_query(actor, location: Location):
    """A sub-select of the ids in a location's subtree (for `X.location.in_(...)`)."""
    return (authz.scope(actor, Location, "view", Location.select(Location.id))
            .where(subtree_condition(location)))


def all_locations(actor) -> list[Location]:
    return list(authz.scope(actor, Location, "view").order_by(Location.path))


@dataclass
class Node:
    location: Location
    children: list = field(default_factory=list)


def tree(actor) -> list[Node]:
    """The visible locations as a tree; siblings sorted by code, then name."""
    nodes = {loc.id: Node(loc) for loc in all_locations(actor)}
    roots = []
    for node in nodes.values():
        parent = nodes.get(node.location.parent_id)
        (parent.children if parent else roots).append(node)

    def sort(items):
        items.sort(key=lambda n: (n.location.code.lower(), n.location.name.lower()))
        for n in items:
            sort(n.children)
    sort(roots)
    return roots


def flat_tree(actor) -> list[Location]:
    """Depth-first, for <select> options (indent by `depth`)."""
    out = []

    def walk(nodes):
        for n in nodes:
            out.append(n.location)
            walk(n.children)
    walk(tree(actor))
    return out


def tree_options(actor) -> list[tuple[int, str]]:
    """(id, label indented by depth) in flat_tree's order, for <select>s. Built from plain
    tuples: at 1,000 locations a model instance per location costs more than the query, and
    peewee's converters per value (integers and texts here, alike on both databases) a third
    of the rest."""
    query = (authz.scope(actor, Location, "view",
                         Location.select(Location.id, Location.parent, Location.code,
                                         Location.name, Location.depth))
             .order_by(Location.path))
    visible = {loc_id: (parent_id, code, name, depth)
               for loc_id, parent_id, code, name, depth in database.execute(query).fetchall()}
    children: dict = {}
    for loc_id, (parent_id, _code, _name, _depth) in visible.items():
        children.setdefault(parent_id if parent_id in visible else None, []).append(loc_id)
    out = []

    def walk(ids):  # siblings as tree() sorts them: by code, then name
        for i in sorted(ids, key=lambda i: (visible[i][1].lower(), visible[i][2].lower())):
            _parent, code, name, depth = visible[i]
            out.append((i, ("— " * depth) + Location.label_of(code, name)))
            walk(children.get(i, ()))
    walk(children.get(None, ()))
    return out


def sites(actor) -> list[Location]:
    return list(authz.scope(actor, Location, "view").where(Location.kind == "site")
                .order_by(Location.code, Location.name))


def ancestors(actor, location: Location) -> list[Location]:
    ids = location.ancestor_ids[:-1]
    if not ids:
        return []
    found = {loc.id: loc for loc in authz.scope(actor, Location, "view")
             .where(Location.id.in_(ids))}
    return [found[i] for i in ids if i in found]


def resolve_location(actor, location_id, field_name: str = "location") -> Location:
    """A location id from input → the row, or a ValidationError naming the field (never
    another organization's row)."""
    loc = None
    if location_id not in (None, ""):
        try:
            loc = (authz.scope(actor, Location, "view")
                   .where(Location.id == int(location_id)).first())
        except (TypeError, ValueError):
            loc = None
    if loc is None:
        raise ValidationError(_("Choose a location."), field_name)
    return loc


# ---------------------------------------------------------------- locations: writing

def parse_location_form(data, *, creating: bool) -> dict:
    f = Fields(data)
    out = {
        "code": f.text("code", required=True, max_length=40),
        "name": f.text("name", required=True, max_length=200),
        "notes": f.text("notes", max_length=5000),
    }
    if creating:
        out["kind"] = f.choice("kind", KINDS, required=True)
        out["parent"] = f.integer("parent")
    f.check()
    return out


def _check_code_unique(actor, parent_id, code, exclude_id=None):
    query = authz.scope(actor, Location, "view").where(
        Location.code == code,
        Location.parent.is_null() if parent_id is None else Location.parent == parent_id)
    if exclude_id is not None:
        query = query.where(Location.id != exclude_id)
    if query.exists():
        raise ValidationError(_("Another location at this level already has code %(code)s.",
                                code=code), "code")


def create_location(actor, *, kind: str, code: str, name: str, parent=None,
                    notes: str = "") -> Location:
    if kind not in KINDS:
        raise ValidationError(_("Choose site, building or area."), "kind")
    if parent is not None and not isinstance(parent, Location):
        parent = resolve_location(actor, parent, "parent")
    parent_kind = parent.kind if parent is not None else None
    if parent_kind not in PARENT_KINDS[kind]:
        if kind == "site":
            raise ValidationError(_("A site has no parent."), "parent")
        raise ValidationError(
            _("A %(kind)s must be placed in a %(parents)s.", kind=_(kind),
              parents=" / ".join(_(p) for p in PARENT_KINDS[kind])), "parent")
    # Where the new location lands: "create" below its parent (the decision point's target
    # check; the parent is the only reference a location has, and it never changes later).
    authz.require_target(actor, "create", parent, "parent")
    if len(parent.path if parent else "/") > 230:
        raise ValidationError(_("The location tree is too deep here."), "parent")
    _check_code_unique(actor, parent.id if parent else None, code)
    return writer.create(actor, Location, kind=kind, code=code, name=name, parent=parent,
                         notes=notes or "")


def update_location(actor, location: Location, *, expected_version: int | None, code: str,
                    name: str, notes: str = "") -> Location:
    _check_code_unique(actor, location.parent_id, code, exclude_id=location.id)
    return writer.update(actor, location, {"code": code, "name": name, "notes": notes or "",
                                           "updated_at": utcnow()},
                         expected_version=expected_version)


def delete_location(actor, location: Location) -> None:
    if authz.scope(actor, Location, "view").where(Location.parent == location.id).exists():
        raise ValidationError(_("This location still has locations below it."))
    if authz.scope(actor, Leak, "view").where(Leak.location == location.id).exists():
        raise ValidationError(_("Leaks are recorded at this location; it cannot be deleted."))
    with database.atomic():
        release_files_of(location)  # after the deletion commits
        writer.delete(actor, location)


# ---------------------------------------------------------------- energy settings

def list_settings(actor, site: Location | None = "all") -> list[EnergySettings]:
    query = authz.scope(actor, EnergySettings, "view")
    if site is None:
        query = query.where(EnergySettings.site.is_null())
    elif site != "all":
        query = query.where(EnergySettings.site == site)
    return list(query.order_by(EnergySettings.site.is_null(False), EnergySettings.site,
                               EnergySettings.valid_from.desc()))


def parse_settings_form(data, *, site_row: bool) -> dict:
    """Organization rows need every value except price per m³ (control factor defaults to 1);
    site rows may leave any value empty (inherit)."""
    required = not site_row
    f = Fields(data)
    out = {
        "valid_from": f.date("valid_from", required=True),
        "price_per_kwh": f.decimal("price_per_kwh", required=required, min_value=0,
                                   max_value=100, places=5),
        "currency": f.text("currency", required=required, max_length=3).upper() or None,
        "specific_power": f.decimal("specific_power", required=required, min_value="0.5",
                                    max_value=50, places=3),
        "operating_hours": f.integer("operating_hours", required=required, min_value=1,
                                     max_value=8784),
        "co2_factor": f.decimal("co2_factor", required=required, min_value=0, max_value=5,
                                places=4),
        "price_per_m3": f.decimal("price_per_m3", min_value=0, max_value=100, places=5),
        "control_factor": f.decimal("control_factor", min_value=0, max_value=1, places=3),
        "note": f.text("note", max_length=200),
    }
    if out["currency"] and (len(out["currency"]) != 3 or not out["currency"].isalpha()):
        f.error("currency", _("Use a three-letter currency code such as EUR."))
    if site_row:
        out["site"] = f.integer("site")
    f.check()
    return out


def _check_settings_date_free(actor, site_id, valid_from, exclude_id=None):
    query = authz.scope(actor, EnergySettings, "view").where(
        EnergySettings.valid_from == valid_from,
        EnergySettings.site.is_null() if site_id is None else EnergySettings.site == site_id)
    if exclude_id is not None:
        query = query.where(EnergySettings.id != exclude_id)
    if query.exists():
        raise ValidationError(_("Settings valid from this date already exist; edit them "
                                "instead."), "valid_from")


def create_settings(actor, /, *, site=None, **values) -> EnergySettings:
    """Organization default (site None) or a site override. Requires "manage"."""
    authz.require(actor, "manage")
    if site is not None and not isinstance(site, Location):
        site = resolve_location(actor, site, "site")
    if site is not None and site.kind != "site":
        raise ValidationError(_("Energy settings can be set for sites only."), "site")
    valid_from = values.get("valid_from")
    if not isinstance(valid_from, dt.date):
        raise ValidationError(_("This field is required."), "valid_from")
    _check_settings_date_free(actor, site.id if site else None, valid_from)
    fields = {k: values.get(k) for k in EnergySettings.VALUE_FIELDS}
    with database.atomic():
        return writer.create(actor, EnergySettings, site=site, valid_from=valid_from,
                             note=values.get("note") or "", **fields)


def update_settings(actor, row: EnergySettings, *, expected_version: int | None,
                    **values) -> EnergySettings:
    authz.require(actor, "manage", row)
    _check_settings_date_free(actor, row.site_id, values["valid_from"], exclude_id=row.id)
    changes = {k: values.get(k) for k in EnergySettings.VALUE_FIELDS}
    changes["valid_from"] = values["valid_from"]
    changes["note"] = values.get("note") or ""
    return writer.update(actor, row, changes, expected_version=expected_version,
                         action="settings_change")


def delete_settings(actor, row: EnergySettings) -> None:
    authz.require(actor, "manage", row)
    writer.delete(actor, row)
