"""Leak list exports (CSV, XLSX) with the list's own filter (`leaks.service.parse_filter` /
`filtered_query`), so an export always holds exactly what the list shows.

- Numbers are numbers (XLSX numeric cells; CSV plain digits with "." or, for German Excel,
  ","), ranges in separate columns (rate low / high: "1.5–3.2" never turns into a date).
- Derived columns: kWh/a, cost/a, CO2 kg/a with the settings valid at each leak's site and date.
- Text cells that a spreadsheet would run as a formula (starting with = + - @ tab CR) get a
  leading apostrophe (CSV and XLSX). The importer removes it again.
- The headers are the importer's field labels in the user's language ("Tag number" /
  "Leckage-Nr."): the importer knows them in English and German (imports.mapping), so an
  export re-imports without mapping whoever imports it. Columns the importer does not read
  (location name, site code, verified at, the derived figures) it leaves out by name.
- Values are in the user's language (status, component, method, estimate class labels; the
  importer's vocabularies know both languages' labels, so a German export re-imports too).
  Priority: the word in German (hoch / mittel / niedrig, which also sort in that order); in
  English the number 1–3 (1 = high), a numeric cell that sorts and filters in Excel.
"""
from __future__ import annotations

import csv
import datetime as dt
import io
import tempfile
from dataclasses import dataclass
from decimal import Decimal

from flask_babel import get_locale
from flask_babel import gettext as _

from .. import authz
from ..audit import writer
from ..core.db import in_batches
from ..core.validation import utc_to_local
from ..identity.models import User
from ..imports.mapping import EXPORT_ONLY_HEADERS, FIELDS
from ..leaks import calc
from ..leaks import service as leaks
from ..leaks.models import Leak, LeakStatusChange
from ..locations.models import Location
from ..locations.settings import SettingsResolver
from ..surveys.models import Survey
from . import xlsx

FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")
FORMATS = ("csv", "xlsx")
BATCH = 2000
MAX_ROWS = 1_000_000

# (key, header, kind) — kind: text | int | number | datetime | date. Headers are lazy labels:
# the user's language when the file is written.
COLUMNS = [
    ("tag", FIELDS["tag"], "text"),
    ("location", FIELDS["location"], "text"),
    ("location_name", EXPORT_ONLY_HEADERS["location_name"], "text"),
    ("site", EXPORT_ONLY_HEADERS["site_code"], "text"),
    ("survey", FIELDS["survey"], "text"),
    ("found_at", FIELDS["found_at"], "datetime"),
    ("found_by", FIELDS["found_by"], "text"),
    ("device_serial", FIELDS["device_serial"], "text"),
    ("status", FIELDS["status"], "text"),
    ("deferral_reason", FIELDS["deferral_reason"], "text"),
    ("priority", FIELDS["priority"], "int"),      # a word in German (module docstring)
    ("component", FIELDS["component"], "text"),
    ("method", FIELDS["method"], "text"),
    ("estimate_class", FIELDS["estimate_class"], "text"),
    ("rate_lpm", FIELDS["rate_lpm"], "number"),
    ("rate_low_lpm", FIELDS["rate_low_lpm"], "number"),
    ("rate_high_lpm", FIELDS["rate_high_lpm"], "number"),
    ("pressure_bar", FIELDS["pressure_bar"], "number"),
    # The inputs of a calculated rate (method orifice / detector), empty for other methods.
    ("orifice_diameter_mm", FIELDS["orifice_diameter_mm"], "number"),
    ("discharge_coefficient", FIELDS["discharge_coefficient"], "number"),
    ("temperature_c", FIELDS["temperature_c"], "number"),
    ("detector_db", FIELDS["detector_db"], "number"),
    ("detector_distance_m", FIELDS["detector_distance_m"], "number"),
    ("gas", FIELDS["gas"], "text"),
    ("description", FIELDS["description"], "text"),
    ("recommended_action", FIELDS["recommended_action"], "text"),
    ("spare_part", FIELDS["spare_part"], "text"),
    ("due_date", FIELDS["due_date"], "date"),
    ("assignee", FIELDS["assignee"], "text"),
    ("order_number", FIELDS["order_number"], "text"),
    ("repaired_at", FIELDS["repaired_at"], "date"),
    ("repaired_by", FIELDS["repaired_by"], "text"),
    ("repair_cost", FIELDS["repair_cost"], "number"),
    ("after_lpm", FIELDS["after_lpm"], "number"),
    ("verified_at", EXPORT_ONLY_HEADERS["verified_at"], "date"),
    ("kwh_year", EXPORT_ONLY_HEADERS["kwh_year"], "number"),
    ("cost_year", EXPORT_ONLY_HEADERS["cost_year"], "number"),
    ("currency", EXPORT_ONLY_HEADERS["currency"], "text"),
    ("co2_kg_year", EXPORT_ONLY_HEADERS["co2_kg_year"], "number"),
]
KINDS = {key: kind for key, _h, kind in COLUMNS}

