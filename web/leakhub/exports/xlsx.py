"""A streaming XLSX writer for one sheet of plain values (the leak export).

openpyxl's write-only mode spent ~10 µs per cell building an element per cell (100,000
leaks × 30 columns: 36 s of CPU, issue 19). This writes the sheet's XML text directly into
the ZIP entry, row by row (memory bounded: one row at a time, the deflate stream and the
ZIP's directory), and the few fixed parts around it. The cells are what openpyxl wrote:
numbers as numbers, texts as inline strings, dates and date-times as Excel serial numbers
with a date format (openpyxl's own conversion), the header bold, panes frozen at B2.
"""
from __future__ import annotations

import datetime as dt
import re
import zipfile
from xml.sax.saxutils import escape

from openpyxl.utils import get_column_letter
from openpyxl.utils.datetime import to_excel

# XML 1.0 forbids these characters; openpyxl refused them (IllegalCharacterError).
_ILLEGAL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")
_ESCAPES = {'"': "&quot;"}

# Cell styles (cellXfs): 0 plain, 1 bold (header), 2 date-time, 3 date.
BOLD, DATETIME, DATE = 1, 2, 3

_CONTENT_TYPES = (
    '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
    '<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
    '<Default Extension="rels" ContentType="application/vnd.openxmlformats-package.'
    'relationships+xml"/><Default Extension="xml" ContentType="application/xml"/>'
    '<Override PartName="/xl/workbook.xml" ContentType="application/vnd.openxmlformats-'
    'officedocument.spreadsheetml.sheet.main+xml"/>'
    '<Override PartName="/xl/worksheets/sheet1.xml" ContentType="application/vnd.'
    'openxmlformats-officedocument.spreadsheetml.worksheet+xml"/>'
    '<Override PartName="/xl/styles.xml" ContentType="application/vnd.openxmlformats-'
    'officedocument.spreadsheetml.styles+xml"/>'
    '<Override PartName="/docProps/core.xml" ContentType="application/vnd.openxmlformats-'
    'package.core-properties+xml"/>'
    '<Override PartName="/docProps/app.xml" ContentType="application/vnd.openxmlformats-'
    'officedocument.extended-properties+xml"/></Types>')
_RELS = (
    '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
    '<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">'
    '<Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/'
    'relationships/officeDocument" Target="xl/workbook.xml"/>'
    '<Relationship Id="rId2" Type="http://schemas.openxmlformats.org/package/2006/'
    'relationships/metadata/core-properties" Target="docProps/core.xml"/>'
    '<Relationship Id="rId3" Type="http://schemas.openxmlformats.org/officeDocument/2006/'
    'relationships/extended-properties" Target="docProps/app.xml"/></Relationships>')
_APP = (
    '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
    '<Properties xmlns="http://schemas.openxmlformats.org/officeDocument/2006/extended-'
    'properties"><Application>Leakhub</Application></Properties>')
_CORE = (
    '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
    '<cp:coreProperties xmlns:cp="http://schemas.openxmlformats.org/package/2006/metadata/'
    'core-properties" xmlns:dc="http://purl.org/dc/elements/1.1/" xmlns:dcterms="http://'
    'purl.org/dc/terms/" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">'
    '<dc:creator>Leakhub</dc:creator><dcterms:created xsi:type="dcterms:W3CDTF">{now}'
    '</dcterms:created></cp:coreProperties>')
_WORKBOOK_RELS = (
    '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
    '<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">'
    '<Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/'
    'relationships/worksheet" Target="worksheets/sheet1.xml"/>'
    '<Relationship Id="rId2" Type="http://schemas.openxmlformats.org/officeDocument/2006/'
    'relationships/styles" Target="styles.xml"/></Relationships>')
_WORKBOOK = (
    '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
    '<workbook xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main" '
    'xmlns:r="http://schemas.openxmlformats.org/officeDocument/2006/relationships">'
    '<bookViews><workbookView activeTab="0"/></bookViews>'
    '<sheets><sheet name="{name}" sheetId="1" r:id="rId1"/></sheets></workbook>')
