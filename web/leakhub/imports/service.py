"""Leak import: file → column mapping → validated rows → one all-or-nothing transaction.

- Every row is validated with the form's own parser (`leaks.service.parse_leak_form`) and
  cross-field rules, so an import accepts exactly what the leak form accepts. Errors name the
  row (as the spreadsheet shows it: header = row 1) and the file's column.
- Re-importing is idempotent. Leaks are matched by tag number:
  same tag and same content → skipped ("unchanged");
  same tag, different content → a **conflict** that blocks the import and lists the
  differing columns, unless "update existing leaks" is chosen: then the mapped fields are
  updated through the audit writer (field-level diff; status moves along the workflow).
  Columns that are not mapped never change existing data.
- Locations are given as a code path "SITE/BLDG/AREA" (names work too), or in separate site /
  building / area columns; unknown locations are errors naming row and column unless
  "create missing locations" is chosen.
- New leaks are written in bulk (insert in chunks + one audit batch through
  `audit.writer.append`) so 10,000 rows take seconds, not minutes.
"""
from __future__ import annotations

import collections
import datetime as dt
import re
from dataclasses import dataclass, field
from decimal import Decimal

import peewee as pw
from flask_babel import gettext as _
from werkzeug.exceptions import Forbidden

from .. import authz
from ..audit import writer
from ..core.db import bulk_insert, database, utcnow
from ..core.errors import LeakhubError
from ..core.i18n import numbers_in, select_locale
from ..core.validation import ValidationError
from ..leaks import service as leaks
from ..leaks.models import STATUSES, Leak, LeakStatusChange
from ..locations import service as locations
from ..locations.models import Location
from ..surveys.models import Survey
from . import formats, mapping

MAX_ROWS = 100_000
PREVIEW_ROWS = 20
MAX_ERRORS = 1000
REQUIRED = ("tag", "found_at")
FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")


@dataclass
class Options:
    update_existing: bool = False
    create_locations: bool = False


@dataclass
class RowError:
    row: int  # spreadsheet row number (header = 1); 0: the file as a whole
    column: str  # the file's column header, "" when not about one column
    message: str

    def __str__(self):
        if self.row and self.column:
            return _("Row %(row)d, column “%(col)s”: %(msg)s", row=self.row, col=self.column,
                     msg=self.message)
        if self.row:
            return _("Row %(row)d: %(msg)s", row=self.row, msg=self.message)
        return self.message


@dataclass
class Conflict:
    row: int
    tag: str
    columns: list  # [(column header, current value, value in the file)]


@dataclass
class Result:
    format: str = ""
    headers: list = field(default_factory=list)
    mapping: dict = field(default_factory=dict)  # column index → field
    total: int = 0
    new: int = 0
    unchanged: int = 0
    changed: int = 0
    conflicts: list = field(default_factory=list)
    errors: list = field(default_factory=list)
    preview: list = field(default_factory=list)  # first rows as parsed {field: value}
    missing_locations: list = field(default_factory=list)
    committed: bool = False
    encoding: str = ""
    delimiter: str = ""
    warnings: list = field(default_factory=list)  # shown with the preview; do not block

    @property
    def ok(self) -> bool:
        return not self.errors and not self.conflicts

    def summary(self) -> dict:
        return {"rows": self.total, "new": self.new, "unchanged": self.unchanged,
                "changed": self.changed, "conflicts": len(self.conflicts),
                "errors": len(self.errors), "committed": self.committed,
                "created_locations": self.missing_locations if self.committed else []}


class ImportAborted(LeakhubError):
    pass


# ---------------------------------------------------------------- reading

def format_error(exc: formats.FormatError) -> RowError:
    """A reader's error as a row error: which row, which column, which limit."""
    if isinstance(exc, formats.FieldTooLong):
        return RowError(exc.row, exc.column, _(
            "A cell is longer than %(n)s characters (64 KiB), the most an import reads per "
            "cell.", n=f"{exc.limit:,}"))
    return RowError(0, "", _("The file cannot be read: %(e)s", e=str(exc)))


def _guarded(rows, errors: list):
    """The table's rows until the reader fails; its error is added to `errors` (which then
    stops the import) instead of escaping as an exception."""
    try:
        yield from rows
    except formats.FormatError as exc:
        errors.append(format_error(exc))


