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
import zipfile
from dataclasses import dataclass
from typing import BinaryIO, Iterator

REGISTRY: list[type["Importer"]] = []
MAX_COLUMNS = 200


class FormatError(Exception):
    """The file cannot be read at all (not a CSV/XLSX, broken, empty)."""


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
            yield dict(zip(t.headers, row))


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
            raise FormatError(f"not a readable CSV file ({exc})") from None
        width = len(headers)

        def rows():
            try:
                for row in reader:
                    row = row[:width] + [""] * (width - len(row))
                    yield row
            except csv.Error as exc:
                raise FormatError(f"line {reader.line_num}: {exc}") from None
        return Table(headers, rows(), encoding=encoding, delimiter=delimiter)


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
        try:
            wb = openpyxl.load_workbook(io.BytesIO(data), read_only=True, data_only=True)
        except (zipfile.BadZipFile, KeyError, OSError, ValueError) as exc:
            raise FormatError(f"not a readable XLSX workbook ({type(exc).__name__})") from None
        ws = wb.worksheets[0]
        it = ws.iter_rows(values_only=True)
        try:
            first = next(it)
        except StopIteration:
            raise FormatError("the worksheet is empty") from None
        # Trailing empty header cells are not columns.
        first = list(first)
        while first and (first[-1] is None or str(first[-1]).strip() == ""):
            first.pop()
        if not first:
            raise FormatError("the first row (headers) is empty")
        headers = _headers(first)
        width = len(headers)

        def rows():
            for row in it:
                row = list(row[:width]) + [None] * (width - len(row))
                yield [v.isoformat() if isinstance(v, dt.time) else v for v in row]
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
