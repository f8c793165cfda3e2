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
    leaks.change_status(actor, third, "deferred")
    return tree


@pytest.mark.parametrize("locale", ["en", "de"])
def test_the_static_vocabularies_know_every_label(app, locale):
    """Independent of the importing user's language (add_labels only adds the current one)."""
    with app.test_request_context(), force_locale(locale):
        for field, labels in LABEL_TABLES.items():
            vocab = mapping._vocab(WORDS[field])
            for key, label in labels.items():
                assert vocab.get(mapping.norm(str(label))) == key, (field, str(label))


def test_german_export_has_german_values(actor, data, login):
    actor.user.language = "de"
    actor.user.save()
    c = login(actor.user)
    text = c.get("/leaks/export.csv?sep=semicolon&decimal=comma",
                 base_url=BASE).data.decode("utf-8-sig")
    rows = list(csv.DictReader(io.StringIO(text), delimiter=";"))
    by_tag = {r["Tag number"]: r for r in rows}
    assert (by_tag["1"]["Status"], by_tag["1"]["Component"]) == ("offen", "Kunststoffschlauch")
    assert by_tag["1"]["Method"] == "mit Messgerät gemessen" and by_tag["1"]["Priority"] == "1"
    assert by_tag["2"]["Status"] == "zu prüfen"
    assert (by_tag["2"]["Method"], by_tag["2"]["Estimate class"]) == (
        "Schätzklasse", "stark (auf Distanz hörbar)")
    assert by_tag["3"]["Component"] == "Kondensatableiter"
    assert by_tag["3"]["Status"] == "zurückgestellt"
    xlsx = c.get("/leaks/export.xlsx", base_url=BASE)
    ws = load_workbook(io.BytesIO(xlsx.data)).active
    values = [c for row in ws.iter_rows(values_only=True) for c in row]
    assert "Schnellkupplung" in values and "zu prüfen" in values


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