Q1, Q2, Q3 = Decimal("0.1"), Decimal("0.01"), Decimal("0.001")


def neutralize(text: str) -> str:
    """A text cell that would start a formula gets a leading apostrophe."""
    if text and text[0] in FORMULA_PREFIXES:
        return "'" + text
    return text


@dataclass
class Options:
    semicolon: bool = False
    decimal_comma: bool = False


def parse_options(args) -> Options:
    return Options(semicolon=(args.get("sep") == "semicolon"),
                   decimal_comma=(args.get("decimal") == "comma"))


class _Paths:
    """Location code paths ("BER/H1/A1") from one read of the (small) location table."""

    def __init__(self, actor):
        self.locs = {loc.id: loc for loc in
                     authz.scope(actor, Location, "view",
                                 Location.select(Location.id, Location.code, Location.name,
                                                 Location.path, Location.organization))}
        self._cache: dict[int, str] = {}

    def path(self, loc_id: int) -> str:
        if loc_id not in self._cache:
            loc = self.locs.get(loc_id)
            if loc is None:
                return ""
            ids = [int(p) for p in loc.path.strip("/").split("/") if p]
            self._cache[loc_id] = "/".join(self.locs[i].code for i in ids if i in self.locs)
        return self._cache[loc_id]

    def site_code(self, loc_id: int) -> str:
        return self.path(loc_id).split("/")[0]


# Columns read for the export, converted cheaply from the raw cursor (building 100,000 model
# instances and parsing their timestamps with strptime would dominate the export time).
_SELECT = (Leak.tag, Leak.location, Location.path, Location.name, Leak.survey, Leak.found_at,
           Leak.found_by, Leak.device_serial, Leak.status, Leak.priority, Leak.component,
           Leak.method, Leak.estimate_class, Leak.rate_lpm, Leak.rate_low_lpm, Leak.rate_high_lpm,
           Leak.pressure_bar, Leak.gas, Leak.description, Leak.recommended_action,
           Leak.spare_part, Leak.due_date, Leak.repaired_at, Leak.repaired_by, Leak.repair_cost,
           Leak.verified_at, Leak.rate_inputs, Leak.assignee, Leak.order_number, Leak.after_lpm,
           Leak.id)
_INPUTS = ("orifice_diameter_mm", "discharge_coefficient", "temperature_c", "detector_db",
           "detector_distance_m")


def _dt(v):
    if v is None or isinstance(v, dt.datetime):
        return v
    return dt.datetime.fromisoformat(str(v))


def _date(v):
    if v is None or isinstance(v, dt.date):
        return v.date() if isinstance(v, dt.datetime) else v
    return dt.date.fromisoformat(str(v)[:10])


def _dec(v):
    """A stored number as entered: PostgreSQL returns NUMERIC(…, 3) as 12.500, SQLite as the
    float 12.5; the file must not depend on the database (trailing zeros dropped)."""
    if v is None:
        return None
    if isinstance(v, float):
        v = Decimal(repr(v))
    elif not isinstance(v, Decimal):
        v = Decimal(v)
    return v.quantize(Decimal(1)) if v == v.to_integral_value() else v.normalize()