_STYLES = (
    '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
    '<styleSheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main">'
    '<numFmts count="2"><numFmt numFmtId="164" formatCode="yyyy-mm-dd h:mm:ss"/>'
    '<numFmt numFmtId="165" formatCode="yyyy-mm-dd"/></numFmts>'
    '<fonts count="2"><font><sz val="11"/><name val="Calibri"/><family val="2"/></font>'
    '<font><b val="1"/><sz val="11"/><name val="Calibri"/><family val="2"/></font></fonts>'
    '<fills count="2"><fill><patternFill/></fill><fill><patternFill patternType="gray125"/>'
    '</fill></fills><borders count="1"><border><left/><right/><top/><bottom/><diagonal/>'
    '</border></borders><cellStyleXfs count="1"><xf numFmtId="0" fontId="0" fillId="0" '
    'borderId="0"/></cellStyleXfs><cellXfs count="4">'
    '<xf numFmtId="0" fontId="0" fillId="0" borderId="0" xfId="0"/>'
    '<xf numFmtId="0" fontId="1" fillId="0" borderId="0" xfId="0" applyFont="1"/>'
    '<xf numFmtId="164" fontId="0" fillId="0" borderId="0" xfId="0" applyNumberFormat="1"/>'
    '<xf numFmtId="165" fontId="0" fillId="0" borderId="0" xfId="0" applyNumberFormat="1"/>'
    '</cellXfs><cellStyles count="1"><cellStyle name="Normal" xfId="0" builtinId="0"/>'
    '</cellStyles></styleSheet>')
_SHEET_START = (
    '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
    '<worksheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main">'
    '<sheetViews><sheetView workbookViewId="0" tabSelected="1"><pane xSplit="1" ySplit="1" '
    'topLeftCell="B2" activePane="bottomRight" state="frozen"/>'
    '<selection pane="topRight"/><selection pane="bottomLeft"/>'
    '<selection pane="bottomRight" activeCell="B2" sqref="B2"/></sheetView></sheetViews>'
    '<sheetFormatPr defaultRowHeight="15"/><sheetData>')
_SHEET_END = '</sheetData></worksheet>'


def text(value: str) -> str:
    """XML text of a cell's string: escaped, characters XML cannot hold removed."""
    if _ILLEGAL.search(value):
        value = _ILLEGAL.sub("", value)
    return escape(value, _ESCAPES)


class SheetWriter:
    """Rows of values → one worksheet, by the value's type: str a text, int / float /
    Decimal a number, datetime / date a date-time / date; None and "" an empty cell."""

    def __init__(self, out, sheet_name: str, columns: int):
        self.zf = zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=6)
        now = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        name = escape(_ILLEGAL.sub("", sheet_name), _ESCAPES)
        for part, body in (("[Content_Types].xml", _CONTENT_TYPES), ("_rels/.rels", _RELS),
                           ("docProps/app.xml", _APP),
                           ("docProps/core.xml", _CORE.format(now=now)),
                           ("xl/workbook.xml", _WORKBOOK.format(name=name)),
                           ("xl/_rels/workbook.xml.rels", _WORKBOOK_RELS),
                           ("xl/styles.xml", _STYLES)):
            self.zf.writestr(part, body)
        self.letters = [get_column_letter(i + 1) for i in range(columns)]
        self.n = 0
        self._sheet = self.zf.open("xl/worksheets/sheet1.xml", "w", force_zip64=True)
        self._buffer: list[str] = [_SHEET_START]

    def header(self, labels: list[str]) -> None:
        self.n += 1
        cells = "".join(f'<c r="{col}1" s="{BOLD}" t="inlineStr"><is><t>{text(str(v))}</t>'
                        f'</is></c>' for col, v in zip(self.letters, labels, strict=False))
        self._buffer.append(f'<row r="1">{cells}</row>')

    def append(self, values) -> None:
        self.n += 1
        r = str(self.n)
        parts = [f'<row r="{r}">']
        add = parts.append
        for col, v in zip(self.letters, values, strict=False):
            if v is None or v == "":
                continue
            t = type(v)
            if t is str:
                s = text(v)
                space = ' xml:space="preserve"' if s != s.strip() else ""
                add(f'<c r="{col}{r}" t="inlineStr"><is><t{space}>{s}</t></is></c>')
            elif t is int:
                add(f'<c r="{col}{r}" t="n"><v>{v}</v></c>')
            elif t is dt.datetime:
                add(f'<c r="{col}{r}" s="{DATETIME}" t="n"><v>{to_excel(v)!r}</v></c>')
            elif t is dt.date:
                add(f'<c r="{col}{r}" s="{DATE}" t="n"><v>{to_excel(v)!r}</v></c>')
            else:  # float, Decimal
                add(f'<c r="{col}{r}" t="n"><v>{float(v)!r}</v></c>')
        add("</row>")
        self._buffer.append("".join(parts))
        if len(self._buffer) >= 500:
            self._flush()

    def _flush(self) -> None:
        self._sheet.write("".join(self._buffer).encode("utf-8"))
        self._buffer = []

    def close(self) -> None:
        self._buffer.append(_SHEET_END)
        self._flush()
        self._sheet.close()
        self.zf.close()
