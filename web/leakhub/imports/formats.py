"""Import formats: a small registry of Importer classes.

An importer says whether it can read a file (`detect(filename, head_bytes)`) and turns it into
rows (`rows(file)` → dicts header → raw value; `table(file)` → headers and row lists). Values
stay raw (text from CSV; numbers, dates or text from XLSX): the import service validates them
with the same helpers as the forms. Device-specific formats (CS Instruments, SONOTEC, ...)
register here later; the generic CSV and XLSX readers come first.
"""
from __future__ import annotations

import csv
import datetime as dt
import io
from collections.abc import Iterator
from dataclasses import dataclass
from typing import BinaryIO

from ..core.errors import Invalid

REGISTRY: list[type[Importer]] = []
MAX_COLUMNS = 200
# The longest cell an import reads (characters). Far above any leak field (descriptions hold
# 5,000 characters) and below the csv module's own limit (131,072), so every reader gives the
# same clear error instead of the csv module's.
MAX_FIELD_CHARS = 65_536


class FormatError(Invalid):
    """The file cannot be read at all (not a CSV/XLSX, broken, empty)."""


class FieldTooLong(FormatError):
    """A cell longer than MAX_FIELD_CHARS. `row`: the spreadsheet row (header = 1); `column`:
    the column header ("" when the reader could not tell)."""

    def __init__(self, row: int, column: str = "", limit: int | None = None):
        limit = MAX_FIELD_CHARS if limit is None else limit
        super().__init__(f"row {row}: a cell is longer than {limit:,} characters "
                         f"(the limit per cell)")
        self.row, self.column, self.limit = row, column, limit


def _check_lengths(row: list, rownum: int, headers: list[str] | None) -> None:
    for i, value in enumerate(row):
        if isinstance(value, str) and len(value) > MAX_FIELD_CHARS:
            column = headers[i] if headers is not None and i < len(headers) else ""
            raise FieldTooLong(rownum, column)


def register(cls):
    REGISTRY.append(cls)
    return cls


@dataclass
class Table:
    headers: list[str]
    rows: Iterator[list]  # each row: list of raw values, same length as headers
    encoding: str = ""
    delimiter: str = ""


def _as_bytes(file) -> bytes:
    if isinstance(file, (bytes, bytearray)):
        return bytes(file)
    return file.read()


def _headers(raw: list) -> list[str]:
    _check_lengths(raw, 1, None)
    out = []
    for i, h in enumerate(raw):
        text = "" if h is None else str(h).strip().lstrip("\ufeff")
        out.append(text or f"column {i + 1}")
    if len(out) > MAX_COLUMNS:
        raise FormatError(f"more than {MAX_COLUMNS} columns")
    return out


class Importer:
    name = ""
    label = ""

    @classmethod
    def detect(cls, filename: str, head: bytes) -> bool:
        raise NotImplementedError

    def table(self, file: BinaryIO | bytes) -> Table:
        raise NotImplementedError

    def rows(self, file: BinaryIO | bytes) -> Iterator[dict]:
        t = self.table(file)
        for row in t.rows:
            yield dict(zip(t.headers, row, strict=False))


def decode_text(data: bytes) -> tuple[str, str]:
    """UTF-8 (with or without BOM) first; German Excel's Windows-1252 as the fallback."""
    try:
        return data.decode("utf-8-sig"), "utf-8"
    except UnicodeDecodeError:
        return data.decode("cp1252", errors="replace"), "cp1252"


def sniff_delimiter(text: str) -> str:
    sample = text[:20000]
    try:
        return csv.Sniffer().sniff(sample, delimiters=";,\t|").delimiter
    except csv.Error:
        first = sample.splitlines()[0] if sample else ""
        counts = {d: first.count(d) for d in ";,\t|"}
        best = max(counts, key=counts.get)
        return best if counts[best] else ","


