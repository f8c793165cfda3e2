"""Leaks: create/edit, tag numbering, the status workflow with history, lists with filters.

Every function takes the acting `actor`; reads go through authz.scope, writes through
audit.writer. The web views, the API, imports, device ingest and leakctl call these.
"""
from __future__ import annotations

import datetime as dt
import json
import math
import re
from dataclasses import dataclass, field
from decimal import Decimal

import peewee as pw
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l

from .. import authz
from ..audit import writer
from ..core.db import database, utcnow
from ..core.errors import Conflict
from ..core.validation import (
    Fields,
    ValidationError,
    local_to_utc,
    parse_decimal,
    utc_to_local,
)
from ..identity.models import User
from ..locations.models import Location
from ..locations.service import resolve_location, subtree_condition
from ..locations.settings import SettingsResolver
from ..surveys.models import Survey
from . import calc
from .models import (
    CALCULATED_METHODS,
    COMPONENTS,
    ESTIMATE_CLASSES_CFM,
    METHODS,
    PRIORITIES,
    STATUSES,
    DetectorRateRow,
    Leak,
    LeakStatusChange,
)

# ------------------------------------------------------------------ labels (translated)

STATUS_LABELS = {
    "to_review": _l("to review"), "open": _l("open"), "repair_planned": _l("repair planned"),
    "repaired": _l("repaired"), "verified": _l("verified"), "deferred": _l("deferred"),
    "not_a_leak": _l("not a leak"),
}
COMPONENT_LABELS = {
    "coupling": _l("coupling"), "hose": _l("hose"), "tube": _l("tube"), "fitting": _l("fitting"),
    "pipe_joint": _l("pipe joint"), "quick_disconnect": _l("quick disconnect"),
    "frl_unit": _l("FRL unit"), "condensate_trap": _l("condensate trap"), "valve": _l("valve"),
    "flange": _l("flange"), "cylinder": _l("cylinder"), "other": _l("other"),
}
METHOD_LABELS = {"device": _l("measured with a device"), "estimate": _l("estimate class"),
                 "calculated": _l("calculated"),
                 "orifice": _l("calculated from the orifice (hole diameter and pressure)"),
                 "detector": _l("calculated from a detector reading (detector table)")}
PRIORITY_LABELS = {1: _l("high"), 2: _l("medium"), 3: _l("low")}
ESTIMATE_LABELS = {"minimal": _l("minimal (felt, not heard)"), "small": _l("small"),
                   "medium": _l("medium"), "large": _l("large"),
                   "severe": _l("severe (heard at a distance)")}

# ------------------------------------------------------------------ status workflow

# open → repair planned → repaired → verified; or deferred / not a leak.
# "to review": leaks ingested from devices, confirmed (open) or dismissed (not a leak).
TRANSITIONS: dict[str, tuple[str, ...]] = {
    "to_review": ("open", "not_a_leak"),
    "open": ("repair_planned", "repaired", "deferred", "not_a_leak"),
    "repair_planned": ("repaired", "deferred", "open"),
    "repaired": ("verified", "open"),  # back to open: verification found it still leaking
    "deferred": ("open", "repair_planned", "repaired"),
    "verified": (),
    "not_a_leak": ("open",),  # correcting a mistaken dismissal
}
INITIAL_STATUSES = ("open", "to_review")


def allowed_transitions(status: str) -> tuple[str, ...]:
    return TRANSITIONS.get(status, ())


def check_transition(from_status: str, to_status: str, *, tag: str | None = None) -> None:
    if to_status not in STATUSES:
        raise ValidationError(_("Unknown status %(s)s.", s=to_status), "status")
    if to_status in allowed_transitions(from_status):
        return
    allowed = ", ".join(str(STATUS_LABELS[s]) for s in allowed_transitions(from_status))
    who = _("Leak %(tag)s: ", tag=tag) if tag else ""
    if allowed:
        msg = _("cannot change the status from “%(a)s” to “%(b)s”; possible: %(allowed)s.",
                a=STATUS_LABELS[from_status], b=STATUS_LABELS[to_status], allowed=allowed)
    else:
        msg = _("cannot change the status from “%(a)s” to “%(b)s”; “%(a)s” is final.",
                a=STATUS_LABELS[from_status], b=STATUS_LABELS[to_status])
    raise ValidationError(who + msg, "status")


# ------------------------------------------------------------------ tag numbers

_TAG_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._/-]{0,31}$")


def normalize_tag(tag) -> str | None:
    if tag is None:
        return None
    tag = str(tag).strip()
    if not tag:
        return None
    if not _TAG_RE.match(tag):
        raise ValidationError(_("A tag number has up to 32 letters, digits, '-', '.', '/' "
                                "or '_'."), "tag")
    return tag


def tag_number_of(tag: str) -> int | None:
    return int(tag) if tag.isdigit() and len(tag) <= 18 else None


def _tag_query(actor):
    """Tag numbers are unique in the whole organization (database constraint), so the check
    and the sequence look at all of the organization's leaks, whatever the actor's grants:
    through the scope of the organization's system actor (tenant-isolated; it answers only
    "taken" and the highest number, never rows)."""
    return authz.scope(authz.Actor.system(actor.organization, label="tag numbering"), Leak,
                       "view")


def tag_taken(actor, tag: str, exclude_id: int | None = None) -> bool:
    number = tag_number_of(tag)
    cond = Leak.tag == tag
    if number is not None:
        cond = cond | (Leak.tag_number == number)
    query = _tag_query(actor).where(cond)
    if exclude_id is not None:
        query = query.where(Leak.id != exclude_id)
    return query.exists()


def next_tag_number(actor) -> int:
    top = (_tag_query(actor).select(pw.fn.MAX(Leak.tag_number))
           .order_by().scalar())
    return (top or 0) + 1