def read_table(data: bytes, filename: str) -> tuple[formats.Importer, formats.Table]:
    importer = formats.importer_for(filename, data[:8192])
    return importer, importer.table(data)


def headers_of(data: bytes, filename: str) -> tuple[str, list[str]]:
    importer, table = read_table(data, filename)
    return importer.name, table.headers


def _clean(raw):
    """Raw cell → value for the validators: text stripped, the export's formula guard (a
    leading apostrophe before = + - @) removed, empty → None."""
    if raw is None:
        return None
    if isinstance(raw, str):
        text = raw.strip()
        if len(text) > 1 and text[0] == "'" and text[1] in FORMULA_PREFIXES:
            text = text[1:]
        return text or None
    if isinstance(raw, float):
        if raw.is_integer() and abs(raw) < 1e15:
            return int(raw)
        return Decimal(repr(raw))
    return raw


_DE_DATE = re.compile(r"^(\d{1,2})\.(\d{1,2})\.(\d{4})(?:[ T](\d{1,2}):(\d{2})(?::(\d{2}))?)?$")
_ISO_DATE = re.compile(r"^(\d{4})-(\d{2})-(\d{2})(?:[ T](\d{1,2}):(\d{2})(?::(\d{2}))?)?$")


def _fast_datetime(value, with_time: bool):
    """The two common spellings (31.03.2024 [09:15], 2024-03-31 [09:15]) without strptime's
    cost; anything else (or anything invalid) stays raw for the validation helper, which then
    reports it."""
    if not isinstance(value, str):
        return value
    m = _DE_DATE.match(value)
    if m:
        d, mo, y, hh, mi, ss = m.groups()
    else:
        m = _ISO_DATE.match(value)
        if not m:
            return value
        y, mo, d, hh, mi, ss = m.groups()
    try:
        out = dt.datetime(int(y), int(mo), int(d), int(hh or 0), int(mi or 0), int(ss or 0))
    except ValueError:
        return value
    if not 1900 <= out.year <= 2200 or (not with_time and hh is not None):
        return value
    return out if with_time else out.date()


# ---------------------------------------------------------------- locations

class LocationIndex:
    """All locations of the organization, looked up by code or name path."""

    def __init__(self, actor):
        self.children: dict[int, dict[str, Location]] = collections.defaultdict(dict)
        self.by_code: dict[str, list[Location]] = collections.defaultdict(list)
        self.by_name: dict[str, list[Location]] = collections.defaultdict(list)
        for loc in locations.all_locations(actor):
            self.add(loc)

    def add(self, loc: Location) -> None:
        kids = self.children[loc.parent_id or 0]
        kids.setdefault("c:" + loc.code.strip().lower(), loc)
        kids.setdefault("n:" + loc.name.strip().lower(), loc)
        self.by_code[loc.code.strip().lower()].append(loc)
        self.by_name[loc.name.strip().lower()].append(loc)

    def child(self, parent_id: int, part: str) -> Location | None:
        kids = self.children.get(parent_id or 0, {})
        p = part.strip().lower()
        return kids.get("c:" + p) or kids.get("n:" + p)

    def resolve(self, parts: list[str]) -> tuple[Location | None, int]:
        """(location, 0) or (deepest found ancestor or None, index of the first missing part)."""
        parent = None
        for i, part in enumerate(parts):
            loc = self.child(parent.id if parent else 0, part)
            if loc is None:
                if i == 0 and len(parts) == 1:
                    hits = self.by_code.get(part.lower()) or self.by_name.get(part.lower())
                    if hits and len(hits) == 1:
                        return hits[0], -1
                return parent, i
            parent = loc
        return parent, -1


def split_path(text: str) -> list[str]:
    for sep in (" > ", ">", "/", "\\"):
        if sep in text:
            return [p.strip() for p in text.split(sep) if p.strip()]
    return [text.strip()] if text.strip() else []


KIND_AT_DEPTH = ("site", "building")


def _kind(depth: int) -> str:
    return KIND_AT_DEPTH[depth] if depth < len(KIND_AT_DEPTH) else "area"


# ---------------------------------------------------------------- comparing

_COMPARE = ("location", "survey", "found_at", "found_by", "device_serial", "method",
            "estimate_class", "rate_lpm", "rate_low_lpm", "rate_high_lpm", "pressure_bar", "gas",
            "component", "priority", "description", "recommended_action", "spare_part",
            "due_date", "repaired_at", "repaired_by", "repair_cost", "verification_note")


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