def rows(actor, flt: leaks.LeakFilter, *, tzname: str | None):
    """Export rows as typed values (in COLUMNS order), in the list's sort order."""
    authz.require(actor, "report")
    paths = _Paths(actor)
    surveys = dict(authz.scope(actor, Survey, "view", Survey.select(Survey.id, Survey.name))
                   .tuples())
    resolver = SettingsResolver(actor)
    desc = flt.sort.startswith("-")
    order = [c.desc() if desc else c.asc() for c in leaks.SORTS[flt.sort.lstrip("-")]]
    query = (leaks.filtered_query(actor, flt, tzname=tzname).select(*_SELECT)
             .order_by(*order).limit(MAX_ROWS))
    status_labels = {k: str(v) for k, v in leaks.STATUS_LABELS.items()}
    component_labels = {k: str(v) for k, v in leaks.COMPONENT_LABELS.items()}
    method_labels = {k: str(v) for k, v in leaks.METHOD_LABELS.items()}
    estimate_labels = {k: str(v) for k, v in leaks.ESTIMATE_LABELS.items()}
    priorities = ({k: str(v) for k, v in leaks.PRIORITY_LABELS.items()}
                  if str(get_locale() or "en").startswith("de") else {})
    # Assignees by e-mail address, as the importer resolves them — only the addresses the
    # actor may see on the users pages (an external auditor sees his own, no one else's).
    emails = dict(authz.scope(actor, User, "view", User.select(User.id, User.email)).tuples())
    if actor.kind == "user" and actor.user is not None:
        emails[actor.user.id] = actor.user.email
    for batch in in_batches(query, BATCH):
        reasons = _deferral_reasons([r[-1] for r in batch if r[8] == "deferred"])
        for (tag, loc_id, loc_path, loc_name, survey_id, found_at, found_by, device_serial,
             status, priority, component, method, estimate_class, rate, low, high, pressure,
             gas, description, action, spare_part, due_date, repaired_at, repaired_by,
             repair_cost, verified_at, rate_inputs, assignee, order_number,
             after_lpm, leak_id) in batch:
            found_at = _dt(found_at)
            inputs = leaks.rate_inputs_of(rate_inputs) if rate_inputs else {}
            rate = _dec(rate)
            site_id = int(loc_path.split("/")[1]) if loc_path and loc_path.count("/") > 1 \
                else None
            f = calc.figures(rate, resolver.at(site_id, found_at))
            yield [
                tag, paths.path(loc_id), loc_name, paths.site_code(loc_id),
                surveys.get(survey_id, ""), utc_to_local(found_at, tzname), found_by,
                device_serial, status_labels.get(status, status), reasons.get(leak_id, ""),
                priorities.get(priority, priority),
                component_labels.get(component, component), method_labels.get(method, method),
                estimate_labels.get(estimate_class, estimate_class or ""),
                rate, _dec(low), _dec(high), _dec(pressure),
                *(inputs.get(k) for k in _INPUTS), gas, description, action,
                spare_part, _date(due_date), emails.get(assignee, "") if assignee else "",
                order_number, _date(repaired_at), repaired_by, _dec(repair_cost),
                _dec(after_lpm), _date(verified_at), f.kwh_year.quantize(Q1),
                f.cost_year.quantize(Q2), f.currency, f.co2_kg_year.quantize(Q1),
            ]


def _deferral_reasons(leak_ids: list) -> dict:
    """Deferred leaks' reasons: the note of each one's latest move to "deferred" (the import
    reads it back; a deferral needs one). One query per batch, only for deferred leaks."""
    out: dict = {}
    for i in range(0, len(leak_ids), 500):
        for leak_id, note in (LeakStatusChange.select(LeakStatusChange.leak,
                                                      LeakStatusChange.note)
                              .where(LeakStatusChange.leak.in_(leak_ids[i:i + 500])
                                     & (LeakStatusChange.to_status == "deferred"))
                              .order_by(LeakStatusChange.at, LeakStatusChange.id).tuples()):
            out[leak_id] = note
    return out


