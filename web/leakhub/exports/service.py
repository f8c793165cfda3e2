"""Leak list exports (CSV, XLSX) with the list's own filter (`leaks.service.parse_filter` /
`filtered_query`), so an export always holds exactly what the list shows.

- Numbers are numbers (XLSX numeric cells; CSV plain digits with "." or, for German Excel,
  ","), ranges in separate columns (rate low / high: "1.5–3.2" never turns into a date).
- Derived columns: kWh/a, cost/a, CO2 kg/a with the settings valid at each leak's site and date.
- Text cells that a spreadsheet would run as a formula (starting with = + - @ tab CR) get a
  leading apostrophe (CSV and XLSX). The importer removes it again.
- The headers are the importer's English field labels: an export re-imports without mapping.
"""
from __future__ import annotations

import csv
import datetime as dt
import io
import tempfile
from dataclasses import dataclass
from decimal import Decimal

from flask_babel import gettext as _

from .. import authz
from ..audit import writer
from ..core.validation import utc_to_local
from ..leaks import calc
from ..leaks import service as leaks
from ..leaks.models import Leak
from ..locations.models import Location
from ..locations.settings import SettingsResolver
from ..surveys.models import Survey
from ..imports.mapping import EXPORT_HEADERS

FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")
MAX_ROWS = 1_000_000

# (key, header, kind) — kind: text | int | number | datetime | date
COLUMNS = [
    ("tag", EXPORT_HEADERS["tag"], "text"),
    ("location", EXPORT_HEADERS["location"], "text"),
    ("location_name", "Location name", "text"),
    ("site", "Site code", "text"),
    ("survey", EXPORT_HEADERS["survey"], "text"),
    ("found_at", EXPORT_HEADERS["found_at"], "datetime"),
    ("found_by", EXPORT_HEADERS["found_by"], "text"),
    ("device_serial", EXPORT_HEADERS["device_serial"], "text"),
    ("status", EXPORT_HEADERS["status"], "text"),
    ("priority", EXPORT_HEADERS["priority"], "int"),
    ("component", EXPORT_HEADERS["component"], "text"),
    ("method", EXPORT_HEADERS["method"], "text"),
    ("estimate_class", EXPORT_HEADERS["estimate_class"], "text"),
    ("rate_lpm", EXPORT_HEADERS["rate_lpm"], "number"),
    ("rate_low_lpm", EXPORT_HEADERS["rate_low_lpm"], "number"),
    ("rate_high_lpm", EXPORT_HEADERS["rate_high_lpm"], "number"),
    ("pressure_bar", EXPORT_HEADERS["pressure_bar"], "number"),
    ("gas", EXPORT_HEADERS["gas"], "text"),
    ("description", EXPORT_HEADERS["description"], "text"),
    ("recommended_action", EXPORT_HEADERS["recommended_action"], "text"),
    ("spare_part", EXPORT_HEADERS["spare_part"], "text"),
    ("due_date", EXPORT_HEADERS["due_date"], "date"),
    ("repaired_at", EXPORT_HEADERS["repaired_at"], "date"),
    ("repaired_by", EXPORT_HEADERS["repaired_by"], "text"),
    ("repair_cost", EXPORT_HEADERS["repair_cost"], "number"),
    ("verified_at", "Verified at", "date"),
    ("kwh_year", "Energy kWh per year", "number"),
    ("cost_year", "Cost per year", "number"),
    ("currency", "Currency", "text"),
    ("co2_kg_year", "CO2 kg per year", "number"),
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


def rows(actor, flt: leaks.LeakFilter, *, tzname: str | None):
    """Export rows as typed values (in COLUMNS order), in the list's sort order."""
    authz.require(actor, "report")
    paths = _Paths(actor)
    surveys = dict(authz.scope(actor, Survey, "view", Survey.select(Survey.id, Survey.name))
                   .tuples())
    resolver = SettingsResolver(actor)
    desc = flt.sort.startswith("-")
    order = [c.desc() if desc else c.asc() for c in leaks.SORTS[flt.sort.lstrip("-")]]
    query = leaks.filtered_query(actor, flt, tzname=tzname).order_by(*order).limit(MAX_ROWS)
    status_labels = {k: str(v) for k, v in leaks.STATUS_LABELS.items()}
    component_labels = {k: str(v) for k, v in leaks.COMPONENT_LABELS.items()}
    for lk in query.iterator():
        params = resolver.at(lk.location.site_id, lk.found_at)
        f = calc.figures(lk.rate_lpm, params)
        yield [
            lk.tag, paths.path(lk.location_id), lk.location.name, paths.site_code(lk.location_id),
            surveys.get(lk.survey_id, ""), utc_to_local(lk.found_at, tzname), lk.found_by,
            lk.device_serial, status_labels.get(lk.status, lk.status), lk.priority,
            component_labels.get(lk.component, lk.component), lk.method,
            lk.estimate_class or "", lk.rate_lpm, lk.rate_low_lpm, lk.rate_high_lpm,
            lk.pressure_bar, lk.gas, lk.description, lk.recommended_action, lk.spare_part,
            lk.due_date, lk.repaired_at, lk.repaired_by, lk.repair_cost, lk.verified_at,
            f.kwh_year.quantize(Q1), f.cost_year.quantize(Q2), f.currency,
            f.co2_kg_year.quantize(Q1),
        ]


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


def write_csv(actor, flt, *, tzname, opts: Options, out) -> int:
    """UTF-8 with BOM (Excel recognises the encoding); `;` and decimal comma for German Excel."""
    text = io.TextIOWrapper(out, encoding="utf-8-sig", newline="", write_through=False)
    w = csv.writer(text, delimiter=";" if opts.semicolon else ",", lineterminator="\r\n")
    w.writerow([h for _k, h, _t in COLUMNS])
    kinds = [kind for _k, _h, kind in COLUMNS]
    n = 0
    for row in rows(actor, flt, tzname=tzname):
        w.writerow([_csv_cell(v, k, opts) for v, k in zip(row, kinds)])
        n += 1
    text.flush()
    text.detach()
    return n


def write_xlsx(actor, flt, *, tzname, out) -> int:
    from openpyxl import Workbook
    from openpyxl.cell import WriteOnlyCell
    from openpyxl.styles import Font

    wb = Workbook(write_only=True)
    ws = wb.create_sheet(_("Leaks")[:31])
    bold = Font(bold=True)
    header = []
    for _k, h, _t in COLUMNS:
        c = WriteOnlyCell(ws, value=h)
        c.font = bold
        header.append(c)
    ws.append(header)
    ws.freeze_panes = "B2"
    kinds = [kind for _k, _h, kind in COLUMNS]
    n = 0
    for row in rows(actor, flt, tzname=tzname):
        out_row = []
        for v, kind in zip(row, kinds):
            if v is None or v == "":
                out_row.append(None)
            elif kind == "number":
                out_row.append(float(v))
            elif kind == "int":
                out_row.append(int(v))
            elif kind in ("date", "datetime"):
                out_row.append(v)
            else:
                out_row.append(neutralize(str(v)))
        ws.append(out_row)
        n += 1
    wb.save(out)
    return n


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