# ---------------------------------------------------------------- the import

def _status_path(from_status: str, to_status: str) -> list[str] | None:
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


def file_number_locale(actor, delimiter: str) -> str:
    """How the file's text numbers are read (core.validation.parse_decimal): a CSV separated by
    ";" is German (Excel writes ";" where "," is the decimal comma) and one separated by ","
    English; other files (XLSX text cells, tab-separated) follow the importing user's language,
    else the organization's. XLSX number cells are numbers and need no reading."""
    if delimiter == ";":
        return "de"
    if delimiter == ",":
        return "en"
    user = getattr(actor, "user", None)
    return select_locale(getattr(user, "language", None), actor.organization.language)


def run_import(actor, data: bytes, filename: str, *, column_map: dict | None = None,
               options: Options | None = None, dry_run: bool = False) -> Result:
    """Validate (and unless `dry_run` or anything failed, write) the file. `column_map`:
    column index → field (None: suggested from the headers)."""
    authz.require(actor, "create")
    options = options or Options()
    result = Result()
    try:
        importer, table = read_table(data, filename)
    except formats.FormatError as exc:
        result.errors.append(format_error(exc))
        return result
    result.format, result.headers = importer.name, table.headers
    result.encoding, result.delimiter = table.encoding, table.delimiter
    cmap = {int(k): v for k, v in (column_map if column_map is not None
                                    else mapping.suggest(table.headers)).items()
            if v and v in mapping.FIELDS and 0 <= int(k) < len(table.headers)}
    result.mapping = cmap
    fields_mapped = collections.Counter(cmap.values())
    for f_name, n in fields_mapped.items():
        if n > 1:
            result.errors.append(RowError(0, "", _("“%(f)s” is assigned to more than one column.",
                                                   f=mapping.FIELDS[f_name])))
    missing = [f for f in REQUIRED if f not in fields_mapped]
    if not ({"location", "site", "building", "area"} & set(fields_mapped)):
        missing.append("location")
    if not ({"rate_lpm", "estimate_class"} & set(fields_mapped)):
        missing.append("rate_lpm")
    for f_name in missing:
        result.errors.append(RowError(0, "", _("No column is assigned to “%(f)s”.",
                                                f=mapping.FIELDS[f_name])))
    if result.errors:
        return result
    column_of = {f_name: table.headers[i] for i, f_name in cmap.items()}
    tzname = actor.organization.timezone
    numbers = file_number_locale(actor, table.delimiter)
    mapping.add_labels("component", leaks.COMPONENT_LABELS)
    mapping.add_labels("status", leaks.STATUS_LABELS)
    mapping.add_labels("priority", leaks.PRIORITY_LABELS)
    mapping.add_labels("method", leaks.METHOD_LABELS)
    mapping.add_labels("estimate_class", leaks.ESTIMATE_LABELS)

    index = LocationIndex(actor)
    surveys = {}
    for s in authz.scope(actor, Survey, "view"):
        surveys.setdefault(s.name.strip().lower(), s)
        surveys.setdefault(str(s.id), s)
    to_create: dict[tuple, None] = {}  # location paths to create, in order
    missing_sites: dict[str, str] = {}  # first parts of paths that name no site
    parsed_rows = []  # (row number, tag, values, status, location parts or None)
    seen_tags: dict[str, int] = {}

    def err(row, f_name, message):
        if len(result.errors) < MAX_ERRORS:
            result.errors.append(RowError(row, column_of.get(f_name, ""), message))

    for rownum, raw_row in enumerate(_guarded(table.rows, result.errors), start=2):
        if result.total >= MAX_ROWS:
            err(rownum, "", _("At most %(n)d rows per import.", n=MAX_ROWS))
            break
        raw = {f_name: _clean(raw_row[i]) for i, f_name in cmap.items()}
        if all(v is None for v in raw.values()):
            continue
        result.total += 1
        row_errors = len(result.errors)
        data = dict(raw)
        if "found_at" in data:
            data["found_at"] = _fast_datetime(data["found_at"], True)
        for f_name in ("due_date", "repaired_at"):
            if f_name in data:
                data[f_name] = _fast_datetime(data[f_name], False)
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
        if data.get("method") is None and data.get("estimate_class") and not data.get("rate_lpm"):
            data["method"] = "estimate"
        # Location.
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
        loc_field = "location" if "location" in cmap.values() else next(
            f for f in ("area", "building", "site") if f in cmap.values())
        location = None
        if not parts:
            err(rownum, loc_field, _("This field is required."))
        else:
            location, missing_at = index.resolve(parts)
            for alt in candidates:
                if missing_at < 0:
                    break
                alt_loc, alt_missing = index.resolve(alt)
                if alt_missing < 0:
                    location, missing_at = alt_loc, alt_missing
            if missing_at == 0:
                missing_sites.setdefault(parts[0].strip().lower(), parts[0].strip())
            if missing_at >= 0:
                if options.create_locations:
                    for d in range(missing_at, len(parts)):
                        to_create.setdefault(tuple(p.lower() for p in parts[:d + 1]),
                                             tuple(parts[:d + 1]))
                    location = tuple(p.lower() for p in parts)
                else:
                    err(rownum, loc_field,
                        _("Unknown location “%(p)s” (no “%(part)s” there).",
                          p=" / ".join(parts), part=parts[missing_at]))
                    location = None
        survey = None
        if data.get("survey") is not None:
            survey = surveys.get(str(data["survey"]).strip().lower())
            if survey is None:
                err(rownum, "survey", _("Unknown survey “%(v)s”.", v=data["survey"]))
        for f_name in ("location", "site", "building", "area", "survey"):
            data.pop(f_name, None)
        # The form's parser: same types, ranges and messages as the leak form.
        form = {k: v for k, v in data.items() if v is not None}
        form["location"] = "0"
        values = None
        try:
            with numbers_in(numbers):
                values = leaks.parse_leak_form(form, tzname=tzname, creating=True)
        except ValidationError as exc:
            for f_name, msg in exc.errors.items():
                err(rownum, f_name, msg)
        if values is not None:
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
                if key in seen_tags:
                    err(rownum, "tag", _("Tag number %(tag)s also appears in row %(row)d.",
                                         tag=tag, row=seen_tags[key]))
                seen_tags.setdefault(key, rownum)
        if len(result.errors) == row_errors and values is not None:
            parsed_rows.append((rownum, values, status))
            if len(result.preview) < PREVIEW_ROWS:
                result.preview.append({"row": rownum, "status": status, **{
                    k: values.get(k) for k in ("tag", "location", "found_at", "rate_lpm",
                                               "pressure_bar", "component", "priority",
                                               "description")}})
    result.missing_locations = [" / ".join(p) for p in to_create.values()]
    result.warnings.extend(_site_warnings(index, missing_sites, options.create_locations))
    may = _TargetCheck(actor, index, to_create)

    def loc_or(f_name):  # "location" → the column that holds the location
        if f_name != "location":
            return f_name
        return next((f for f in ("location", "area", "building", "site") if f in column_of),
                    "location")

    # Existing leaks with the same tags (or tag numbers: "0100" is "100").
    tags = [v["tag"] for _, v, _ in parsed_rows]
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
    compare_fields = [f for f in _COMPARE if f in set(cmap.values()) or (
        f == "location" and {"site", "building", "area"} & set(cmap.values()))]
    if "estimate_class" in compare_fields and "rate_lpm" not in compare_fields:
        compare_fields.append("rate_lpm")
    new_rows, updates = [], []
    for rownum, values, status in parsed_rows:
        tag = values["tag"]
        number = leaks.tag_number_of(tag)
        leak = existing_by_tag.get(tag) or (existing_by_number.get(number)
                                            if number is not None else None)
        if leak is None:
            refusal = may.create(values)
            if refusal:
                err(rownum, loc_or(refusal[0]), refusal[1])
                continue
            new_rows.append((rownum, values, status))
            continue
        diffs = {}
        for f_name in compare_fields:
            new = values.get(f_name)
            if isinstance(new, tuple):  # location still to be created
                diffs[f_name] = new
                continue
            if _comparable(new) != _comparable(_leak_value(leak, f_name)):
                diffs[f_name] = new
        status_given = "status" in cmap.values()
        if status_given and status != leak.status:
            if _status_path(leak.status, status) is None:
                err(rownum, "status", _(
                    "Leak %(tag)s cannot go from “%(a)s” to “%(b)s”.", tag=leak.tag,
                    a=leaks.STATUS_LABELS[leak.status], b=leaks.STATUS_LABELS[status]))
                continue
            diffs["status"] = status
        if not diffs:
            result.unchanged += 1
            continue
        refusal = may.change(leak, diffs)
        if refusal:
            err(rownum, loc_or(refusal[0]), refusal[1])
            continue
        result.changed += 1
        if options.update_existing:
            updates.append((rownum, leak, values, diffs))
        else:
            cols = []
            for f_name, new in diffs.items():
                col = column_of.get(f_name) or column_of.get("location") or column_of.get(
                    "area") or column_of.get("building") or column_of.get("site") or f_name
                old = leak.status if f_name == "status" else _leak_value(leak, f_name)
                if f_name == "location":
                    old = leak.location.label
                    new = new.label if isinstance(new, Location) else " / ".join(new)
                cols.append((col, old, new.name if isinstance(new, Survey) else new))
            result.conflicts.append(Conflict(rownum, leak.tag, cols))
    result.new = len(new_rows)
    if dry_run or not result.ok:
        return result

    with database.atomic():
        writer.begin(actor)
        created_locs = _create_locations(actor, index, to_create)
        _insert_new(actor, new_rows, created_locs, filename, may)
        for _rownum, leak, values, diffs in updates:
            _update_one(actor, leak, values, diffs, created_locs)
        writer.event(actor, "import", details={
            "file": filename[:200], "format": importer.name, "rows": result.total,
            "new": result.new, "updated": len(updates), "unchanged": result.unchanged,
            "created_locations": result.missing_locations})
    result.committed = True
    return result


