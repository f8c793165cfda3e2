"""Import stage 4, classify: each valid row against the organization's leaks, matched by tag
(or tag number: "0100" is "100"): new, unchanged, changed (an update when "update existing
leaks" is chosen, else a conflict listing the differing columns) — and, decided by authz
before anything is written, whether the actor may put the leak where the row says."""
from __future__ import annotations

import collections
import datetime as dt
from dataclasses import dataclass, field
from decimal import Decimal

import peewee as pw
from flask_babel import gettext as _

from .. import authz
from ..leaks import service as leaks
from ..leaks.models import Leak
from ..locations.models import Location
from ..surveys.models import Survey
from .columns import Columns
from .outcome import Conflict, Options, RowErrors
from .places import LocationIndex

_COMPARE = ("location", "survey", "found_at", "found_by", "device_serial", "method",
            "estimate_class", "rate_lpm", "rate_low_lpm", "rate_high_lpm", "pressure_bar", "gas",
            "component", "priority", "description", "recommended_action", "spare_part",
            "due_date", "repaired_at", "repaired_by", "repair_cost", "verification_note",
            "assignee", "order_number", "after_lpm")


@dataclass
class Update:
    rownum: int
    leak: Leak
    values: dict
    diffs: dict  # field → the file's value ("status": the status to reach)


@dataclass
class Classified:
    new: list = field(default_factory=list)  # ParsedRow
    updates: list = field(default_factory=list)  # Update (only with "update existing")
    unchanged: int = 0
    changed: int = 0
    conflicts: list = field(default_factory=list)  # Conflict


def _comparable(value):
    if isinstance(value, pw.Model):
        return value.get_id()
    if isinstance(value, Decimal):
        return value.normalize()
    if isinstance(value, dt.datetime):
        return value.replace(microsecond=0)
    if isinstance(value, str):
        value = value.strip()
    return value if value != "" else None


def _leak_value(leak: Leak, name: str):
    if isinstance(Leak._meta.fields[name], pw.ForeignKeyField):
        return getattr(leak, name + "_id")
    value = getattr(leak, name)
    if isinstance(value, float):
        value = Decimal(repr(value))
    return value


def status_path(from_status: str, to_status: str) -> list[str] | None:
    """The shortest legal sequence of moves (workflow), or None."""
    if from_status == to_status:
        return []
    seen = {from_status: None}
    queue = collections.deque([from_status])
    while queue:
        cur = queue.popleft()
        for nxt in leaks.allowed_transitions(cur):
            if nxt not in seen:
                seen[nxt] = cur
                if nxt == to_status:
                    path = [nxt]
                    while seen[path[-1]] != from_status:
                        path.append(seen[path[-1]])
                    return list(reversed(path))
                queue.append(nxt)
    return None


def _existing(actor, rows: list) -> tuple[dict, dict]:
    """Existing leaks with the rows' tags or tag numbers: (by tag, by tag number)."""
    tags = [r.values["tag"] for r in rows]
    existing_by_tag: dict[str, Leak] = {}
    existing_by_number: dict[int, Leak] = {}
    # One pass over the organization's tags (id, tag, number), matched in Python, then the
    # full rows of the matches by primary key: no long IN-lists on text columns, which
    # PostgreSQL may scan row by row.
    wanted_tags = set(tags)
    wanted_numbers = {n for n in (leaks.tag_number_of(t) for t in tags) if n is not None}
    match_ids = [lid for lid, tag, number in authz.scope(
        actor, Leak, "view", Leak.select(Leak.id, Leak.tag, Leak.tag_number)).tuples()
        if tag in wanted_tags or (number is not None and number in wanted_numbers)]
    for i in range(0, len(match_ids), 1000):
        for lk in authz.scope(actor, Leak, "view").where(Leak.id.in_(match_ids[i:i + 1000])):
            existing_by_tag[lk.tag] = lk
            if lk.tag_number is not None:
                existing_by_number[lk.tag_number] = lk
    return existing_by_tag, existing_by_number


