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

import json

from flask_babel import gettext as _

from .. import authz
from ..audit import writer
from ..core.db import utcnow
from ..core.validation import ValidationError
from . import formats, mapping
from .classify import TargetCheck, classify
from .columns import map_columns
from .models import ImportPreset
from .outcome import Conflict, Options, Result, RowError, RowErrors
from .places import LocationIndex, site_warnings
from .read import file_number_locale, format_error, headers_of, read_table
from .validate import validate
from .write import RowRefused, write

__all__ = ["BUILTIN_PRESETS", "Conflict", "Options", "Result", "RowError", "delete_preset",
           "file_number_locale", "format_error", "formats", "headers_of", "list_presets",
           "parse_mapping_form", "preset_column_map", "run_import", "save_preset"]


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
    try:
        write(actor, classified, index, valid.to_create, may, filename, details={
            "file": filename[:200], "format": importer.name, "rows": result.total,
            "new": result.new, "updated": len(classified.updates),
            "unchanged": result.unchanged, "created_locations": result.missing_locations})
    except RowRefused as exc:  # rolled back: nothing was written
        for f_name, msg in exc.errors.items():
            err(exc.rownum, f_name, msg)
        return result
    result.committed = True
    return result


def parse_mapping_form(form, headers: list[str]) -> dict[int, str]:
    out = {}
    for i in range(len(headers)):
        value = form.get(f"col_{i}") or ""
        if value in mapping.FIELDS:
            out[i] = value
    return out


# ---------------------------------------------------------------- presets (issue 18 part 6)

# Built-in presets for the export columns of detector software: {name: {header: field}}.
# Only columns confirmed from the vendor's public documentation belong here (docs/
# import-presets.md lists what was checked); none could be confirmed so far, so the
# organization's own saved presets are the only ones offered.
BUILTIN_PRESETS: dict[str, dict[str, str]] = {}
PRESET_NAME_MAX = 80


def list_presets(actor) -> list[ImportPreset]:
    """The organization's saved presets, by name (every member who may import sees them)."""
    return list(authz.scope(actor, ImportPreset, "view").order_by(ImportPreset.name))


def find_preset(actor, name: str) -> dict[str, str] | None:
    """The mapping {header: field} of the preset `name` (the organization's own first, then
    a built-in one), or None."""
    row = authz.scope(actor, ImportPreset, "view").where(ImportPreset.name == name).first()
    if row is not None:
        return json.loads(row.mapping)
    return BUILTIN_PRESETS.get(name)


def _preset_name(raw) -> str:
    name = " ".join(str(raw or "").split())
    if not name:
        raise ValidationError({"preset_name": _("Enter a name for the preset.")})
    if len(name) > PRESET_NAME_MAX:
        raise ValidationError({"preset_name": _("The preset name may have at most %(n)d "
                                                "characters.", n=PRESET_NAME_MAX)})
    return name


def save_preset(actor, name, headers: list[str], column_map: dict[int, str]) -> ImportPreset:
    """Save the mapping shown in the import review under `name` (replacing the preset of the
    same name). Every column is recorded, unmapped ones as "ignore", so applying the preset
    to a file with the same columns gives exactly this mapping."""
    authz.require(actor, "create")
    name = _preset_name(name)
    by_header: dict[str, str] = {}
    for i, header in enumerate(headers):
        if header and header not in by_header:
            by_header[header] = column_map.get(i) or "ignore"
    if not any(f != "ignore" for f in by_header.values()):
        raise ValidationError({"preset_name": _("Map at least one column before saving a "
                                                "preset.")})
    text = json.dumps(by_header, ensure_ascii=False, sort_keys=True)
    existing = authz.scope(actor, ImportPreset, "view").where(ImportPreset.name == name).first()
    if existing is not None:
        return writer.update(actor, existing, {"mapping": text}, permission="create")
    return writer.create(actor, ImportPreset, name=name, mapping=text,
                         created_by=actor.user if actor.kind == "user" else None,
                         created_at=utcnow())


def delete_preset(actor, preset_id) -> None:
    """Who saved it or an administrator deletes a preset."""
    preset = authz.get_or_404(actor, ImportPreset, preset_id)
    if preset.created_by_id != getattr(actor.user, "id", None):
        authz.require(actor, "manage")
    writer.delete(actor, preset, permission="create")


def preset_column_map(actor, name: str, headers: list[str]) -> dict[int, str]:
    """Column index → field for `headers` from the preset `name`: the preset's columns as
    saved, other columns as suggested. ValidationError naming the preset when it is unknown
    or names a mapped column the file does not have."""
    by_header = find_preset(actor, name)
    if by_header is None:
        raise ValidationError({"preset": _("There is no preset “%(name)s”.", name=name)})
    present = {mapping.norm(h) for h in headers}
    missing = [h for h, f in by_header.items()
               if f not in mapping.IGNORE and mapping.norm(h) not in present]
    if missing:
        raise ValidationError({"preset": _(
            "The file has no column %(cols)s, which the preset “%(name)s” maps.",
            cols=", ".join(f"“{h}”" for h in missing), name=name)})
    usable = {h: f for h, f in by_header.items() if mapping.norm(h) in present}
    try:
        return mapping.with_overrides(headers, usable)
    except (ValueError, KeyError) as exc:
        raise ValidationError({"preset": _("The preset “%(name)s” cannot be used: %(e)s",
                                           name=name, e=exc.args[0] if exc.args else exc)}
                              ) from None
