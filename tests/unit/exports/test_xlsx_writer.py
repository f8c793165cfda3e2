"""The streaming XLSX writer (exports/xlsx.py, issue 19): whatever it writes, openpyxl reads
back as the same values and types (texts, numbers, dates, date-times), with the bold header,
the sheet name and panes frozen at B2 — what the openpyxl write-only writer produced."""
import datetime as dt
import io
from decimal import Decimal as D

from hypothesis import given, settings
from hypothesis import strategies as st
from openpyxl import load_workbook

from leakhub.exports import xlsx

LEGAL = st.characters(blacklist_categories=("Cs",),
                      blacklist_characters="\x00\x01\x02\x03\x04\x05\x06\x07\x08\x0b\x0c"
                                           "\x0e\x0f\x10\x11\x12\x13\x14\x15\x16\x17\x18"
                                           "\x19\x1a\x1b\x1c\x1d\x1e\x1f\ufffe\uffff\r")
VALUES = st.one_of(
    st.none(),
    st.text(LEGAL, max_size=40),
    st.integers(-10**9, 10**9),
    st.floats(allow_nan=False, allow_infinity=False, min_value=-1e12, max_value=1e12),
    st.datetimes(min_value=dt.datetime(1901, 1, 1), max_value=dt.datetime(2100, 1, 1))
    .map(lambda d: d.replace(microsecond=0)),
    st.dates(min_value=dt.date(1901, 1, 1), max_value=dt.date(2100, 1, 1)),
)


def write(rows, name="Leaks", header=("A", "B", "C")):
    out = io.BytesIO()
    sheet = xlsx.SheetWriter(out, name, len(header))
    sheet.header(list(header))
    for row in rows:
        sheet.append(row)
    sheet.close()
    out.seek(0)
    return load_workbook(out)


def expected(value):
    if value == "":
        return None
    if isinstance(value, dt.date) and not isinstance(value, dt.datetime):
        return dt.datetime.combine(value, dt.time())  # openpyxl reads a date as a datetime
    return value


@settings(deadline=None, max_examples=60)
@given(st.lists(st.lists(VALUES, min_size=3, max_size=3), max_size=8))
def test_values_read_back_as_written(rows):
    ws = write(rows).active
    got = list(ws.iter_rows(min_row=2, max_col=3, values_only=True))
    got += [(None, None, None)] * (len(rows) - len(got))  # trailing empty rows: no cells
    for want, row in zip(rows, got, strict=True):
        assert list(row) == [expected(v) for v in want]


def test_sheet_layout_and_types():
    wb = write([["x", D("12.50"), dt.datetime(2024, 3, 1, 8, 30)],
                ["  padded ", 3, dt.date(2024, 3, 2)],
                ["a & <b> \"c\"", None, ""]], name="Leckagen")
    ws = wb.active
    assert ws.title == "Leckagen" and ws.freeze_panes == "B2"
    assert [c.value for c in ws[1]] == ["A", "B", "C"] and all(c.font.b for c in ws[1])
    assert ws["B2"].value == 12.5 and ws["B2"].data_type == "n"
    assert ws["C2"].value == dt.datetime(2024, 3, 1, 8, 30) and ws["C2"].is_date
    assert ws["C3"].value == dt.datetime(2024, 3, 2) and ws["C3"].number_format == "yyyy-mm-dd"
    assert ws["A3"].value == "  padded " and ws["A4"].value == "a & <b> \"c\""
    assert ws["B4"].value is None and ws["C4"].value is None


def test_characters_xml_cannot_hold_are_dropped():
    ws = write([["bell\x07 and nul\x00", 1, None]]).active
    assert ws["A2"].value == "bell and nul"