def _tag_error(tag: str) -> ValidationError:
    return ValidationError(_("Tag number %(tag)s is already used by another leak.", tag=tag),
                           "tag")


# ------------------------------------------------------------------ input

EDIT_FIELDS = ("location", "survey", "found_at", "found_by_user", "found_by", "device_serial",
               "method", "estimate_class", "rate_lpm", "rate_low_lpm", "rate_high_lpm",
               "rate_inputs",
               "pressure_bar", "gas", "component", "priority", "description",
               "recommended_action", "spare_part", "due_date", "repaired_at", "repaired_by",
               "repair_cost", "verification_note", "previous_leak", "assignee",
               "order_number", "after_lpm")


def parse_leak_form(data, *, tzname: str | None, creating: bool) -> dict:
    """Form/JSON fields → typed values (times converted to UTC). Does not touch the DB."""
    f = Fields(data)
    out = {
        "tag": f.text("tag", max_length=32) or None,
        "location": f.integer("location", required=True),
        "survey": f.integer("survey"),
        "found_at": local_to_utc(f.datetime("found_at", required=creating), tzname),
        "found_by_user": f.integer("found_by_user"),
        "found_by": f.text("found_by", max_length=200),
        "device_serial": f.text("device_serial", max_length=64),
        "method": f.choice("method", METHODS, default="device"),
        "estimate_class": f.choice("estimate_class", ESTIMATE_CLASSES_CFM),
        "rate_lpm": f.decimal("rate_lpm", min_value=0, max_value=100000, places=3),
        "rate_low_lpm": f.decimal("rate_low_lpm", min_value=0, max_value=100000, places=3),
        "rate_high_lpm": f.decimal("rate_high_lpm", min_value=0, max_value=100000, places=3),
        "pressure_bar": f.decimal("pressure_bar", min_value=0, max_value=400, places=2),
        "gas": f.text("gas", max_length=32) or "air",
        "component": f.choice("component", COMPONENTS, default="other"),
        "priority": f.choice("priority", PRIORITIES, default=2),
        "description": f.text("description", max_length=10000),
        "recommended_action": f.text("recommended_action", max_length=10000),
        "spare_part": f.text("spare_part", max_length=200),
        "due_date": f.date("due_date"),
        "repaired_at": f.date("repaired_at"),
        "repaired_by": f.text("repaired_by", max_length=200),
        "repair_cost": f.decimal("repair_cost", min_value=0, max_value=10**9, places=2),
        "verification_note": f.text("verification_note", max_length=10000),
        "previous_leak": f.integer("previous_leak"),
        "assignee": f.integer("assignee"),
        "order_number": f.text("order_number", max_length=64),
        "after_lpm": f.decimal("after_lpm", min_value=0, max_value=100000, places=3),
    }
    # Inputs of a calculated rate (methods "orifice" and "detector"): flat fields in forms,
    # the import and the API; check_values keeps those of the chosen method.
    inputs = {
        "orifice_diameter_mm": f.decimal("orifice_diameter_mm", min_value=0, max_value=100,
                                         places=3),
        "discharge_coefficient": f.decimal("discharge_coefficient", min_value=0, max_value=1,
                                           places=3),
        "temperature_c": f.decimal("temperature_c", min_value=-50, max_value=200, places=1),
        "detector_db": f.decimal("detector_db", min_value=-20, max_value=200, places=2),
        "detector_distance_m": f.decimal("detector_distance_m", min_value=0, max_value=1000,
                                         places=3),
    }
    if any(k in data for k in RATE_INPUTS):
        # Sent empty: None (the default, or "missing"); not sent: kept when editing.
        out["rate_inputs"] = {k: v for k, v in inputs.items() if k in data}
    if creating:
        out["status"] = f.choice("status", INITIAL_STATUSES, default="open")
    try:
        out["tag"] = normalize_tag(out["tag"])
    except ValidationError as exc:
        f.errors.update(exc.errors)
    f.check()
    if not creating:
        # Editing: a field that was not sent keeps its value (an empty one clears it).
        out = {k: v for k, v in out.items()
               if k in data or (k == "rate_inputs" and k in out)}
    return out


# The inputs each calculated method reads (pressure_bar is the leak's own field).
RATE_INPUTS = ("orifice_diameter_mm", "discharge_coefficient", "temperature_c", "detector_db",
               "detector_distance_m")
METHOD_INPUTS = {"orifice": ("orifice_diameter_mm", "discharge_coefficient", "temperature_c"),
                 "detector": ("detector_db", "detector_distance_m")}


def rate_inputs_of(leak_or_text) -> dict:
    """The stored inputs of a calculated rate as {name: Decimal} ({} when none)."""
    text = leak_or_text.rate_inputs if isinstance(leak_or_text, Leak) else leak_or_text
    if isinstance(text, dict):
        return dict(text)
    try:
        raw = json.loads(text or "{}")
    except ValueError:
        return {}
    return {k: Decimal(str(v)) for k, v in raw.items() if k in RATE_INPUTS} if isinstance(
        raw, dict) else {}


def _rate_error(exc: calc.RateInputError) -> tuple[str, str]:
    messages = {
        "orifice_diameter_mm": _("Enter the hole diameter in mm (more than 0, at most 100)."),
        "discharge_coefficient": _("Enter a discharge coefficient above 0 and at most 1."),
        "temperature_c": _("Enter the air temperature in °C (−50 to 200)."),
        "pressure_bar": _("Enter the pressure in bar (gauge)."),
        "detector_db": _("Enter the detector reading in dB."),
        "detector_distance_m": _("Enter the distance of the reading in m."),
    }
    if exc.message not in ("missing", "diameter", "pressure", "cd", "temperature"):
        # A value outside the organization's detector table (never extrapolated).
        if exc.field == "method":
            return "method", _("Your organization has no detector table yet; an "
                               "administrator enters it under Settings → Detector table.")
        return exc.field, _("Outside the detector table (%(range)s); the table is not "
                            "extrapolated.", range=exc.message)
    return exc.field, messages.get(exc.field, _("Check this value."))