def classify(actor, rows: list, columns: Columns, options: Options, may: TargetCheck,
             err: RowErrors) -> Classified:
    """The valid rows (ParsedRow) sorted into new, unchanged, updates and conflicts; rows the
    actor may not write are errors in `err`."""
    out = Classified()
    existing_by_tag, existing_by_number = _existing(actor, rows)
    mapped = columns.fields
    column_of = columns.column_of
    compare_fields = [f for f in _COMPARE if f in mapped or (
        f == "location" and {"site", "building", "area"} & mapped)]
    if "estimate_class" in compare_fields and "rate_lpm" not in compare_fields:
        compare_fields.append("rate_lpm")
    if mapped & set(leaks.RATE_INPUTS):
        # The inputs of a calculated rate, compared as stored (JSON) and their rate with them.
        compare_fields += [f for f in ("rate_inputs", "rate_lpm") if f not in compare_fields]
    for parsed in rows:
        rownum, values, status = parsed.rownum, parsed.values, parsed.status
        tag = values["tag"]
        number = leaks.tag_number_of(tag)
        leak = existing_by_tag.get(tag) or (existing_by_number.get(number)
                                            if number is not None else None)
        if leak is None:
            if status == "deferred" and not values.get("deferral_reason"):
                err(rownum, _deferral_column(columns), _deferral_message())
                continue
            refusal = may.create(values)
            if refusal:
                err(rownum, columns.loc_or(refusal[0]), refusal[1])
                continue
            out.new.append(parsed)
            continue
        diffs = {}
        for f_name in compare_fields:
            new = values.get(f_name)
            if isinstance(new, tuple):  # location still to be created
                diffs[f_name] = new
                continue
            if _comparable(new) != _comparable(_leak_value(leak, f_name)):
                diffs[f_name] = new
        status_given = "status" in mapped
        if status_given and status != leak.status:
            if status_path(leak.status, status) is None:
                err(rownum, "status", _(
                    "Leak %(tag)s cannot go from “%(a)s” to “%(b)s”.", tag=leak.tag,
                    a=leaks.STATUS_LABELS[leak.status], b=leaks.STATUS_LABELS[status]))
                continue
            diffs["status"] = status
            if "deferred" in status_path(leak.status, status) and not values.get(
                    "deferral_reason"):
                err(rownum, _deferral_column(columns), _deferral_message())
                continue
        if not diffs:
            out.unchanged += 1
            continue
        refusal = may.change(leak, diffs)
        if refusal:
            err(rownum, columns.loc_or(refusal[0]), refusal[1])
            continue
        out.changed += 1
        if options.update_existing:
            out.updates.append(Update(rownum, leak, values, diffs))
        else:
            cols = []
            for f_name, new in diffs.items():
                col = column_of.get(f_name) or column_of.get("location") or column_of.get(
                    "area") or column_of.get("building") or column_of.get("site") or f_name
                old = leak.status if f_name == "status" else _leak_value(leak, f_name)
                if f_name == "location":
                    old = leak.location.label
                    new = new.label if isinstance(new, Location) else " / ".join(new)
                elif f_name == "assignee":
                    old = leak.assignee.email if leak.assignee_id else None
                    new = new.email if new is not None else None
                cols.append((col, old, new.name if isinstance(new, Survey) else new))
            out.conflicts.append(Conflict(rownum, leak.tag, cols))
    return out


def _deferral_message() -> str:
    return _("Give the reason for deferring the repair.")


def _deferral_column(columns: Columns) -> str:
    """The field whose column a missing deferral reason names: the reason's column, else
    the status column (the file has no reason column)."""
    return "deferral_reason" if "deferral_reason" in columns.column_of else "status"


class TargetCheck:
    """Where each row's leak would land, decided by authz before anything is written, so a
    grant-limited user's preview names the rows outside their grants (instead of "4 new" and
    a refusal at commit). Answers (file field, message) or None; cached per target."""

    def __init__(self, actor, index: LocationIndex, to_create: dict):
        self.actor, self.index, self.to_create = actor, index, to_create
        self.everywhere = authz.unrestricted(actor, "create") and authz.unrestricted(actor,
                                                                                      "edit")
        self.cache: dict = {}

    def _reach(self, action: str, target) -> bool:
        key = (action, type(target).__name__, target.id)
        if key not in self.cache:
            # As the decision point answers for the target row itself: seen, and `action`
            # allowed there (a location: its subtree granted with edit; a survey: granted).
            self.cache[key] = (authz.can(self.actor, "view", target)
                               and authz.can(self.actor, action, target))
        return self.cache[key]

    def _location(self, action: str, location) -> tuple | None:
        if isinstance(location, tuple):  # to be created: the right on its deepest ancestor
            parent, _missing = self.index.resolve(list(location))
            if parent is None:
                if authz.unrestricted(self.actor, "create") and authz.can(self.actor, "create"):
                    return None
                return ("location", _("You may not create the site “%(name)s”.",
                                      name=self.to_create.get(location, location)[0]))
            location = parent
        if location is not None and not self._reach(action, location):
            return ("location", _("You may not add, move or change leaks in “%(loc)s”: it is "
                                  "outside the locations you may edit.", loc=location.label))
        return None

    def _survey(self, action: str, survey) -> tuple | None:
        if survey is not None and not self._reach(action, survey):
            return ("survey", _("You may not add, move or change leaks in the survey "
                                "“%(s)s”.", s=survey.name))
        return None

    def create(self, values: dict) -> tuple | None:
        if self.everywhere:
            return None
        # Tag numbers are unique in the whole organization: a tag used by a leak the actor
        # cannot see is refused here as the leak form refuses it (not at the insert).
        if values.get("tag") and leaks.tag_taken(self.actor, values["tag"]):
            return ("tag", _("Tag number %(tag)s is already used by another leak.",
                             tag=values["tag"]))
        return (self._location("create", values.get("location"))
                or self._survey("create", values.get("survey")))

    def change(self, leak: Leak, diffs: dict) -> tuple | None:
        if self.everywhere:
            return None
        if not authz.can(self.actor, "edit", leak):
            return ("tag", _("You may not change leak %(tag)s.", tag=leak.tag))
        if "location" in diffs:
            refusal = (self._location("edit", leak.location)
                       or self._location("edit", diffs["location"]))
            if refusal:
                return refusal
        if "survey" in diffs:
            return ((self._survey("edit", leak.survey) if leak.survey_id else None)
                    or self._survey("edit", diffs["survey"]))
        return None