def _site_warnings(index: LocationIndex, missing_sites: dict, creating: bool) -> list[str]:
    """A path whose first part is no site but names a building or area: the columns are
    probably mapped in the wrong order ("Halle 3 / Montage / Werk Süd"). Said before anything
    is written, most of all before "create missing locations" makes Halle 3 a site."""
    out = []
    for key, name in missing_sites.items():
        hits = [loc for loc in index.by_name.get(key, []) + index.by_code.get(key, [])
                if loc.kind != "site"]
        if not hits:
            continue
        loc = hits[0]
        if creating:
            out.append(_("“%(name)s” would be created as a new site, but there is a %(kind)s of "
                         "that name (%(loc)s). Check which columns are mapped to site, building "
                         "and area.", name=name, kind=_(loc.kind), loc=loc.label))
        else:
            out.append(_("“%(name)s” is not a site, but there is a %(kind)s of that name "
                         "(%(loc)s). Check which columns are mapped to site, building and area.",
                         name=name, kind=_(loc.kind), loc=loc.label))
        if len(out) >= 20:
            break
    return out


class _TargetCheck:
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


def _create_locations(actor, index: LocationIndex, to_create: dict) -> dict:
    created: dict[tuple, Location] = {}
    for key, parts in to_create.items():
        parent = None
        if len(parts) > 1:
            parent = created.get(key[:-1]) or index.resolve(list(parts[:-1]))[0]
        existing = index.child(parent.id if parent else 0, parts[-1])
        if existing is not None:
            created[key] = existing
            continue
        depth = len(parts) - 1
        code = parts[-1][:40]
        loc = locations.create_location(actor, kind=_kind(depth), code=code, name=parts[-1][:200],
                                        parent=parent)
        index.add(loc)
        created[key] = loc
    return created