def calculated_rate(actor, method: str, inputs: dict, pressure_bar) -> tuple[Decimal, dict]:
    """The rate of a calculated method (leaks/calc.py) and the inputs to store with it.
    Raises ValidationError naming the input."""
    used = {k: inputs.get(k) for k in METHOD_INPUTS[method]}
    try:
        if method == "orifice":
            if used["discharge_coefficient"] is None:
                used["discharge_coefficient"] = calc.DEFAULT_CD
            if used["temperature_c"] is None:
                used["temperature_c"] = calc.DEFAULT_TEMPERATURE_C
            rate = calc.orifice_rate_lpm(used["orifice_diameter_mm"], pressure_bar,
                                         used["discharge_coefficient"], used["temperature_c"])
        else:
            rate = calc.detector_rate_lpm(detector_table(actor), used["detector_db"],
                                          used["detector_distance_m"], pressure_bar)
    except calc.RateInputError as exc:
        field, message = _rate_error(exc)
        raise ValidationError(message, field) from None
    return rate, used


REFERENCES = ("location", "survey", "found_by_user", "previous_leak", "assignee")


def _ref_id(value):
    if isinstance(value, pw.Model):
        return value.get_id()
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def kept_references(leak: Leak | None, values: dict) -> dict:
    """The references of `leak` that `values` leave as they are (not given, or given with
    the leak's own id): they stay without being looked up again in the actor's scope. The
    leak itself is authorized; its location, survey or finder may be rows the actor does not
    see (a survey grant without the site, a site grant without the survey), and editing the
    leak must neither wipe nor refuse them."""
    if leak is None:
        return {}
    kept = {}
    for name in REFERENCES:
        current = getattr(leak, name + "_id")
        if current is not None and (name not in values or _ref_id(values[name]) == current):
            kept[name] = getattr(leak, name)
    return kept


def resolve_assignee(actor, value) -> User:
    """An assignee id → an enabled user of the actor's organization whose role may edit
    leaks; whether they may edit the very leak is checked on writing (_check_assignee)."""
    uid = value.id if isinstance(value, User) else _ref_id(value)
    user = (User.select().where((User.id == uid) & (User.organization == actor.organization.id)
                                & User.role.is_null(False) & (User.enabled == True))  # noqa: E712
            .first()) if uid is not None else None
    if user is None or not authz.role_allows(_actor_of(user), "edit"):
        raise ValidationError(_("Choose a user of this organization who may edit leaks."),
                              "assignee")
    return user


def check_values(actor, values: dict, *, leak: Leak | None = None) -> dict:
    """Rules across fields and references to other rows; ids → rows of this organization.
    Editing (`leak` given): a reference left unchanged is kept as it is (kept_references)."""
    errors: dict[str, str] = {}
    v = dict(values)
    kept = kept_references(leak, values)
    v.update(kept)
    try:
        v["location"] = (v["location"] if isinstance(v.get("location"), Location)
                         else resolve_location(actor, v.get("location")))
    except ValidationError as exc:
        errors.update(exc.errors)
    if "survey" in kept:
        pass
    elif v.get("survey") not in (None, ""):
        sid = v["survey"].id if isinstance(v["survey"], Survey) else v["survey"]
        v["survey"] = authz.scope(actor, Survey, "view").where(Survey.id == sid).first()
        if v["survey"] is None:
            errors["survey"] = _("Choose a survey of this organization.")
    else:
        v["survey"] = None
    if "found_by_user" in kept:
        pass
    elif v.get("found_by_user") not in (None, ""):
        uid = v["found_by_user"].id if isinstance(v["found_by_user"], User) else v["found_by_user"]
        me = actor.user if actor.kind == "user" else None
        # The actor may always name himself as the finder, even without the user list.
        v["found_by_user"] = (me if me is not None and str(me.id) == str(uid) else
                              authz.scope(actor, User, "view").where(User.id == uid).first())
        if v["found_by_user"] is None:
            errors["found_by_user"] = _("Choose a user of this organization.")
    else:
        v["found_by_user"] = None
    if "previous_leak" in kept:
        pass
    elif v.get("previous_leak") not in (None, ""):
        pid = v["previous_leak"].id if isinstance(v["previous_leak"], Leak) else v["previous_leak"]
        prev = authz.scope(actor, Leak, "view").where(Leak.id == pid).first()
        if prev is None or (leak is not None and prev.id == leak.id):
            errors["previous_leak"] = _("Choose another leak of this organization.")
        v["previous_leak"] = prev
    else:
        v["previous_leak"] = None
    if "assignee" in kept:
        pass
    elif v.get("assignee") not in (None, ""):
        try:
            v["assignee"] = resolve_assignee(actor, v["assignee"])
        except ValidationError as exc:
            errors.update(exc.errors)
    else:
        v["assignee"] = None
    method = v.get("method") or "device"
    v["method"] = method
    inputs = rate_inputs_of(v.get("rate_inputs") or "")
    v["rate_inputs"] = ""
    if method in CALCULATED_METHODS:
        v["estimate_class"] = None
        try:
            rate, used = calculated_rate(actor, method, inputs, v.get("pressure_bar"))
            v["rate_lpm"] = rate
            v["rate_inputs"] = json.dumps({k: str(val) for k, val in used.items()},
                                          sort_keys=True)
        except ValidationError as exc:
            errors.update(exc.errors)
            errors.pop("rate_lpm", None)
    elif method == "estimate":
        if not v.get("estimate_class"):
            errors["estimate_class"] = _("Choose an estimate class.")
        elif v.get("rate_lpm") is None:
            v["rate_lpm"] = calc.estimate_rate_lpm(v["estimate_class"]).quantize(Decimal("0.001"))
    else:
        v["estimate_class"] = None
    if (v.get("rate_lpm") is None and "rate_lpm" not in errors
            and method not in CALCULATED_METHODS):
        errors["rate_lpm"] = _("Enter the leak rate in l/min.")
    low, high, rate = v.get("rate_low_lpm"), v.get("rate_high_lpm"), v.get("rate_lpm")
    if rate is not None:
        if low is not None and low > rate:
            errors["rate_low_lpm"] = _("The low end must not exceed the leak rate.")
        if high is not None and high < rate:
            errors["rate_high_lpm"] = _("The high end must not be below the leak rate.")
    if v.get("found_at") is None and leak is None:
        errors["found_at"] = _("This field is required.")
    if errors:
        raise ValidationError(errors)
    for k in ("found_by", "device_serial", "description", "recommended_action", "spare_part",
              "repaired_by", "verification_note", "order_number"):
        v[k] = v.get(k) or ""
    v["gas"] = v.get("gas") or "air"
    v["component"] = v.get("component") or "other"
    v["priority"] = v.get("priority") or 2
    return v


