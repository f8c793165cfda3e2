"""Issue 12, item 4: bad input gets a clear message (which row, which limit) and a 4xx, never a
500 or a traceback — CSV cells over the limit (web and leakctl), a non-ASCII CSRF token, a
decompression bomb, and leakctl's last line of defence."""
from __future__ import annotations

import io
import struct
import zlib

import pytest
from openpyxl import Workbook

from leakhub import cli
from leakhub.core.config import set_config
from leakhub.imports import formats, service
from leakhub.leaks.models import Leak
from leakhub.photos import service as photos

from support.reporting_data import BASE

LIMIT = formats.MAX_FIELD_CHARS
HEAD = "Tag;Standort;Datum;Leckrate l/min;Bemerkung\n"


def csv_with(cell: str, at_row: int = 3) -> bytes:
    lines = [HEAD]
    for row in range(2, 6):
        text = cell if row == at_row else "ok"
        lines.append(f"{row};BER/H1/A1;01.02.2024;5;{text}\n")
    return "".join(lines).encode()


@pytest.mark.parametrize("size", [LIMIT + 1, 200_000])  # ours, and over the csv module's
def test_csv_cell_over_the_limit_names_row_and_limit(actor, tree, size):
    res = service.run_import(actor, csv_with("x" * size), "l.csv")
    assert not res.committed and Leak.select().count() == 0
    [error] = res.errors
    assert error.row == 3
    text = str(error)
    assert text.startswith("Row 3") and "65,536 characters" in text and "64 KiB" in text
    if size == LIMIT + 1:  # our own check also knows the column
        assert error.column == "Bemerkung"
    # A cell of exactly the limit is read (and then validated like any description).
    res = service.run_import(actor, csv_with("x" * LIMIT), "l.csv", dry_run=True)
    assert all("64 KiB" not in str(e) for e in res.errors)


def test_csv_header_over_the_limit(actor, tree):
    data = ("Tag;" + "H" * 200_000 + "\n1;2\n").encode()
    res = service.run_import(actor, data, "l.csv")
    assert [e.row for e in res.errors] == [1] and "65,536" in str(res.errors[0])


def test_xlsx_cell_over_the_limit(actor, tree, monkeypatch):
    # Excel (and openpyxl) store at most 32,767 characters per cell: the check is the same
    # code, shown here with a lower limit.
    monkeypatch.setattr(formats, "MAX_FIELD_CHARS", 20_000)
    wb = Workbook()
    ws = wb.active
    ws.append(["Tag", "Standort", "Datum", "Leckrate l/min", "Bemerkung"])
    ws.append([1, "BER/H1/A1", "01.02.2024", 5, "ok"])
    ws.append([2, "BER/H1/A1", "01.02.2024", 5, "y" * 30_000])
    out = io.BytesIO()
    wb.save(out)
    res = service.run_import(actor, out.getvalue(), "l.xlsx")
    [error] = res.errors
    assert (error.row, error.column) == (3, "Bemerkung") and "20,000 characters" in str(error)


def test_web_import_with_a_cell_over_the_limit(actor, tree, login):
    c = login(actor.user)
    resp = c.post("/leaks/import", data={"csrf_token": "t", "file": (
        io.BytesIO(csv_with("x" * 200_000)), "big.csv")},
        content_type="multipart/form-data", base_url=BASE)
    assert resp.status_code == 302
    url = resp.headers["Location"]
    page = c.get(url, base_url=BASE)
    assert page.status_code == 200 and "Row 3: A cell is longer than 65,536" in page.text
    resp = c.post(url, data={"csrf_token": "t", "action": "commit", "col_0": "tag",
                             "col_1": "location", "col_2": "found_at", "col_3": "rate_lpm",
                             "col_4": "description"}, base_url=BASE)
    assert resp.status_code == 422 and "65,536" in resp.text
    assert Leak.select().count() == 0
    # Over the limit in the header row: refused at the upload, naming row 1.
    resp = c.post("/leaks/import", data={"csrf_token": "t", "file": (
        io.BytesIO(("Tag;" + "H" * 200_000 + "\n1;2\n").encode()), "head.csv")},
        content_type="multipart/form-data", base_url=BASE)
    assert resp.status_code == 422 and "Row 1" in resp.text and "65,536" in resp.text


