"""Import stage 1, read: the file → its format and table (formats.py), each raw cell → a value
for the validators (text stripped, the export's formula guard removed, common dates parsed),
and how the file's text numbers are read."""
from __future__ import annotations

import datetime as dt
import re
from decimal import Decimal

from flask_babel import gettext as _

from ..core.i18n import select_locale
from . import formats
from .outcome import RowError

FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")


def format_error(exc: formats.FormatError) -> RowError:
    """A reader's error as a row error: which row, which column, which limit."""
    if isinstance(exc, formats.FieldTooLong):
        return RowError(exc.row, exc.column, _(
            "A cell is longer than %(n)s characters (64 KiB), the most an import reads per "
            "cell.", n=f"{exc.limit:,}"))
    return RowError(0, "", _("The file cannot be read: %(e)s", e=str(exc)))


def guarded(rows, errors: list):
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


def clean(raw):
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


def fast_datetime(value, with_time: bool):
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