# ------------------------------------------------------------------ writing

def _actor_of(user: User) -> authz.Actor:
    """The user as an actor of their organization (to ask what they may do)."""
    return authz.Actor(organization=user.organization, kind="user", user=user)


def _check_assignee(leak: Leak) -> None:
    """The assignee must be able to edit the leak where it is (their role and grants): run
    inside the write's transaction, after the write, so a refusal saves nothing."""
    if leak.assignee_id is None:
        return
    user = User.get_by_id(leak.assignee_id)
    if not authz.can(_actor_of(user), "edit", leak):
        raise ValidationError(_("%(name)s may not edit this leak (its location or survey is "
                                "not granted to them); choose someone who may.",
                                name=user.display_name), "assignee")


# Public names for the import, which applies the same assignee rule row by row.
actor_of = _actor_of
check_assignee = _check_assignee


def _history(actor, leak: Leak, from_status, to_status, note="") -> None:
    writer.create(actor, LeakStatusChange, leak=leak, from_status=from_status,
                  to_status=to_status, actor_label=actor.display[:254],
                  user=actor.user if actor.kind == "user" else None, note=note or "")


CLIENT_ID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


def parse_client_id(value, field_name: str = "client_id") -> str:
    """A client-generated id (a UUID such as crypto.randomUUID() makes), lower-cased; "" when
    none was sent; ValidationError naming the field otherwise."""
    if value is None or value == "":
        return ""
    text = value.strip().lower() if isinstance(value, str) else ""
    if not CLIENT_ID.match(text):
        raise ValidationError(_("Send a UUID such as 1b4e28ba-2fa1-11d2-883f-0016d3cca427."),
                              field_name)
    return text


class ClientIdTaken(Conflict):
    """The client id names a record of the organization the caller may not see (or a photo
    of another leak): nothing is created, nothing is shown."""


def _by_client_id(actor, client_id: str) -> Leak | None:
    existing = Leak.get_or_none((Leak.organization == actor.organization.id)
                                & (Leak.client_id == client_id))
    if existing is None:
        return None
    if not authz.scope(actor, Leak, "view").where(Leak.id == existing.id).exists():
        raise ClientIdTaken(_("This client id is already used by another record."))
    return existing


def record_leak_once(actor, client_id: str, /, **values) -> tuple[Leak, bool]:
    """Offline sync: the leak the device recorded under `client_id` (a UUID), created on the
    first call and found on every repeat — (leak, created). The repeat is decided under the
    organization's writer queue, so two concurrent replays make one leak."""
    if not client_id:
        return create_leak(actor, **values), True
    authz.require(actor, "create")
    existing = _by_client_id(actor, client_id)
    if existing is not None:
        return existing, False
    try:
        leak = create_leak(actor, client_id=client_id, **values)
    except _Replayed as replay:
        return replay.leak, False
    return leak, True


class _Replayed(Exception):
    def __init__(self, leak):
        self.leak = leak


def create_leak(actor, /, **values) -> Leak:
    """Create a leak. `tag` given: the pre-printed tag is kept (duplicates rejected naming
    the field); otherwise the next number of the organization is assigned."""
    authz.require(actor, "create")
    client_id = values.pop("client_id", "") or ""
    tag = normalize_tag(values.pop("tag", None))
    status = values.pop("status", None) or "open"
    if status not in INITIAL_STATUSES:
        raise ValidationError(_("A new leak starts as open or to review."), "status")
    source = values.pop("source", "manual")
    v = check_values(actor, values)
    # Where the leak lands: "create" at its location and in its survey (not only one of
    # them, which is all the writer's check on the new row asks for).
    authz.require_target(actor, "create", v["location"], "location")
    authz.require_target(actor, "create", v["survey"], "survey")
    fields = {k: v.get(k) for k in EDIT_FIELDS if k in v or k in values}
    fields.update(status=status, source=source)
    use_tag = tag
    try:
        with database.atomic():
            # Queued behind the organization's other writers (writer.begin), the check and the
            # next number hold until this transaction commits: concurrent saves never collide.
            writer.begin(actor)
            if client_id:
                replayed = _by_client_id(actor, client_id)
                if replayed is not None:
                    raise _Replayed(replayed)
                fields["client_id"] = client_id
            if tag is not None and tag_taken(actor, tag):
                raise _tag_error(tag)
            use_tag = tag if tag is not None else str(next_tag_number(actor))
            leak = writer.create(actor, Leak, tag=use_tag, tag_number=tag_number_of(use_tag),
                                 **fields)
            _check_assignee(leak)
            _history(actor, leak, None, status)
    except pw.IntegrityError:
        # Only a writer that bypasses writer.begin (a hand-made SQL insert) can get here.
        raise _tag_error(use_tag or "") from None
    return leak


