"""Import stage 3, validate: each mapped row → the leak's values, with the leak form's own
parser (`leaks.service.parse_leak_form`) and cross-field rules, so an import accepts exactly
what the leak form accepts. Vocabulary labels (English/German) become keys, locations are
resolved by code or name path (or noted for creation), surveys by name or id, tags checked
for repeats within the file. Errors name the row and the file's column."""
from __future__ import annotations

from dataclasses import dataclass, field

from flask_babel import gettext as _

from .. import authz
from ..core.i18n import numbers_in
from ..core.validation import ValidationError
from ..identity.models import User
from ..leaks import service as leaks
from ..leaks.models import STATUSES
from ..locations.models import Location
from ..surveys.models import Survey
from . import mapping
from .columns import Columns
from .outcome import Options, ParsedRow, RowErrors
from .places import LocationIndex, split_path
from .read import fast_datetime, file_number_locale, guarded

MAX_ROWS = 100_000
PREVIEW_ROWS = 20


@dataclass
class Validated:
    total: int = 0  # rows that are not empty
    rows: list = field(default_factory=list)  # ParsedRow, the rows without errors
    preview: list = field(default_factory=list)  # first rows as parsed {field: value}
    to_create: dict = field(default_factory=dict)  # location paths to create, in order
    missing_sites: dict = field(default_factory=dict)  # first parts of paths naming no site


def surveys_of(actor) -> dict:
    """The surveys the actor sees, by lower-cased name and by id."""
    surveys = {}
    for s in authz.scope(actor, Survey, "view"):
        surveys.setdefault(s.name.strip().lower(), s)
        surveys.setdefault(str(s.id), s)
    return surveys


def validate(actor, table, columns: Columns, options: Options, index: LocationIndex,
             err: RowErrors) -> Validated:
    """Every row of the table; errors go to `err` (the table's read error too)."""
    check = _RowCheck(actor, columns, options, index, err, file_number_locale(
        actor, table.delimiter))
    out = Validated(to_create=check.to_create, missing_sites=check.missing_sites)
    for rownum, raw_row in enumerate(guarded(table.rows, err.errors), start=2):
        if out.total >= MAX_ROWS:
            err(rownum, "", _("At most %(n)d rows per import.", n=MAX_ROWS))
            break
        raw = columns.values(raw_row)
        if all(v is None for v in raw.values()):
            continue
        out.total += 1
        row_errors = len(err)
        values, status = check.row(rownum, raw)
        if len(err) == row_errors and values is not None:
            out.rows.append(ParsedRow(rownum, values, status))
            if len(out.preview) < PREVIEW_ROWS:
                out.preview.append({"row": rownum, "status": status, **{
                    k: values.get(k) for k in ("tag", "location", "found_at", "rate_lpm",
                                               "pressure_bar", "component", "priority",
                                               "description")}})
    return out


