"""Leak exports: numbers as numbers, formula neutralisation, German CSV, list filter reuse."""
import csv
import datetime as dt
import io
from decimal import Decimal as D

import pytest
from openpyxl import load_workbook

from leakhub.exports import service as exports
from leakhub.imports import service as imports

from support.reporting_data import BASE, make_tree, new_leak


@pytest.fixture
def data(actor):
    tree = make_tree(actor)
    a = new_leak(actor, tree["area"], tag="1", rate_lpm=D("12.5"), rate_low_lpm=D("10"),
                 rate_high_lpm=D("15.25"), pressure_bar=D("6.5"), component="coupling",
                 description="=HYPERLINK(\"http://evil\")", found_by="@admin")
    b = new_leak(actor, tree["site2"], tag="2", rate_lpm=D("3"), description="-minus",
                 spare_part="+plus", recommended_action="\tTab")
    return tree, a, b


def test_xlsx_numbers_are_numbers_and_formulas_neutralised(actor, data, login):
    c = login(actor.user)
    resp = c.get("/leaks/export.xlsx", base_url=BASE)
    assert resp.status_code == 200
    assert resp.headers["Content-Type"].startswith("application/vnd.openxmlformats")
    ws = load_workbook(io.BytesIO(resp.data)).active
    rows = list(ws.iter_rows(values_only=True))
    header = rows[0]
    by_tag = {r[0]: dict(zip(header, r, strict=False)) for r in rows[1:]}
    a = by_tag["1"]
    for col in ("Leak rate l/min", "Rate low l/min", "Rate high l/min", "Pressure bar",
                "Energy kWh per year", "Cost per year", "CO2 kg per year", "Priority"):
        assert isinstance(a[col], (int, float)) and not isinstance(a[col], bool), col
    assert (a["Leak rate l/min"], a["Rate low l/min"], a["Rate high l/min"]) == (12.5, 10, 15.25)
    # 12.5 l/min × 6.4 kW/(m³/min) / 1000 × 8000 h = 640 kWh; × 0.19 € = 121.60 €; × 0.38 = 243.2 kg
    assert a["Energy kWh per year"] == 640 and a["Cost per year"] == pytest.approx(121.6)
    assert a["CO2 kg per year"] == pytest.approx(243.2)
    assert isinstance(a["Found at"], dt.datetime)
    assert a["Location path"] == "BER/H1/A1"
    assert a["Description"] == "'=HYPERLINK(\"http://evil\")" and a["Found by"] == "'@admin"
    b = by_tag["2"]
    assert b["Description"] == "'-minus" and b["Spare part"] == "'+plus"
    assert b["Recommended action"] == "'\tTab"
    # No cell is stored as a formula.
    for row in ws.iter_rows():
        for cell in row:
            assert cell.data_type != "f"


def test_csv_bom_german_options_and_neutralised(actor, data, login):
    c = login(actor.user)
    resp = c.get("/leaks/export.csv?sep=semicolon&decimal=comma", base_url=BASE)
    assert resp.status_code == 200 and resp.data.startswith(b"\xef\xbb\xbf")
    # One charset parameter, not "text/csv; charset=utf-8; charset=utf-8" (issue 12).
    assert resp.headers["Content-Type"] == "text/csv; charset=utf-8"
    xlsx = c.get("/leaks/export.xlsx", base_url=BASE)
    assert xlsx.headers["Content-Type"] == ("application/vnd.openxmlformats-officedocument."
                                            "spreadsheetml.sheet")
    text = resp.data.decode("utf-8-sig")
    rows = list(csv.reader(io.StringIO(text), delimiter=";"))
    header = rows[0]
    a = dict(zip(header, rows[1] if rows[1][0] == "1" else rows[2], strict=False))
    assert a["Leak rate l/min"] == "12,5" and a["Rate high l/min"] == "15,25"
    assert a["Cost per year"] == "121,60"
    assert a["Description"].startswith("'=") and a["Found by"] == "'@admin"
    assert a["Found at"] == "01.03.2024 10:00"  # 09:00 UTC shown in Europe/Berlin
    plain = c.get("/leaks/export.csv", base_url=BASE).data.decode("utf-8-sig")
    assert plain.splitlines()[0].startswith("Tag number,Location path")
    assert ",12.5," in plain


def test_export_uses_the_list_filter(actor, data, login):
    tree = data[0]
    c = login(actor.user)
    resp = c.get(f"/leaks/export.csv?location={tree['site2'].id}", base_url=BASE)
    lines = resp.data.decode("utf-8-sig").strip().splitlines()
    assert len(lines) == 2 and lines[1].startswith("2,")


def test_export_refuses_an_unreadable_filter_instead_of_exporting_everything(actor, data,
                                                                             login):
    c = login(actor.user)
    resp = c.get("/leaks/export.csv?status=open&date_from=31.02.2024", base_url=BASE)
    assert resp.status_code == 400 and b"date_from" in resp.data
    assert c.get("/leaks/export.xlsx?q=" + "x" * 101, base_url=BASE).status_code == 400


def test_export_reimports_unchanged(actor, data):
    from leakhub.leaks import service as leaks

    flt = leaks.parse_filter({})
    for fmt, name in (("csv", "x.csv"), ("xlsx", "x.xlsx")):
        out, n = exports.export(actor, flt, fmt=fmt, tzname=actor.organization.timezone)
        assert n == 2
        res = imports.run_import(actor, out.read(), name)
        assert res.errors == [] and res.conflicts == [], [str(e) for e in res.errors]
        assert (res.new, res.unchanged) == (0, 2)


def test_other_org_sees_nothing(actor, data, login, make_actor, other_org):
    stranger = make_actor("admin", organization=other_org)
    c = login(stranger.user)
    text = c.get("/leaks/export.csv", base_url=BASE).data.decode("utf-8-sig")
    assert len(text.strip().splitlines()) == 1


def test_leak_list_links_to_exports_with_its_filter(actor, data, login):
    tree = data[0]
    c = login(actor.user)
    html = c.get(f"/leaks?location={tree['site2'].id}&status=open", base_url=BASE).data.decode()
    assert "/leaks/export.xlsx?" in html and f"location={tree['site2'].id}" in html
    assert "sep=semicolon" in html and "decimal=comma" in html