def update_leak(actor, leak: Leak, /, *, expected_version: int | None, **values) -> Leak:
    """Edit the leak's data (not its status: see change_status). Raises ConflictError."""
    authz.require(actor, "edit", leak)
    tag = normalize_tag(values.pop("tag", None)) or leak.tag
    values.pop("status", None)
    if not values.get("found_at"):
        values.pop("found_at", None)
    # Fields not given keep their value (partial updates from the API).
    base = {k: (getattr(leak, k + "_id") if isinstance(Leak._meta.fields[k], pw.ForeignKeyField)
                else getattr(leak, k)) for k in EDIT_FIELDS}
    if isinstance(values.get("rate_inputs"), dict):
        # Inputs not sent keep their stored value (a PATCH of the diameter keeps the Cd).
        values["rate_inputs"] = {**rate_inputs_of(leak), **values["rate_inputs"]}
    base.update(values)
    v = check_values(actor, base, leak=leak)
    # Moving the leak: "edit" where it leaves and where it lands (location and survey).
    authz.require_move(actor, "edit", leak.location, v["location"], "location")
    authz.require_move(actor, "edit", leak.survey if leak.survey_id else None, v["survey"],
                       "survey")
    changes = {k: v.get(k) for k in EDIT_FIELDS}
    if tag != leak.tag:
        if tag_taken(actor, tag, exclude_id=leak.id):
            raise _tag_error(tag)
        changes.update(tag=tag, tag_number=tag_number_of(tag))
    changes["updated_at"] = utcnow()
    recheck = (_ref_id(v.get("assignee")) != leak.assignee_id
               or _ref_id(v["location"]) != leak.location_id
               or _ref_id(v.get("survey")) != leak.survey_id)
    try:
        with database.atomic():
            updated = writer.update(actor, leak, changes, expected_version=expected_version)
            if recheck:
                _check_assignee(updated)
            return updated
    except pw.IntegrityError:
        raise _tag_error(tag) from None


def parse_status_form(data) -> dict:
    f = Fields(data)
    out = {
        "to_status": f.choice("status", STATUSES, required=True),
        "note": f.text("note", max_length=5000),
        "due_date": f.date("due_date"),
        "repaired_at": f.date("repaired_at"),
        "repaired_by": f.text("repaired_by", max_length=200) or None,
        "repair_cost": f.decimal("repair_cost", min_value=0, max_value=10**9, places=2),
        "verification_note": f.text("verification_note", max_length=10000) or None,
        "after_lpm": f.decimal("after_lpm", min_value=0, max_value=100000, places=3),
        "assignee": f.integer("assignee", min_value=1),
        "order_number": f.text("order_number", max_length=64) or None,
    }
    f.check()
    return out


def change_status(actor, leak: Leak, to_status: str, *, expected_version: int | None = None,
                  note: str = "", due_date=None, repaired_at=None, repaired_by=None,
                  repair_cost=None, verification_note=None, after_lpm=None, assignee=None,
                  order_number=None, today: dt.date | None = None) -> Leak:
    """Move a leak along the workflow; illegal moves raise ValidationError on "status".
    Repair and verification data given with the move are stored with it; `after_lpm`, the
    rate re-measured when verifying, makes the savings rate − after (calc.saved_lpm)."""
    authz.require(actor, "edit", leak)
    check_transition(leak.status, to_status, tag=leak.tag)
    if to_status == "deferred" and not (note or "").strip():
        # Why a known leak stays open must be on record (production, spare part, shutdown).
        raise ValidationError(_("Give the reason for deferring the repair."), "note")
    today = today or utcnow().date()
    changes: dict = {"status": to_status, "updated_at": utcnow()}
    if to_status == "repair_planned":
        # Planning the repair: when, who, under which maintenance order.
        if due_date is not None:
            changes["due_date"] = due_date
        if assignee is not None:
            changes["assignee"] = resolve_assignee(actor, assignee)
        if order_number is not None:
            changes["order_number"] = order_number
    if to_status == "repaired":
        changes["repaired_at"] = repaired_at or today
        changes["repaired_by"] = repaired_by if repaired_by is not None else (
            leak.repaired_by or actor.display)
        if repair_cost is not None:
            changes["repair_cost"] = repair_cost
    if to_status == "verified":
        changes["verified_at"] = today
        if verification_note is not None:
            changes["verification_note"] = verification_note
        if after_lpm is not None:
            changes["after_lpm"] = after_lpm
    if changes.get("repaired_at") and changes["repaired_at"] < leak.found_at.date():
        raise ValidationError(_("The repair date must not be before the leak was found."),
                              "repaired_at")
    from_status = leak.status
    with database.atomic():
        writer.update(actor, leak, changes, expected_version=expected_version,
                      action="status_change")
        if "assignee" in changes:
            _check_assignee(leak)
        _history(actor, leak, from_status, to_status, note)
    return leak