@register
class CsvImporter(Importer):
    """Generic CSV: encoding (UTF-8 / BOM / Windows-1252) and delimiter (; , tab |) detected."""

    name = "csv"
    label = "CSV"

    @classmethod
    def detect(cls, filename: str, head: bytes) -> bool:
        if head.startswith(b"PK\x03\x04") or b"\0" in head[:4096]:
            return False
        return filename.lower().endswith((".csv", ".txt", ".tsv")) or bool(head.strip())

    def table(self, file) -> Table:
        text, encoding = decode_text(_as_bytes(file))
        if not text.strip():
            raise FormatError("the file is empty")
        delimiter = sniff_delimiter(text)
        reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
        try:
            headers = _headers(next(reader))
        except StopIteration:
            raise FormatError("the file is empty") from None
        except csv.Error as exc:
            if _too_long(exc):
                raise FieldTooLong(1) from None
            raise FormatError(f"not a readable CSV file ({exc})") from None
        width = len(headers)

        def rows():
            rownum = 1  # the spreadsheet row of the record being read (header = 1)
            try:
                for row in reader:
                    rownum += 1
                    row = row[:width] + [""] * (width - len(row))
                    _check_lengths(row, rownum, headers)
                    yield row
            except csv.Error as exc:
                if _too_long(exc):
                    raise FieldTooLong(rownum + 1) from None
                raise FormatError(f"row {rownum + 1} (line {reader.line_num}): {exc}") from None
        return Table(headers, rows(), encoding=encoding, delimiter=delimiter)


def _too_long(exc: csv.Error) -> bool:
    """The csv module's own cell limit ("field larger than field limit (131072)")."""
    return "field limit" in str(exc)


@register
class XlsxImporter(Importer):
    """Excel 2007+ workbooks: the first worksheet, first row = headers, cached values of
    formulas (never evaluated)."""

    name = "xlsx"
    label = "Excel (XLSX)"

    @classmethod
    def detect(cls, filename: str, head: bytes) -> bool:
        return head.startswith(b"PK\x03\x04") and (
            filename.lower().endswith((".xlsx", ".xlsm")) or b"xl/" in head or
            b"[Content_Types].xml" in head)

    def table(self, file) -> Table:
        import openpyxl

        data = _as_bytes(file)
        # A damaged or hostile workbook can fail anywhere inside openpyxl (zip, XML, styles,
        # cell types) with many exception types: each one is "not readable", never a crash.
        try:
            wb = openpyxl.load_workbook(io.BytesIO(data), read_only=True, data_only=True)
            if not wb.worksheets:
                raise FormatError("the workbook has no worksheet")
            ws = wb.worksheets[0]
            it = ws.iter_rows(values_only=True)
            first = next(it)
        except FormatError:
            raise
        except StopIteration:
            raise FormatError("the worksheet is empty") from None
        except Exception as exc:  # noqa: BLE001 - see above
            raise FormatError(f"not a readable XLSX workbook ({type(exc).__name__})") from None
        # Trailing empty header cells are not columns.
        first = list(first)
        while first and (first[-1] is None or str(first[-1]).strip() == ""):
            first.pop()
        if not first:
            raise FormatError("the first row (headers) is empty")
        headers = _headers(first)
        width = len(headers)

        def rows():
            rownum = 1
            try:
                for row in it:
                    rownum += 1
                    row = list(row[:width]) + [None] * (width - len(row))
                    _check_lengths(row, rownum, headers)
                    yield [v.isoformat() if isinstance(v, dt.time) else v for v in row]
            except FormatError:
                raise
            except Exception as exc:  # noqa: BLE001 - a damaged sheet, as above
                raise FormatError(f"row {rownum + 1}: not readable ({type(exc).__name__})") \
                    from None
            finally:
                wb.close()
        return Table(headers, rows())


def importer_for(filename: str, head: bytes) -> Importer:
    for cls in REGISTRY:
        if cls.detect(filename or "", head):
            return cls()
    raise FormatError("not a CSV or XLSX file")


def by_name(name: str) -> Importer:
    for cls in REGISTRY:
        if cls.name == name:
            return cls()
    raise FormatError(f"unknown format {name!r}")