_LEAK_COLUMNS = ("tag", "tag_number", "location", "survey", "found_at", "found_by_user",
                 "found_by", "device_serial", "method", "estimate_class", "rate_lpm",
                 "rate_low_lpm", "rate_high_lpm", "pressure_bar", "gas", "component", "priority",
                 "description", "recommended_action", "spare_part", "status", "due_date",
                 "repaired_at", "repaired_by", "repair_cost", "verified_at", "verification_note",
                 "previous_leak", "source", "version", "created_at", "updated_at")


def _snapshotter(model):
    """writer.snapshot for plain row dicts (same output, without building model instances)."""
    skip = writer._skip_fields(model)
    secret = writer._secret_fields(model)
    names = [n for n in model._meta.fields if n not in skip]
    jsonable = writer._jsonable

    def snap(row: dict) -> dict:
        out = {}
        for n in names:
            v = row.get(n)
            out[n] = "(redacted)" if n in secret and v else jsonable(v)
        return out
    return snap


def _insert_new(actor, new_rows, created_locs, filename, may) -> None:
    """Bulk insert + one audit batch (the writer's chain, same transaction)."""
    if not new_rows:
        return
    org = actor.organization
    now = utcnow()
    checked_locations = set()
    rows = []
    for _rownum, v, status in new_rows:
        loc = v["location"]
        if isinstance(loc, tuple):
            loc = created_locs[loc]
        if loc.id not in checked_locations:
            # The preview refused rows outside the actor's grants (_TargetCheck); this is the
            # same decision once more inside the transaction, on the created locations too.
            refusal = may.create({**v, "location": loc, "tag": None})
            if refusal:
                raise Forbidden(description=refusal[1])
            checked_locations.add(loc.id)
        row = {k: v.get(k) for k in _LEAK_COLUMNS}
        row.update(
            organization=org.id, tag=v["tag"], tag_number=leaks.tag_number_of(v["tag"]),
            location=loc.id, survey=v["survey"].id if v.get("survey") else None,
            found_by_user=None, previous_leak=None, status=status, source="import",
            version=1, created_at=now, updated_at=now,
            verified_at=now.date() if status == "verified" else None)
        if status in ("repaired", "verified") and not row.get("repaired_at"):
            row["repaired_at"] = now.date()
        for k in ("found_by", "device_serial", "description", "recommended_action",
                  "spare_part", "repaired_by", "verification_note"):
            row[k] = row.get(k) or ""
        rows.append(row)
    bulk_insert(Leak, rows)
    new_tags = {r["tag"] for r in rows}
    ids: dict[str, int] = {tag: lid for lid, tag in authz.scope(
        actor, Leak, "create", Leak.select(Leak.id, Leak.tag)).tuples() if tag in new_tags}
    label = actor.display[:254]
    user = actor.user if actor.kind == "user" else None
    history = [{"organization": org.id, "leak": ids[r["tag"]], "at": now, "from_status": None,
                "to_status": r["status"], "actor_label": label,
                "user": user.id if user else None, "note": _("imported from %(f)s",
                                                             f=filename[:150])}
               for r in rows]
    bulk_insert(LeakStatusChange, history)
    batch = []
    snap_leak = _snapshotter(Leak)
    snap_hist = _snapshotter(LeakStatusChange)
    for r in rows:
        snap = snap_leak({**r, "id": ids[r["tag"]]})
        batch.append({"action": "create", "entity_type": writer.entity_type(Leak),
                      "entity_id": ids[r["tag"]],
                      "changes": {k: [None, val] for k, val in snap.items()
                                  if val not in (None, "")}})
    new_ids = set(ids.values())
    hist_ids: dict[int, int] = {
        leak_id: hid for leak_id, hid in authz.scope(
            actor, LeakStatusChange, "view",
            LeakStatusChange.select(LeakStatusChange.leak, LeakStatusChange.id))
        .where(LeakStatusChange.at == now).tuples() if leak_id in new_ids}
    for h in history:
        snap = snap_hist({**h, "id": hist_ids.get(h["leak"])})
        batch.append({"action": "create", "entity_type": writer.entity_type(LeakStatusChange),
                      "entity_id": hist_ids.get(h["leak"]),
                      "changes": {k: [None, val] for k, val in snap.items()
                                  if val not in (None, "")}})
    writer.append(actor, "create", batch=batch)


def _update_one(actor, leak: Leak, values: dict, diffs: dict, created_locs) -> None:
    changes = {k: v for k, v in diffs.items() if k != "status"}
    if "location" in changes and isinstance(changes["location"], tuple):
        changes["location"] = created_locs[changes["location"]]
    if changes:
        leaks.update_leak(actor, leak, expected_version=leak.version, **changes)
    if "status" in diffs:
        for step in _status_path(leak.status, diffs["status"]):
            leaks.change_status(actor, leak, step, note=_("import"),
                                repaired_at=values.get("repaired_at"),
                                repair_cost=values.get("repair_cost"))


def parse_mapping_form(form, headers: list[str]) -> dict[int, str]:
    out = {}
    for i in range(len(headers)):
        value = form.get(f"col_{i}") or ""
        if value in mapping.FIELDS:
            out[i] = value
    return out