def bulk_change_status(actor, ids, to_status: str, *, note: str = "") -> int:
    """All or nothing: every selected leak must allow the move, else nothing changes and the
    message names the leaks that do not."""
    if to_status not in STATUSES:
        raise ValidationError(_("Choose a status."), "status")
    ids = [int(i) for i in ids]
    if not ids:
        raise ValidationError(_("Select at least one leak."), "ids")
    if len(ids) > 1000:
        raise ValidationError(_("At most 1000 leaks at once."), "ids")
    with database.atomic():
        leaks = list(authz.scope(actor, Leak, "edit").where(Leak.id.in_(ids))
                     .order_by(Leak.tag_number, Leak.tag))
        if not leaks:
            raise ValidationError(_("Select at least one leak."), "ids")
        bad = [lk for lk in leaks if to_status not in allowed_transitions(lk.status)]
        if bad:
            names = ", ".join(f"{lk.tag} ({STATUS_LABELS[lk.status]})" for lk in bad[:20])
            more = len(bad) - 20
            raise ValidationError(
                _("Cannot change to “%(s)s”: %(names)s", s=STATUS_LABELS[to_status],
                  names=names) + (_(" and %(n)d more", n=more) if more > 0 else "") + ".",
                "status")
        for lk in leaks:
            change_status(actor, lk, to_status, expected_version=lk.version, note=note)
    return len(leaks)


def delete_leak(actor, leak: Leak) -> None:
    writer.delete(actor, leak)


def history(actor, leak: Leak) -> list[LeakStatusChange]:
    return list(authz.scope(actor, LeakStatusChange, "view")
                .where(LeakStatusChange.leak == leak.id)
                .order_by(LeakStatusChange.at, LeakStatusChange.id))


def leak_by_tag(actor, tag: str) -> Leak | None:
    return authz.scope(actor, Leak, "view").where(Leak.tag == tag).first()


# ------------------------------------------------------------------ lists

SORTS = {
    "tag": (Leak.tag_number, Leak.tag),
    "found": (Leak.found_at, Leak.id),
    "rate": (Leak.rate_lpm, Leak.id),
    "priority": (Leak.priority, Leak.id),
    "status": (Leak.status, Leak.id),
    "component": (Leak.component, Leak.id),
    "due": (Leak.due_date, Leak.id),
    "location": (Location.path, Leak.id),
}
PER_PAGE = (25, 50, 100, 200)


@dataclass
class LeakFilter:
    status: list = field(default_factory=list)
    location: int | None = None
    survey: int | None = None
    priority: int | None = None
    component: str | None = None
    date_from: dt.date | None = None
    date_to: dt.date | None = None
    q: str = ""
    overdue: bool = False
    assignee: int | None = None
    sort: str = "-found"
    page: int = 1
    per_page: int = 50
    errors: dict = field(default_factory=dict)

    def args(self, **override) -> dict:
        """URL parameters for this filter (for links: sort headers, pages)."""
        out = {"status": self.status, "location": self.location, "survey": self.survey,
               "priority": self.priority, "component": self.component,
               "date_from": self.date_from.isoformat() if self.date_from else None,
               "date_to": self.date_to.isoformat() if self.date_to else None,
               "q": self.q or None, "overdue": "1" if self.overdue else None,
               "assignee": self.assignee,
               "sort": self.sort if self.sort != "-found" else None,
               "page": self.page if self.page != 1 else None,
               "per_page": self.per_page if self.per_page != 50 else None}
        out.update(override)
        return {k: v for k, v in out.items() if v not in (None, "", [])}


def parse_filter(args) -> LeakFilter:
    """URL query → filter. Invalid values are dropped and reported in `errors` (named by
    field; the list page shows them and lists nothing, exports and the API refuse), never a
    500."""
    f = Fields(args)
    getlist = getattr(args, "getlist", None)
    statuses = getlist("status") if getlist else (args.get("status") or [])
    if isinstance(statuses, str):
        statuses = [statuses]
    flt = LeakFilter(
        status=[s for s in statuses if s in STATUSES],
        location=f.integer("location", min_value=1),
        survey=f.integer("survey", min_value=1),
        priority=f.choice("priority", PRIORITIES),
        component=f.choice("component", COMPONENTS),
        date_from=f.date("date_from"),
        date_to=f.date("date_to"),
        q=(f.text("q", max_length=100) or ""),
        overdue=bool(f.boolean("overdue")),
        assignee=f.integer("assignee", min_value=1),
        page=f.integer("page", min_value=1, max_value=10**6, default=1) or 1,
        per_page=f.choice("per_page", PER_PAGE, default=50) or 50,
    )
    sort = args.get("sort") or "-found"
    flt.sort = sort if sort.lstrip("-") in SORTS else "-found"
    if len(flt.status) != len([s for s in statuses if s]):
        f.error("status", _("Choose one of the offered values."))
    flt.errors = f.errors
    return flt


@dataclass
class Row:
    leak: Leak
    figures: calc.LeakFigures


@dataclass
class Page:
    rows: list
    total: int
    page: int
    per_page: int

    @property
    def pages(self) -> int:
        return max(1, math.ceil(self.total / self.per_page))


def filtered_query(actor, flt: LeakFilter, *, tzname: str | None = None):
    """Leaks matching the filter (select Leak + Location; no ordering)."""
    query = (authz.scope(actor, Leak, "view", Leak.select(Leak, Location)
                         .join(Location, on=(Leak.location == Location.id))))
    return _apply(actor, query, flt, tzname)


