"""Import stage 2, map: which column of the file holds which leak field (mapping.py suggests
and names the fields), checked before any row is read: every field at most once, the
required ones present. `Columns` then turns each raw row into {field: value}."""
from __future__ import annotations

import collections
from dataclasses import dataclass

from flask_babel import gettext as _

from ..leaks import service as leaks
from . import mapping
from .outcome import RowError
from .read import clean

REQUIRED = ("tag", "found_at")


@dataclass
class Columns:
    cmap: dict  # column index → field
    column_of: dict  # field → the file's column header

    @property
    def fields(self) -> set:
        return set(self.cmap.values())

    def values(self, raw_row: list) -> dict:
        """One raw row → {field: cleaned value} for the mapped columns."""
        return {f_name: clean(raw_row[i]) for i, f_name in self.cmap.items()}

    def location_field(self) -> str:
        """The field whose column a location error names."""
        return "location" if "location" in self.cmap.values() else next(
            f for f in ("area", "building", "site") if f in self.cmap.values())

    def loc_or(self, f_name: str) -> str:
        """"location" → the column that holds the location; other fields as they are."""
        if f_name != "location":
            return f_name
        return next((f for f in ("location", "area", "building", "site")
                     if f in self.column_of), "location")


def map_columns(headers: list[str], column_map: dict | None,
                errors: list) -> tuple[dict, Columns | None]:
    """(the column map as used, Columns) — Columns is None when the map is unusable; the
    reasons are added to `errors`. `column_map`: column index → field (None: suggested from
    the headers)."""
    cmap = {int(k): v for k, v in (column_map if column_map is not None
                                    else mapping.suggest(headers)).items()
            if v and v in mapping.FIELDS and 0 <= int(k) < len(headers)}
    fields_mapped = collections.Counter(cmap.values())
    for f_name, n in fields_mapped.items():
        if n > 1:
            errors.append(RowError(0, "", _("“%(f)s” is assigned to more than one column.",
                                            f=mapping.FIELDS[f_name])))
    missing = [f for f in REQUIRED if f not in fields_mapped]
    if not ({"location", "site", "building", "area"} & set(fields_mapped)):
        missing.append("location")
    # A rate, an estimate class, or the inputs a rate is calculated from (method column).
    if not ({"rate_lpm", "estimate_class", *leaks.RATE_INPUTS} & set(fields_mapped)):
        missing.append("rate_lpm")
    for f_name in missing:
        errors.append(RowError(0, "", _("No column is assigned to “%(f)s”.",
                                         f=mapping.FIELDS[f_name])))
    if errors:
        return cmap, None
    mapping.add_labels("component", leaks.COMPONENT_LABELS)
    mapping.add_labels("status", leaks.STATUS_LABELS)
    mapping.add_labels("priority", leaks.PRIORITY_LABELS)
    mapping.add_labels("method", leaks.METHOD_LABELS)
    mapping.add_labels("estimate_class", leaks.ESTIMATE_LABELS)
    return cmap, Columns(cmap, {f_name: headers[i] for i, f_name in cmap.items()})
