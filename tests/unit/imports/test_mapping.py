"""Issue 12, item 6: German location headers build the tree the right way up, a mapping that
would make a building a site is warned about before writing, `leakctl import --mapping`
overrides single columns, and a grant-limited user's preview names the rows outside the
grants as errors (instead of "4 new" and a bare 404 at commit)."""
from __future__ import annotations

import io
import json

import pytest

from leakhub import cli
from leakhub.authz.models import Grant
from leakhub.core.config import set_config
from leakhub.imports import mapping, service
from leakhub.leaks.models import Leak
from leakhub.locations.models import Location

from support.reporting_data import BASE, new_leak


def run(actor, text, **kw):
    return service.run_import(actor, text.encode(), "l.csv", **kw)


@pytest.mark.parametrize("site, building, area", [("Standort", "Gebäude", "Bereich"),
                                                  ("Werk", "Halle", "Messort"),
                                                  ("Site", "Building", "Area")])
def test_german_location_headers_map_to_the_tree(actor, tree, site, building, area):
    headers = ["Nr.", site, building, area, "Datum", "Leckrate l/min"]
    assert mapping.suggest(headers) == {0: "tag", 1: "site", 2: "building", 3: "area",
                                        4: "found_at", 5: "rate_lpm"}
    text = (";".join(headers) + "\n"
            "1;Werk Berlin;Halle 1;Montage;01.02.2024;5\n"
            "2;BER;H1;;01.02.2024;6\n")
    res = run(actor, text)
    assert res.committed and not res.warnings, [str(e) for e in res.errors]
    assert Leak.get(Leak.tag == "1").location_id == tree["area"].id
    assert Leak.get(Leak.tag == "2").location_id == tree["hall"].id


def test_standort_alone_is_the_location_path():
    assert mapping.suggest(["Nr", "Standort", "Datum"]) == {0: "tag", 1: "location",
                                                            2: "found_at"}
    assert mapping.suggest(["Nr", "Werk", "Datum"])[1] == "location"
    # With a path column beside it, the site stays the site.
    assert mapping.suggest(["Standort", "Standortpfad"]) == {0: "site", 1: "location"}


def test_new_german_tree_is_created_site_first(actor, tree):
    text = ("Nr;Standort;Gebäude;Bereich;Datum;Leckrate l/min\n"
            "1;Werk Süd;Halle 3;Montage;01.02.2024;5\n")
    res = run(actor, text, options=service.Options(create_locations=True))
    assert res.committed and res.missing_locations[0] == "Werk Süd"
    area = Location.get(Location.id == Leak.get(Leak.tag == "1").location_id)
    hall = Location.get(Location.id == area.parent_id)
    site = Location.get(Location.id == hall.parent_id)
    assert [(x.kind, x.name) for x in (site, hall, area)] == [
        ("site", "Werk Süd"), ("building", "Halle 3"), ("area", "Montage")]


def test_a_mapping_that_makes_a_building_a_site_is_warned_about(actor, tree):
    # The old suggestion: building and area first, the site last ("Halle 1 / Montage / Werk
    # Berlin"). The preview says so before anything is written.
    text = ("Nr;Gebäude;Bereich;Standort;Datum;Leckrate l/min\n"
            "1;Halle 1;Montage;Werk Berlin;01.02.2024;5\n")
    upside_down = {0: "tag", 1: "site", 2: "building", 3: "area", 4: "found_at", 5: "rate_lpm"}
    res = run(actor, text, column_map=upside_down, dry_run=True,
              options=service.Options(create_locations=True))
    assert res.ok and res.missing_locations[0] == "Halle 1" and not res.committed
    [warning] = res.warnings
    assert warning.startswith("“Halle 1” would be created as a new site, but there is a "
                              "building of that name (H1 · Halle 1)")
    res = run(actor, text, column_map=upside_down, dry_run=True)
    assert res.warnings[0].startswith("“Halle 1” is not a site, but there is a building")
    assert [e.row for e in res.errors] == [2]
    assert Location.select().count() == 4 and Leak.select().count() == 0


def test_web_preview_shows_the_warning(actor, tree, login):
    c = login(actor.user)
    data = ("Nr;Gebäude;Bereich;Standort;Datum;Leckrate l/min\n"
            "1;Halle 1;Montage;Werk Berlin;01.02.2024;5\n").encode()
    resp = c.post("/leaks/import", data={"csrf_token": "t", "file": (
        io.BytesIO(data), "l.csv")}, content_type="multipart/form-data",
        base_url=BASE)
    url = resp.headers["Location"]
    resp = c.post(url, data={"csrf_token": "t", "action": "preview", "col_0": "tag",
                             "col_1": "site", "col_2": "building", "col_3": "area",
                             "col_4": "found_at", "col_5": "rate_lpm",
                             "create_locations": "1"}, base_url=BASE)
    assert resp.status_code == 200 and 'data-testid="import-warnings"' in resp.text
    assert "would be created as a new site" in resp.text
    assert Location.select().count() == 4


GERMAN = ("Leckage-Nr;Standort;Datum;Leckrate l/min;Bauteil;Bemerkung\n"
          "101;BER/H1/A1;05.03.2024;12,5;Kupplung;undicht\n")


def _cli_json(args, capsys):
    try:
        cli.main(args + ["--json"])
    except SystemExit as exc:
        assert exc.code in (0, None), capsys.readouterr().err
    return json.loads(capsys.readouterr().out)