def _apply(actor, query, flt: LeakFilter, tzname):
    """The filter's conditions on a select of Leak (joined with Location or not)."""
    if flt.status:
        query = query.where(Leak.status.in_(flt.status))
    if flt.location:
        loc = authz.scope(actor, Location, "view").where(Location.id == flt.location).first()
        if loc is None:
            query = query.where(pw.SQL("1 = 0"))
        else:
            # The subtree's ids first (a small table, path prefix), then an id list: PostgreSQL
            # answers from the (organization, location) index instead of a semi-join scan.
            ids = [i for (i,) in authz.scope(actor, Location, "view",
                                             Location.select(Location.id))
                   .where(subtree_condition(loc)).tuples()]
            query = query.where(Leak.location.in_(ids))
    if flt.survey:
        query = query.where(Leak.survey == flt.survey)
    if flt.priority:
        query = query.where(Leak.priority == flt.priority)
    if flt.overdue:
        query = query.where(overdue_condition(local_today(tzname)))
    if flt.assignee:
        query = query.where(Leak.assignee == flt.assignee)
    if flt.component:
        query = query.where(Leak.component == flt.component)
    if flt.date_from:
        start = local_to_utc(dt.datetime.combine(flt.date_from, dt.time()), tzname)
        query = query.where(Leak.found_at >= start)
    if flt.date_to:
        end = local_to_utc(dt.datetime.combine(flt.date_to + dt.timedelta(days=1), dt.time()),
                           tzname)
        query = query.where(Leak.found_at < end)
    if flt.q:
        q = flt.q
        # Matching locations first (a small table), as a list of ids: PostgreSQL can then
        # combine the trigram index and the (organization, location) index.
        loc_ids = [i for (i,) in authz.scope(actor, Location, "view", Location.select(Location.id))
                   .where(Location.name.contains(q) | Location.code.contains(q))
                   .limit(1000).tuples()]
        cond = search_text().contains(q)
        if loc_ids:
            cond = cond | Leak.location.in_(loc_ids)
        query = query.where(cond)
    return query


# ------------------------------------------------------------------ follow-up

# A leak is overdue when its due date has passed and it still waits for a repair. Deferred
# leaks are not overdue: deferring is a recorded decision (with its reason) not to repair now.
FOLLOW_UP_STATUSES = ("to_review", "open", "repair_planned")
DUE_SOON_DAYS = 7  # "due": due today or within this many days (the daily mail, the home page)


def local_today(tzname: str | None, now: dt.datetime | None = None) -> dt.date:
    """Today in the organization's time zone (a due date is a local date)."""
    return utc_to_local(now or utcnow(), tzname).date()


def overdue_condition(today: dt.date):
    return ((Leak.due_date < today) & Leak.status.in_(FOLLOW_UP_STATUSES))


def due_condition(today: dt.date, days: int = DUE_SOON_DAYS):
    """Due from today up to `days` ahead, still waiting for a repair (not overdue yet)."""
    return ((Leak.due_date >= today) & (Leak.due_date <= today + dt.timedelta(days=days))
            & Leak.status.in_(FOLLOW_UP_STATUSES))


def is_overdue(leak: Leak, today: dt.date) -> bool:
    return (leak.due_date is not None and leak.due_date < today
            and leak.status in FOLLOW_UP_STATUSES)


def overdue_count(actor, *, tzname: str | None = None, assignee=None,
                  today: dt.date | None = None) -> int:
    """Overdue leaks the actor sees (of one assignee when given)."""
    query = authz.scope(actor, Leak, "view", Leak.select(Leak.id)).where(
        overdue_condition(today or local_today(tzname)))
    if assignee is not None:
        query = query.where(Leak.assignee == _ref_id(assignee))
    return query.count()


def follow_up_counts(actor, *, tzname: str | None = None,
                     today: dt.date | None = None) -> dict:
    """The home page's repair counts: overdue leaks the actor sees; the actor's own overdue
    leaks and those due within DUE_SOON_DAYS (as assignee)."""
    today = today or local_today(tzname)
    visible = authz.scope(actor, Leak, "view", Leak.select(Leak.id))
    out = {"overdue": visible.where(overdue_condition(today)).count(), "mine_overdue": 0,
           "mine_due": 0, "days": DUE_SOON_DAYS}
    if actor.user is not None:
        mine = visible.where(Leak.assignee == actor.user.id)
        out["mine_overdue"] = mine.where(overdue_condition(today)).count()
        out["mine_due"] = mine.where(due_condition(today)).count()
    return out


def assignee_options(actor) -> list[tuple[int, str]]:
    """Users to pick as the repair's assignee: enabled users of the organization whose role
    may edit leaks, among those the actor may list (an assignee without a grant for the
    leak's place is refused on saving, naming the field)."""
    return [(u.id, u.display_name) for u in authz.scope(actor, User, "view")
            .where(User.role.is_null(False) & (User.enabled == True))  # noqa: E712
            .order_by(User.name, User.email)
            if authz.role_allows(authz.Actor(organization=actor.organization, user=u), "edit")]


SEARCH_COLUMNS = ("tag", "description", "spare_part", "found_by", "recommended_action")


def search_text():
    """tag || ' ' || description || ... — the same expression as the trigram index of
    migration 0008, so PostgreSQL answers the free-text search from the index. The blank is
    an SQL literal (not a parameter) so the expressions match in prepared plans too."""
    expr = getattr(Leak, SEARCH_COLUMNS[0])
    for name in SEARCH_COLUMNS[1:]:
        expr = expr.concat(pw.SQL("' '")).concat(getattr(Leak, name))
    return expr


