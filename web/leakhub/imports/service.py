"""Leak import: file → column mapping → validated rows → one all-or-nothing transaction.

`run_import` runs the pipeline, one module per stage, small data types between them
(outcome.py: Options, RowError, Conflict, Result, ParsedRow):

1. read (read.py): the file's format and table (formats.py); cells cleaned, dates parsed.
2. map (columns.py): which column holds which field (mapping.py), checked before any row.
3. validate (validate.py): every row with the form's own parser
   (`leaks.service.parse_leak_form`) and cross-field rules, so an import accepts exactly what
   the leak form accepts. Errors name the row (as the spreadsheet shows it: header = row 1)
   and the file's column. Locations are given as a code path "SITE/BLDG/AREA" (names work
   too), or in separate site / building / area columns (places.py); unknown locations are
   errors naming row and column unless "create missing locations" is chosen.
4. classify (classify.py): re-importing is idempotent. Leaks are matched by tag number:
   same tag and same content → skipped ("unchanged"); same tag, different content → a
   **conflict** that blocks the import and lists the differing columns, unless "update
   existing leaks" is chosen: then the mapped fields are updated through the audit writer
   (field-level diff; status moves along the workflow). Columns that are not mapped never
   change existing data. Rows outside the actor's grants are refused here, before writing.
5. write (write.py): new leaks in bulk (insert in chunks + one audit batch through
   `audit.writer.append`) so 10,000 rows take seconds, not minutes.
"""
from __future__ import annotations

from .. import authz
from . import formats, mapping
from .classify import TargetCheck, classify
from .columns import map_columns
from .outcome import Conflict, Options, Result, RowError, RowErrors
from .places import LocationIndex, site_warnings
from .read import file_number_locale, format_error, headers_of, read_table
from .validate import validate
from .write import write

__all__ = ["Conflict", "Options", "Result", "RowError", "file_number_locale",
           "format_error", "formats", "headers_of", "parse_mapping_form", "run_import"]


def run_import(actor, data: bytes, filename: str, *, column_map: dict | None = None,
               options: Options | None = None, dry_run: bool = False) -> Result:
    """Validate (and unless `dry_run` or anything failed, write) the file. `column_map`:
    column index → field (None: suggested from the headers)."""
    authz.require(actor, "create")
    options = options or Options()
    result = Result()
    # 1. read
    try:
        importer, table = read_table(data, filename)
    except formats.FormatError as exc:
        result.errors.append(format_error(exc))
        return result
    result.format, result.headers = importer.name, table.headers
    result.encoding, result.delimiter = table.encoding, table.delimiter
    # 2. map
    result.mapping, columns = map_columns(table.headers, column_map, result.errors)
    if columns is None:
        return result
    # 3. validate
    err = RowErrors(result.errors, columns.column_of)
    index = LocationIndex(actor)
    valid = validate(actor, table, columns, options, index, err)
    result.total, result.preview = valid.total, valid.preview
    result.missing_locations = [" / ".join(p) for p in valid.to_create.values()]
    result.warnings.extend(site_warnings(index, valid.missing_sites, options.create_locations))
    # 4. classify
    may = TargetCheck(actor, index, valid.to_create)
    classified = classify(actor, valid.rows, columns, options, may, err)
    result.unchanged, result.changed = classified.unchanged, classified.changed
    result.conflicts.extend(classified.conflicts)
    result.new = len(classified.new)
    if dry_run or not result.ok:
        return result
    # 5. write
    write(actor, classified, index, valid.to_create, may, filename, details={
        "file": filename[:200], "format": importer.name, "rows": result.total,
        "new": result.new, "updated": len(classified.updates), "unchanged": result.unchanged,
        "created_locations": result.missing_locations})
    result.committed = True
    return result


def parse_mapping_form(form, headers: list[str]) -> dict[int, str]:
    out = {}
    for i in range(len(headers)):
        value = form.get(f"col_{i}") or ""
        if value in mapping.FIELDS:
            out[i] = value
    return out