def _csv_cell(value, kind: str, opts: Options) -> str:
    if value is None:
        return ""
    if kind in ("number", "int"):
        text = format(value, "f") if isinstance(value, Decimal) else str(value)
        return text.replace(".", ",") if opts.decimal_comma else text
    if kind == "datetime":
        return value.strftime("%d.%m.%Y %H:%M" if opts.decimal_comma else "%Y-%m-%d %H:%M")
    if kind == "date":
        return value.strftime("%d.%m.%Y" if opts.decimal_comma else "%Y-%m-%d")
    return neutralize(str(value))


def write_csv(actor, flt, *, tzname, opts: Options, out, progress=None,
              every: int = BATCH) -> int:
    """UTF-8 with BOM (Excel recognises the encoding); `;` and decimal comma for German Excel."""
    text = io.TextIOWrapper(out, encoding="utf-8-sig", newline="", write_through=False)
    w = csv.writer(text, delimiter=";" if opts.semicolon else ",", lineterminator="\r\n")
    w.writerow([str(h) for _k, h, _t in COLUMNS])
    kinds = [kind for _k, _h, kind in COLUMNS]
    n = 0
    for row in rows(actor, flt, tzname=tzname):
        w.writerow([_csv_cell(v, k, opts) for v, k in zip(row, kinds, strict=False)])
        n += 1
        if progress is not None and n % every == 0:
            progress(n)
    text.flush()
    text.detach()
    return n


def write_xlsx(actor, flt, *, tzname, out, progress=None, every: int = BATCH) -> int:
    """One sheet, streamed (exports/xlsx.py): numbers as numbers, dates as dates, texts
    neutralised, the header bold, panes frozen at B2."""
    sheet = xlsx.SheetWriter(out, _("Leaks")[:31], len(COLUMNS))
    sheet.header([str(h) for _k, h, _t in COLUMNS])
    kinds = [kind for _k, _h, kind in COLUMNS]
    n = 0
    for row in rows(actor, flt, tzname=tzname):
        out_row = []
        for v, kind in zip(row, kinds, strict=False):
            if v is None or v == "":
                out_row.append(None)
            elif kind == "number":
                out_row.append(float(v))
            elif kind == "int":
                out_row.append(int(v) if isinstance(v, int) else neutralize(str(v)))
            elif kind in ("date", "datetime"):
                out_row.append(v)
            else:
                out_row.append(neutralize(str(v)))
        sheet.append(out_row)
        n += 1
        if progress is not None and n % every == 0:
            progress(n)
    sheet.close()
    return n


def write(actor, flt, *, fmt: str, tzname: str | None, opts: Options, out, progress=None,
          every: int = BATCH) -> int:
    """Write the export to the binary file `out`; `progress(n)` every `every` rows."""
    if fmt == "csv":
        return write_csv(actor, flt, tzname=tzname, opts=opts, out=out, progress=progress,
                         every=every)
    if fmt == "xlsx":
        return write_xlsx(actor, flt, tzname=tzname, out=out, progress=progress, every=every)
    raise ValueError(fmt)


def export(actor, flt, *, fmt: str, tzname: str | None, opts: Options | None = None):
    """(spooled file positioned at 0, row count). Writes an audit event (a download)."""
    authz.require(actor, "report")
    out = tempfile.SpooledTemporaryFile(max_size=32 * 1024 * 1024)
    if fmt == "csv":
        n = write_csv(actor, flt, tzname=tzname, opts=opts or Options(), out=out)
    elif fmt == "xlsx":
        n = write_xlsx(actor, flt, tzname=tzname, out=out)
    else:
        raise ValueError(fmt)
    writer.event(actor, "export", details={"format": fmt, "rows": n, "filter": flt.args()})
    out.seek(0)
    return out, n


def filename(org, fmt: str, today: dt.date | None = None) -> str:
    today = today or dt.date.today()
    return f"leaks-{org.slug}-{today.isoformat()}.{fmt}"
