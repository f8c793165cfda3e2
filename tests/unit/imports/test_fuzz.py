"""Fuzzing the importers (issue 12): random CSV bytes, damaged XLSX bytes and valid workbooks
with random cells go through read → map → validate → classify (and, where valid, write). Each
gives a result — imported, or errors naming row/column — never an unhandled exception.
Bounded: a few hundred examples, well under a minute."""
from __future__ import annotations

import datetime as dt
import io

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from openpyxl import Workbook

from leakhub.imports import mapping, service

FUZZ = settings(max_examples=60, deadline=None, database=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture,
                                       HealthCheck.too_slow, HealthCheck.data_too_large])

# Header texts the mapping knows (English and German), plus noise.
KNOWN = sorted({h for f in mapping.SYNONYMS for h in [mapping.EXPORT_HEADERS[f]]}
               | {"Nr.", "Standort", "Gebäude", "Bereich", "Datum", "Leckrate l/min", "Druck",
                  "Bauteil", "Bemerkung", "Status", "Priorität", "Werk", "Halle", "Messort"})
headers = st.lists(st.one_of(st.sampled_from(KNOWN), st.text(max_size=12)), min_size=1,
                   max_size=8)
cell_text = st.one_of(
    st.text(max_size=30), st.sampled_from(["", "BER/H1/A1", "BER", "Werk Berlin", "12,5",
                                           "1.234,5", "-3", "1e400", "NaN", "31.02.2024",
                                           "2024-03-05 10:30", "offen", "repariert", "Ventil",
                                           "'=1+2", "=HYPERLINK(\"x\")", "0100", "9" * 30]),
    st.integers(-10**20, 10**20).map(str), st.floats(allow_nan=True).map(str))


def _check(result):
    assert isinstance(result, service.Result)
    for e in result.errors:
        assert str(e).strip()
    if result.errors or result.conflicts:
        assert not result.committed


@FUZZ
@given(data=st.binary(max_size=3000), name=st.sampled_from(["f.csv", "f.xlsx", "f", "f.txt"]))
def test_random_bytes(actor, tree, data, name):
    _check(service.run_import(actor, data, name, dry_run=True))


@FUZZ
@given(head=headers, rows=st.lists(st.lists(cell_text, max_size=9), max_size=8),
       delimiter=st.sampled_from([";", ",", "\t", "|"]), encoding=st.sampled_from(
           ["utf-8", "utf-8-sig", "cp1252"]), create=st.booleans(), update=st.booleans(),
       commit=st.booleans(), quote=st.booleans())
def test_random_csv(actor, tree, head, rows, delimiter, encoding, create, update, commit, quote):
    def line(cells):
        if quote:
            cells = ['"' + str(c).replace('"', '""') + '"' for c in cells]
        return delimiter.join(str(c) for c in cells)
    text = "\n".join([line(head)] + [line(r) for r in rows]) + "\n"
    data = text.encode(encoding, errors="replace")
    _check(service.run_import(actor, data, "f.csv", dry_run=not commit,
                              options=service.Options(create_locations=create,
                                                      update_existing=update)))


def _workbook(rows) -> bytes:
    wb = Workbook()
    ws = wb.active
    for r in rows:
        ws.append(r)
    out = io.BytesIO()
    wb.save(out)
    return out.getvalue()


VALID = _workbook([["Nr.", "Standort", "Datum", "Leckrate l/min", "Bauteil"],
                   [1, "BER/H1/A1", dt.datetime(2024, 5, 2, 8, 0), 2.5, "Ventil"]])


@FUZZ
@given(flips=st.lists(st.tuples(st.integers(0, len(VALID) - 1), st.integers(0, 255)),
                      min_size=1, max_size=20),
       cut=st.one_of(st.none(), st.integers(0, len(VALID))))
def test_damaged_xlsx(actor, tree, flips, cut):
    data = bytearray(VALID)
    for pos, value in flips:
        data[pos] = value
    if cut is not None:
        data = data[:cut]
    _check(service.run_import(actor, bytes(data), "f.xlsx", dry_run=True))


xlsx_cell = st.one_of(
    st.none(), cell_text.map(lambda s: "".join(c for c in s if c.isprintable())),
    st.integers(-10**15, 10**15), st.floats(allow_nan=False, allow_infinity=False),
    st.booleans(), st.datetimes(min_value=dt.datetime(1900, 3, 1),
                                max_value=dt.datetime(9999, 1, 1)),
    st.dates(min_value=dt.date(1900, 3, 1)), st.times(),
    st.timedeltas(min_value=dt.timedelta(0), max_value=dt.timedelta(days=3000)))


@FUZZ
@given(head=headers.map(lambda hs: [h or "x" for h in hs]),
       rows=st.lists(st.lists(xlsx_cell, max_size=9), max_size=6), commit=st.booleans(),
       create=st.booleans())
def test_valid_xlsx_with_random_cells(actor, tree, head, rows, commit, create):
    head = ["".join(c for c in h if c.isprintable()) or "x" for h in head]
    try:
        data = _workbook([head] + rows)
    except (ValueError, TypeError):  # openpyxl refuses the cell (not what we test)
        return
    _check(service.run_import(actor, data, "f.xlsx", dry_run=not commit,
                              options=service.Options(create_locations=create)))
