"""A German export (issue 14): statuses, components, methods and estimate classes in German,
and the file re-imports unchanged — by a German or an English user."""
import csv
import io
from decimal import Decimal as D

import pytest
from flask_babel import force_locale
from openpyxl import load_workbook

from leakhub.exports import service as exports
from leakhub.imports import mapping
from leakhub.imports import service as imports
from leakhub.leaks import service as leaks

from support.reporting_data import BASE, make_tree, new_leak

LABEL_TABLES = {"status": leaks.STATUS_LABELS, "component": leaks.COMPONENT_LABELS,
                "priority": leaks.PRIORITY_LABELS, "method": leaks.METHOD_LABELS,
                "estimate_class": leaks.ESTIMATE_LABELS}
WORDS = {"status": mapping.STATUS_WORDS, "component": mapping.COMPONENT_WORDS,
         "priority": mapping.PRIORITY_WORDS, "method": mapping.METHOD_WORDS,
         "estimate_class": mapping.ESTIMATE_WORDS}


@pytest.fixture
def data(actor):
    tree = make_tree(actor)
    new_leak(actor, tree["area"], tag="1", rate_lpm=D("12.5"), component="tube", priority=1)
    new_leak(actor, tree["area"], tag="2", method="estimate", estimate_class="severe",
             component="quick_disconnect", priority=3, status="to_review")
    third = new_leak(actor, tree["site2"], tag="3", rate_lpm=D("3"),
                     component="condensate_trap")
    leaks.change_status(actor, third, "deferred", note="Stillstand abwarten")
    return tree


@pytest.mark.parametrize("locale", ["en", "de"])
def test_the_static_vocabularies_know_every_label(app, locale):
    """Independent of the importing user's language (add_labels only adds the current one)."""
    with app.test_request_context(), force_locale(locale):
        for field, labels in LABEL_TABLES.items():
            vocab = mapping._vocab(WORDS[field])
            for key, label in labels.items():
                assert vocab.get(mapping.norm(str(label))) == key, (field, str(label))


def test_german_export_has_german_headers_and_values(app, actor, data, login):
    actor.user.language = "de"
    actor.user.save()
    c = login(actor.user)
    text = c.get("/leaks/export.csv?sep=semicolon&decimal=comma",
                 base_url=BASE).data.decode("utf-8-sig")
    rows = list(csv.DictReader(io.StringIO(text), delimiter=";"))
    assert list(rows[0])[:6] == ["Leckage-Nr.", "Ortspfad", "Ortsbezeichnung", "Standort-Kürzel",
                                 "Begehung", "Gefunden am"]
    by_tag = {r["Leckage-Nr."]: r for r in rows}
    assert (by_tag["1"]["Status"], by_tag["1"]["Bauteil"]) == ("offen", "Kunststoffschlauch")
    assert by_tag["1"]["Methode"] == "mit Messgerät gemessen"
    assert (by_tag["1"]["Priorität"], by_tag["2"]["Priorität"]) == ("hoch", "niedrig")
    assert by_tag["2"]["Status"] == "zu prüfen"
    assert (by_tag["2"]["Methode"], by_tag["2"]["Schätzklasse"]) == (
        "Schätzklasse", "stark (auf Distanz hörbar)")
    assert by_tag["3"]["Bauteil"] == "Kondensatableiter"
    assert by_tag["3"]["Status"] == "zurückgestellt"
    assert by_tag["1"]["Leckagerate l/min"] == "12,5"
    xlsx = c.get("/leaks/export.xlsx", base_url=BASE)
    wb = load_workbook(io.BytesIO(xlsx.data))
    ws = wb.active
    assert ws.title == "Leckagen"
    header = [cell.value for cell in next(ws.iter_rows(max_row=1))]
    assert header == headers_in(app, "de")
    assert {"Leckage-Nr.", "Priorität", "Bauteil", "Energie kWh pro Jahr", "Kosten pro Jahr",
            "CO2 kg pro Jahr", "Verifiziert am", "Währung"} <= set(header)
    assert not {"Tag number", "Priority", "Component", "Cost per year"} & set(header)
    values = [c for row in ws.iter_rows(min_row=2, values_only=True) for c in row]
    assert "Schnellkupplung" in values and "zu prüfen" in values and "hoch" in values


def test_english_export_keeps_english_headers_and_numeric_priority(actor, data, login):
    actor.user.language = "en"
    actor.user.save()
    text = login(actor.user).get("/leaks/export.csv", base_url=BASE).data.decode("utf-8-sig")
    rows = list(csv.DictReader(io.StringIO(text)))
    assert list(rows[0])[:3] == ["Tag number", "Location path", "Location name"]
    assert {r["Tag number"]: r["Priority"] for r in rows}["1"] == "1"


def headers_in(app, locale) -> list[str]:
    with app.test_request_context(), force_locale(locale):
        return [str(h) for _k, h, _t in exports.COLUMNS]


def test_import_maps_both_languages_headers_and_skips_export_only_columns(app):
    """Every import field of an export maps to itself, in an English or a German file;
    the export-only columns (location name, site code, figures) map to nothing."""
    for locale in ("en", "de"):
        headers = headers_in(app, locale)
        mapped = {headers[i]: f for i, f in mapping.suggest(headers).items()}
        expected = {h: key for h, (key, label, _t) in zip(headers, exports.COLUMNS, strict=True)
                    if label is mapping.FIELDS.get(key)}
        assert mapped == expected, locale


@pytest.mark.parametrize("import_locale", ["de", "en"])
def test_german_export_reimports_unchanged(app, actor, data, import_locale):
    flt = leaks.parse_filter({})
    before = {lk.tag: lk.version for lk in leaks.Leak.select()}
    for fmt, name, opts in (("csv", "x.csv", exports.Options(semicolon=True, decimal_comma=True)),
                            ("csv", "y.csv", exports.Options()), ("xlsx", "x.xlsx", None)):
        with app.test_request_context(), force_locale("de"):
            out, n = exports.export(actor, flt, fmt=fmt, tzname=actor.organization.timezone,
                                    opts=opts)
            content = out.read()
        assert n == 3
        with app.test_request_context(), force_locale(import_locale):
            res = imports.run_import(actor, content, name)
        assert res.errors == [] and res.conflicts == [], [str(e) for e in res.errors]
        assert (res.new, res.unchanged) == (0, 3), fmt
    assert {lk.tag: lk.version for lk in leaks.Leak.select()} == before