def list_leaks(actor, flt: LeakFilter, *, tzname: str | None = None) -> Page:
    """One page of leaks with energy/cost/CO2 computed for that page only.

    The page's ids are chosen first from the leak table alone (the sort indexes of migration
    0010 hold the sort column and the id: a deep page skips index entries, not rows), then
    those rows are read with their locations (both through authz.scope)."""
    base = _apply(actor, authz.scope(actor, Leak, "view", Leak.select(Leak.id)), flt, tzname)
    # COUNT(*), not COUNT(id): the count may then come from any index (index-only scan).
    total = base.select(pw.fn.COUNT(pw.SQL("*"))).order_by().scalar() or 0
    pages = max(1, math.ceil(total / flt.per_page))
    page = min(flt.page, pages)
    flt.page = page
    desc = flt.sort.startswith("-")
    order = []
    for col in SORTS[flt.sort.lstrip("-")]:
        order.append(col.desc() if desc else col.asc())
    ids = base
    if flt.sort.lstrip("-") == "location":
        ids = ids.join(Location, on=(Leak.location == Location.id))
    ids = [i for (i,) in ids.order_by(*order).limit(flt.per_page)
           .offset((page - 1) * flt.per_page).tuples()]
    # A list of ids, not a sub-select: with the permission filter PostgreSQL would otherwise
    # plan a semi-join over every visible leak instead of reading the page's rows by id.
    # Put in the page's order here: with ORDER BY, SQLite walked the whole sort index to
    # find the 50 ids (15-20 ms at 100,000 leaks) instead of reading them by id.
    leaks = list(authz.scope(actor, Leak, "view", Leak.select(Leak, Location)
                             .join(Location, on=(Leak.location == Location.id)))
                 .where(Leak.id.in_(ids)).order_by()) if ids else []
    position = {leak_id: n for n, leak_id in enumerate(ids)}
    leaks.sort(key=lambda lk: position[lk.id])
    resolver = SettingsResolver(actor)
    rows = [Row(lk, calc.figures(lk.rate_lpm, resolver.for_leak(lk))) for lk in leaks]
    return Page(rows=rows, total=total, page=page, per_page=flt.per_page)


def figures_for(actor, leak: Leak) -> calc.LeakFigures:
    return calc.figures(leak.rate_lpm, SettingsResolver(actor).for_leak(leak))



# ------------------------------------------------------------------ detector table

def detector_table(actor) -> list[calc.DetectorPoint]:
    return [calc.DetectorPoint(r.pressure_bar, r.distance_m, r.db_level, r.rate_lpm)
            for r in authz.scope(actor, DetectorRateRow, "view")
            .order_by(DetectorRateRow.pressure_bar, DetectorRateRow.distance_m,
                      DetectorRateRow.db_level)]


TABLE_COLUMNS = ("pressure_bar", "distance_m", "db_level", "rate_lpm")
MAX_TABLE_ROWS = 2000


def parse_detector_table(text: str) -> list[calc.DetectorPoint]:
    """Text, one row per line: pressure (bar); distance (m); reading (dB); leak rate (l/min),
    separated by ";" or tabs (as copied from a spreadsheet). Numbers in the request's number
    locale. Errors name the line; the rate must not fall as dB rise within one pressure and
    distance (else the interpolation would not be monotonic)."""
    errors: dict[str, str] = {}
    points: list[calc.DetectorPoint] = []
    seen: set = set()
    lines = (text or "").splitlines()
    if len(lines) > MAX_TABLE_ROWS:
        raise ValidationError(_("At most %(n)d rows.", n=MAX_TABLE_ROWS), "table")
    limits = {"pressure_bar": (0, 400), "distance_m": (0, 1000), "db_level": (-20, 200),
              "rate_lpm": (0, 100000)}
    for no, line in enumerate(lines, 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        cells = [c.strip() for c in re.split(r"[;\t]", line)]
        if len(cells) != 4:
            errors[f"table-{no}"] = _("Line %(n)d: enter four values separated by “;”: "
                                      "pressure; distance; dB; l/min.", n=no)
            continue
        values = {}
        for name, cell in zip(TABLE_COLUMNS, cells, strict=True):
            try:
                value = parse_decimal(cell, name)
            except ValidationError:
                value = None
            lo, hi = limits[name]
            if value is None or not lo <= value <= hi:
                errors[f"table-{no}"] = _("Line %(n)d: “%(v)s” is not a number from %(lo)s "
                                          "to %(hi)s.", n=no, v=cell[:40], lo=lo, hi=hi)
                break
            values[name] = value
        else:
            key = (values["pressure_bar"], values["distance_m"], values["db_level"])
            if key in seen:
                errors[f"table-{no}"] = _("Line %(n)d: this pressure, distance and dB are "
                                          "already in the table.", n=no)
                continue
            seen.add(key)
            points.append(calc.DetectorPoint(values["pressure_bar"], values["distance_m"],
                                             values["db_level"], values["rate_lpm"]))
    curves: dict = {}
    for p in points:
        curves.setdefault((p.pressure_bar, p.distance_m), []).append(p)
    for (pressure, distance), curve in curves.items():
        curve.sort(key=lambda p: p.db)
        for a, b in zip(curve, curve[1:], strict=False):
            if b.rate_lpm < a.rate_lpm:
                errors.setdefault("table", _(
                    "At %(p)s bar and %(d)s m the leak rate falls from %(a)s to %(b)s l/min "
                    "as the reading rises from %(da)s to %(db)s dB; a louder reading must not "
                    "mean a smaller leak.", p=pressure, d=distance, a=a.rate_lpm, b=b.rate_lpm,
                    da=a.db, db=b.db))
    if errors:
        raise ValidationError(errors)
    return points


def save_detector_table(actor, points: list[calc.DetectorPoint]) -> int:
    """Replace the organization's detector table (all or nothing, audited row by row)."""
    authz.require(actor, "manage")
    with database.atomic():
        for row in authz.scope(actor, DetectorRateRow, "view"):
            writer.delete(actor, row)
        for p in points:
            writer.create(actor, DetectorRateRow, pressure_bar=p.pressure_bar,
                          distance_m=p.distance_m, db_level=p.db, rate_lpm=p.rate_lpm)
    return len(points)


def detector_table_text(points: list[calc.DetectorPoint]) -> str:
    return "\n".join("; ".join(str(v) for v in (p.pressure_bar, p.distance_m, p.db, p.rate_lpm))
                     for p in points)