def test_leakctl_import_with_a_cell_over_the_limit(actor, tree, tmp_path, config, capsys):
    set_config(config)
    f = tmp_path / "big.csv"
    f.write_bytes(csv_with("x" * 200_000))
    with pytest.raises(SystemExit) as exc:
        cli.main(["import", "leaks", "--org", "acme", str(f)])
    assert exc.value.code == 1
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert "Row 3: A cell is longer than 65,536 characters (64 KiB)" in err
    # The same file with --mapping (the headers are read first): one line as well.
    f.write_bytes(("Tag;" + "H" * 200_000 + "\n1;2\n").encode())
    with pytest.raises(SystemExit) as exc:
        cli.main(["import", "leaks", "--org", "acme", str(f), "--mapping", '{"Tag": "tag"}'])
    err = capsys.readouterr().err
    assert exc.value.code == 1 and err.count("\n") == 1
    assert err.startswith("leakctl: error: big.csv: Row 1") and "65,536" in err


def test_non_ascii_csrf_token_is_refused_like_any_wrong_token(actor, tree, login):
    c = login(actor.user)
    for token in ("tökén", "t\u00e9", "\u2603" * 40):
        resp = c.post("/leaks/new", data={"csrf_token": token}, base_url=BASE)
        assert resp.status_code == 403, token
    # Bytes that are not UTF-8 at all, in the form and in the header.
    resp = c.post("/leaks/new", data=b"csrf_token=%FF%FEt", base_url=BASE,
                  content_type="application/x-www-form-urlencoded")
    assert resp.status_code == 403
    resp = c.post("/locations/new", data={}, headers={"X-CSRF-Token": "ä"}, base_url=BASE)
    assert resp.status_code == 403
    assert c.post("/leaks/new", data={"csrf_token": "t"}, base_url=BASE).status_code == 422


def _png_header_only(width: int, height: int) -> bytes:
    """A tiny PNG that declares width × height (a decompression bomb's header)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)  # 8-bit grey
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr)
            + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b""))


@pytest.mark.parametrize("side", [8_000, 12_000, 20_000])  # ours, Pillow's warning, its error
def test_decompression_bomb_names_the_pixel_limit(app, side):
    with pytest.raises(photos.PhotoError) as exc:
        photos.clean_image(_png_header_only(side, side), "bomb.png")
    assert exc.value.status == 422
    assert str(exc.value) == "bomb.png has too many pixels (at most 50 megapixels)."


def test_leakctl_unexpected_failure_is_one_line(actor, tree, tmp_path, config, capsys,
                                                monkeypatch):
    set_config(config)
    f = tmp_path / "l.csv"
    f.write_bytes(csv_with("ok"))

    def boom(*a, **kw):
        raise RuntimeError("something broke\nover two lines")
    monkeypatch.setattr(service, "run_import", boom)
    monkeypatch.delenv("LEAKHUB_DEBUG", raising=False)
    with pytest.raises(SystemExit) as exc:
        cli.main(["import", "leaks", "--org", "acme", str(f)])
    err = capsys.readouterr().err
    assert exc.value.code == 1 and err.count("\n") == 1 and "Traceback" not in err
    assert err.startswith("leakctl: error: unexpected RuntimeError: something broke over two "
                          "lines") and "LEAKHUB_DEBUG=1" in err
    # With LEAKHUB_DEBUG=1 the traceback is printed as well (and still the one-line summary).
    monkeypatch.setenv("LEAKHUB_DEBUG", "1")
    with pytest.raises(SystemExit):
        cli.main(["import", "leaks", "--org", "acme", str(f)])
    err = capsys.readouterr().err
    assert "Traceback" in err and err.rstrip().splitlines()[-1].startswith(
        "leakctl: error: unexpected RuntimeError")