class _RowCheck:
    """One row at a time, with what the rows share: the lookups, the tags seen so far and the
    locations to create."""

    def __init__(self, actor, columns: Columns, options: Options, index: LocationIndex,
                 err: RowErrors, numbers: str):
        self.actor, self.columns, self.options, self.index = actor, columns, options, index
        self.err, self.numbers = err, numbers
        self.tzname = actor.organization.timezone
        self.surveys = surveys_of(actor)
        self.to_create: dict[tuple, tuple] = {}
        self.missing_sites: dict[str, str] = {}
        self.seen_tags: dict[str, int] = {}
        self._users_by_email: dict[str, list] | None = None

    def assignee_id(self, rownum: int, raw) -> int | None:
        """An assignee column's e-mail address → the user's id (the form's rule, that the
        user may edit leaks and this very leak, is checked with the row's other values)."""
        if self._users_by_email is None:
            self._users_by_email = {}
            for uid, email in (User.select(User.id, User.email)
                               .where(User.organization == self.actor.organization.id)
                               .tuples()):
                self._users_by_email.setdefault((email or "").strip().lower(), []).append(uid)
        ids = self._users_by_email.get(str(raw).strip().lower(), [])
        if len(ids) != 1:
            self.err(rownum, "assignee", _("No user of this organization has the e-mail "
                                           "address “%(v)s”.", v=raw))
            return None
        return ids[0]

    def row(self, rownum: int, raw: dict) -> tuple[dict | None, str]:
        """(the leak's values or None, status)."""
        err = self.err
        data = dict(raw)
        if "found_at" in data:
            data["found_at"] = fast_datetime(data["found_at"], True)
        for f_name in ("due_date", "repaired_at"):
            if f_name in data:
                data[f_name] = fast_datetime(data[f_name], False)
        # Vocabulary columns: labels (English/German) → keys.
        for f_name in ("component", "priority", "method", "estimate_class"):
            if data.get(f_name) is not None:
                key = mapping.lookup(f_name, data[f_name])
                if key is None:
                    err(rownum, f_name, _("Unknown value “%(v)s”; use one of: %(keys)s.",
                                          v=data[f_name], keys=", ".join(
                                              str(k) for k in mapping.VOCABULARY_KEYS[f_name])))
                    data[f_name] = None
                else:
                    data[f_name] = key
        status = "open"
        if raw.get("status") is not None:
            status = mapping.lookup("status", raw["status"])
            if status not in STATUSES:
                err(rownum, "status", _("Unknown status “%(v)s”; use one of: %(keys)s.",
                                        v=raw["status"], keys=", ".join(STATUSES)))
                status = "open"
        data.pop("status", None)
        reason = data.pop("deferral_reason", None)
        reason = " ".join(str(reason).split()) if reason is not None else ""
        if len(reason) > 2000:
            err(rownum, "deferral_reason", _("At most %(n)d characters.", n=2000))
        if data.get("assignee") is not None:
            data["assignee"] = self.assignee_id(rownum, data["assignee"])
        if data.get("method") is None and data.get("estimate_class") and not data.get("rate_lpm"):
            data["method"] = "estimate"
        location = self._location(rownum, data)
        survey = None
        if data.get("survey") is not None:
            survey = self.surveys.get(str(data["survey"]).strip().lower())
            if survey is None:
                err(rownum, "survey", _("Unknown survey “%(v)s”.", v=data["survey"]))
        for f_name in ("location", "site", "building", "area", "survey"):
            data.pop(f_name, None)
        values = self._values(rownum, data, location, survey)
        if values is not None:
            # Checked in classify, where it is known whether the row defers a leak.
            values["deferral_reason"] = reason
        return values, status

    def _location(self, rownum: int, data: dict):
        """The row's Location, the lower-cased path tuple of one to create, or None (error)."""
        parts = []
        candidates = []
        if data.get("location") is not None and "/" in str(data["location"]):
            parts = split_path(str(data["location"]))
        else:
            for f_name in ("site", "building", "area", "location"):
                if data.get(f_name) is not None:
                    parts.append(str(data[f_name]).strip())
            if data.get("location") is not None and len(parts) > 1:
                # "Site" + a location that is itself a unique code/name (or the site again).
                candidates = [[str(data["location"]).strip()]]
        loc_field = self.columns.location_field()
        location = None
        if not parts:
            self.err(rownum, loc_field, _("This field is required."))
            return None
        location, missing_at = self.index.resolve(parts)
        for alt in candidates:
            if missing_at < 0:
                break
            alt_loc, alt_missing = self.index.resolve(alt)
            if alt_missing < 0:
                location, missing_at = alt_loc, alt_missing
        if missing_at == 0:
            self.missing_sites.setdefault(parts[0].strip().lower(), parts[0].strip())
        if missing_at >= 0:
            if self.options.create_locations:
                for d in range(missing_at, len(parts)):
                    self.to_create.setdefault(tuple(p.lower() for p in parts[:d + 1]),
                                              tuple(parts[:d + 1]))
                location = tuple(p.lower() for p in parts)
            else:
                self.err(rownum, loc_field,
                         _("Unknown location “%(p)s” (no “%(part)s” there).",
                           p=" / ".join(parts), part=parts[missing_at]))
                location = None
        return location

    def _check_assignee(self, rownum: int, values: dict) -> None:
        """The form's rule: the assignee may edit this leak where the row puts it (a location
        still to be created: its deepest existing ancestor, whose grant covers it)."""
        user = values.get("assignee")
        if user is None:
            return
        location = values["location"]
        if isinstance(location, tuple):
            location = self.index.resolve(list(location))[0]
        assignee = leaks.actor_of(user)
        survey = values.get("survey")
        # The leak's edit scope: its location's subtree or its survey granted (the write
        # checks the stored leak once more inside the transaction).
        allowed = (authz.unrestricted(assignee, "edit") if location is None else
                   authz.can(assignee, "edit", location)
                   or (survey is not None and authz.can(assignee, "edit", survey)))
        if not allowed:
            self.err(rownum, "assignee", _(
                "%(name)s may not edit this leak (its location or survey is not granted to "
                "them); choose someone who may.", name=user.display_name))

    def _values(self, rownum: int, data: dict, location, survey) -> dict | None:
        """The form's parser: same types, ranges and messages as the leak form."""
        err, actor = self.err, self.actor
        form = {k: v for k, v in data.items() if v is not None}
        form["location"] = "0"
        values = None
        try:
            with numbers_in(self.numbers):
                values = leaks.parse_leak_form(form, tzname=self.tzname, creating=True)
        except ValidationError as exc:
            for f_name, msg in exc.errors.items():
                err(rownum, f_name, msg)
        if values is None:
            return None
        values.pop("status", None)
        values["location"] = location if isinstance(location, Location) else None
        values["survey"] = survey
        if values.get("tag") is None:
            err(rownum, "tag", _("This field is required."))
        if location is not None:
            try:
                placeholder = location if isinstance(location, Location) else Location(
                    id=0, path="/0/", organization=actor.organization)
                checked = leaks.check_values(actor, {**values, "location": placeholder,
                                                      "survey": None})
                checked["location"] = location
                checked["survey"] = survey
                values = checked
                self._check_assignee(rownum, values)
            except ValidationError as exc:
                for f_name, msg in exc.errors.items():
                    err(rownum, f_name, msg)
        if values.get("repaired_at") and values.get("found_at") and \
                values["repaired_at"] < values["found_at"].date():
            err(rownum, "repaired_at",
                _("The repair date must not be before the leak was found."))
        tag = values.get("tag")
        if tag:
            key = str(leaks.tag_number_of(tag)) if leaks.tag_number_of(tag) is not None else tag
            if key in self.seen_tags:
                err(rownum, "tag", _("Tag number %(tag)s also appears in row %(row)d.",
                                     tag=tag, row=self.seen_tags[key]))
            self.seen_tags.setdefault(key, rownum)
        return values