def test_leakctl_mapping_overrides_single_columns(actor, tree, tmp_path, config, capsys):
    set_config(config)
    f = tmp_path / "l.csv"
    f.write_text(GERMAN, encoding="utf-8")
    base = ["import", "leaks", "--org", "acme", str(f), "--dry-run"]
    out = _cli_json(base, capsys)
    assert out["mapping"] == {"Leckage-Nr": "tag", "Standort": "location", "Datum": "found_at",
                              "Leckrate l/min": "rate_lpm", "Bauteil": "component",
                              "Bemerkung": "description"}
    # One column changed, one dropped, the rest as suggested.
    out = _cli_json(base + ["--mapping", json.dumps({"Bauteil": "spare_part",
                                                     "Bemerkung": None})], capsys)
    assert out["mapping"] == {"Leckage-Nr": "tag", "Standort": "location", "Datum": "found_at",
                              "Leckrate l/min": "rate_lpm", "Bauteil": "spare_part"}
    # A field given to another column leaves the column the suggestion gave it to.
    out = _cli_json(base + ["--mapping", '{"Bauteil": "description"}'], capsys)
    assert out["mapping"]["Bauteil"] == "description" and "Bemerkung" not in out["mapping"]
    # From a file, too.
    m = tmp_path / "m.json"
    m.write_text('{"bauteil": "ignore"}')
    out = _cli_json(base + ["--mapping", str(m)], capsys)
    assert "Bauteil" not in out["mapping"] and out["mapping"]["Bemerkung"] == "description"
    # Mistakes: one line each, naming the column or field.
    for arg, says in (('{"Nope": "tag"}', "the file has no column 'Nope'"),
                      ('{"Bauteil": "colour"}', "unknown field 'colour' for column 'Bauteil'"),
                      ("[1]", "neither JSON nor a file"), ("{bad json", "not a JSON object"),
                      ('{"Bauteil": 1}', "unknown field 1"),
                      ('{"Bauteil": []}', "unknown field []")):
        with pytest.raises(SystemExit) as exc:
            cli.main(base + ["--mapping", arg])
        err = capsys.readouterr().err
        assert exc.value.code == 1 and err.count("\n") == 1, err
        assert err.startswith("leakctl: error: --mapping") and says in err, err


def test_leakctl_mapping_is_documented(capsys):
    cli.main(["import", "leaks", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "Overrides of the suggested column mapping" in text and '"ignore"' in text


# ---------------------------------------------------------------- grant-limited users

@pytest.fixture
def external(tree, make_actor):
    """An external user with edit on BER (site 1) and view on MUC (site 2)."""
    ext = make_actor("external")
    Grant.create(organization=ext.organization, user=ext.user, location=tree["site"],
                 level="edit")
    Grant.create(organization=ext.organization, user=ext.user, location=tree["site2"],
                 level="view")
    return ext


ROWS = ("Tag;Standort;Datum;Leckrate l/min\n"
        "1;BER/H1/A1;01.02.2024;5\n"
        "2;MUC;01.02.2024;5\n"
        "3;BER;01.02.2024;5\n"
        "4;Werk München;01.02.2024;5\n")


def test_external_preview_names_rows_outside_the_grants(actor, external):
    res = run(external, ROWS, dry_run=True)
    assert [(e.row, e.column) for e in res.errors] == [(3, "Standort"), (5, "Standort")]
    assert "outside the locations you may edit" in str(res.errors[0])
    assert "MUC · Werk München" in str(res.errors[0])
    res = run(external, ROWS)
    assert not res.committed and Leak.select().count() == 0
    # Only the granted rows: imported (no 404 at the commit).
    res = run(external, "\n".join(ROWS.splitlines()[:2] + ROWS.splitlines()[3:4]) + "\n")
    assert res.committed and res.new == 2, [str(e) for e in res.errors]
    assert {lk.tag for lk in Leak.select()} == {"1", "3"}


def test_external_cannot_create_sites_or_touch_leaks_outside(actor, tree, external):
    res = run(external, "Tag;Standort;Datum;Leckrate l/min\n1;NEU/H1;01.02.2024;5\n"
                        "2;BER/H9;01.02.2024;5\n",
              options=service.Options(create_locations=True), dry_run=True)
    assert [e.row for e in res.errors] == [2]
    assert "You may not create the site “NEU”" in str(res.errors[0])
    # A tag taken by a leak the user cannot see: refused in the preview, not at the insert.
    hidden = Location.create(organization=actor.organization, kind="site", code="HID",
                             name="Hidden", path="/")
    hidden.path = f"/{hidden.id}/"
    hidden.save()
    new_leak(actor, hidden, tag="77")
    res = run(external, "Tag;Standort;Datum;Leckrate l/min\n77;BER;01.02.2024;5\n")
    assert [(e.row, e.column) for e in res.errors] == [(2, "Tag")]
    assert "already used" in str(res.errors[0])
    # A visible leak outside the edit grant: changing it is an error of its row.
    muc = new_leak(actor, tree["site2"], tag="88", description="x")
    res = run(external, "Tag;Standort;Datum;Leckrate l/min;Bemerkung\n"
                        f"88;MUC;{muc.found_at:%Y-%m-%d %H:%M};20;changed\n",
              options=service.Options(update_existing=True))
    assert not res.committed and [e.row for e in res.errors] == [2]
    assert "MUC" in str(res.errors[0]) or "88" in str(res.errors[0])
