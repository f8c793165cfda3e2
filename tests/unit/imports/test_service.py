"""Leak import: mapping suggestion, German and BOM files, all-or-nothing, idempotence."""
import datetime as dt
import io
import json
from decimal import Decimal as D

import pytest

from leakhub.imports import formats, mapping, service
from leakhub.leaks.models import Leak, LeakStatusChange

from support.reporting_data import BASE

GERMAN = (
    "Leckage-Nr;Standort;Datum;Leckrate l/min;Druck;Bauteil;Bemerkung;Status\r\n"
    "101;BER/H1/A1;05.03.2024;12,5;6,5;Kupplung;Kupplung undicht – Größe ½\";offen\r\n"
    "102;BER/H1/A1;06.03.2024;1.234,75;7;Schlauch;Schlauch rissig;repariert\r\n"
    "103;Werk München;07.03.2024;3;;Wartungseinheit;Öler tropft;Offen\r\n"
)


def run(actor, text_or_bytes, name="leaks.csv", **kw):
    data = text_or_bytes if isinstance(text_or_bytes, bytes) else text_or_bytes.encode()
    return service.run_import(actor, data, name, **kw)


def test_suggest_mapping_from_german_and_english_headers():
    headers = ["Nr.", "Standort", "Datum", "Leckrate l/min", "Druck [bar]", "Bauteil",
               "Beschreibung", "Tag", "Leak rate l/min", "Gebäude", "Maßnahme", "irrelevant"]
    m = mapping.suggest(headers)
    # "Standort" beside "Gebäude" is the site (issue 12: the tree was built upside down);
    # alone it is the location path (see test_german_location_headers_map_to_the_tree).
    assert m[0] == "tag" and m[1] == "site" and m[2] == "found_at"
    assert m[3] == "rate_lpm" and m[4] == "pressure_bar" and m[5] == "component"
    assert m[6] == "description" and m[9] == "building" and m[10] == "recommended_action"
    assert 7 not in m and 8 not in m and 11 not in m  # each field once, leftmost wins
    assert mapping.suggest(["Leckage-Nr"]) == {0: "tag"}


def test_german_excel_csv_cp1252(actor, tree):
    data = GERMAN.encode("cp1252")
    with pytest.raises(UnicodeDecodeError):
        data.decode("utf-8")
    result = run(actor, data)
    assert result.errors == [] and result.conflicts == []
    assert (result.encoding, result.delimiter) == ("cp1252", ";")
    assert result.committed and result.new == 3
    a, b, c = list(Leak.select().order_by(Leak.tag_number))
    assert a.tag == "101" and a.rate_lpm == D("12.5") and a.pressure_bar == D("6.5")
    assert a.component == "coupling" and a.status == "open"
    assert a.description == "Kupplung undicht – Größe ½\""
    # dd.mm.yyyy in the organization's time zone (Europe/Berlin, UTC+1 in March) → UTC.
    assert a.found_at == dt.datetime(2024, 3, 4, 23, 0)
    assert a.location_id == tree["area"].id and a.source == "import"
    assert b.rate_lpm == D("1234.75") and b.status == "repaired" and b.repaired_at is not None
    assert b.component == "hose"
    assert c.location_id == tree["site2"].id and c.component == "frl_unit"
    assert c.pressure_bar is None and c.description == "Öler tropft"
    assert LeakStatusChange.select().count() == 3
    from leakhub.audit.models import AuditEntry
    assert AuditEntry.select().where(AuditEntry.entity_type == "leak",
                                     AuditEntry.action == "create").count() == 3
    assert AuditEntry.select().where(AuditEntry.action == "import").count() == 1
    # The bulk path records the same fields as writer.create would.
    from leakhub.audit import writer
    entry = AuditEntry.get(AuditEntry.entity_type == "leak", AuditEntry.entity_id == a.id)
    expected = {k for k, v in writer.snapshot(a).items() if v not in (None, "")}
    assert set(json.loads(entry.changes)) == expected
    assert AuditEntry.select().where(AuditEntry.entity_type == "leak_status_change").count() == 3
    from leakhub.audit.verify import verify_org  # the chain stays intact
    assert verify_org(actor.organization).ok


def test_utf8_bom_comma_csv(actor, tree):
    text = ("\ufeffTag,Location path,Found at,Leak rate l/min,Component,Description\n"
            "A-1,BER/H1/A1,2024-03-05 10:30,7.25,fitting,\"Fitting, leaking\"\n")
    result = run(actor, text.encode("utf-8"))
    assert result.errors == [] and result.committed
    assert (result.encoding, result.delimiter) == ("utf-8", ",")
    assert result.mapping[0] == "tag"  # BOM not part of the first header
    leak = Leak.get()
    assert leak.tag == "A-1" and leak.rate_lpm == D("7.25") \
        and leak.description == "Fitting, leaking"


def test_one_bad_row_imports_nothing_and_names_row_and_column(actor, tree):
    text = GERMAN.replace("1.234,75", "viel")
    text = text.replace("BER/H1/A1;06", "BER/H9/A1;06")  # same row: unknown location too
    text += "104;BER/H1/A1;31.02.2024;4;;Kupplung;;offen\r\n"  # impossible date
    result = run(actor, text.encode("cp1252"))
    assert not result.committed and Leak.select().count() == 0
    msgs = [str(e) for e in result.errors]
    assert any(e.row == 3 and e.column == "Leckrate l/min" for e in result.errors), msgs
    assert any(e.row == 3 and e.column == "Standort" and "H9" in e.message
               for e in result.errors), msgs
    assert any(e.row == 5 and e.column == "Datum" for e in result.errors), msgs
    assert any("Row 3" in m and "Leckrate l/min" in m for m in msgs)


def test_reimport_is_idempotent_and_conflicts_are_reported(actor, tree):
    data = GERMAN.encode("cp1252")
    assert run(actor, data).new == 3
    from leakhub.audit.models import AuditEntry
    before = AuditEntry.select().count()
    again = run(actor, data)
    assert (again.new, again.unchanged, again.changed) == (0, 3, 0)
    assert again.committed and Leak.select().count() == 3
    assert AuditEntry.select().count() == before + 1  # only the import event
    # Same tag, different content: a conflict (nothing written) ...
    changed = GERMAN.replace("12,5;6,5", "15;6,5").encode("cp1252")
    res = run(actor, changed)
    assert not res.committed and len(res.conflicts) == 1
    assert res.conflicts[0].tag == "101"
    assert res.conflicts[0].columns[0][0] == "Leckrate l/min"
    assert Leak.get(Leak.tag == "101").rate_lpm == D("12.5")
    # ... unless updating is chosen: then an audited update.
    res = run(actor, changed, options=service.Options(update_existing=True))
    assert res.committed and res.changed == 1
    leak = Leak.get(Leak.tag == "101")
    assert leak.rate_lpm == D("15") and leak.version == 2
    entry = AuditEntry.select().where(AuditEntry.entity_type == "leak",
                                      AuditEntry.action == "update").get()
    assert [D(v) for v in json.loads(entry.changes)["rate_lpm"]] == [D("12.5"), D("15")]


def test_status_moves_along_workflow_on_update(actor, tree):
    run(actor, GERMAN.encode("cp1252"))
    text = GERMAN.replace("Kupplung undicht – Größe ½\";offen",
                          "Kupplung undicht – Größe ½\";verifiziert")
    res = run(actor, text.encode("cp1252"), options=service.Options(update_existing=True))
    assert res.committed, [str(e) for e in res.errors]
    leak = Leak.get(Leak.tag == "101")
    assert leak.status == "verified"
    assert [h.to_status for h in LeakStatusChange.select().where(
        LeakStatusChange.leak == leak).order_by(LeakStatusChange.id)] == [
        "open", "repaired", "verified"]


def test_missing_locations_error_or_created(actor, tree):
    text = ("Tag;Standort;Datum;Leckrate l/min\n1;HAM/Halle 7/Presse;01.02.2024;5\n"
            "2;HAM/Halle 7;01.02.2024;6\n")
    res = run(actor, text)
    assert not res.committed and {e.column for e in res.errors} == {"Standort"}
    assert {e.row for e in res.errors} == {2, 3}
    res = run(actor, text, options=service.Options(create_locations=True))
    assert res.committed, [str(e) for e in res.errors]
    from leakhub.locations.models import Location
    ham = Location.get(Location.code == "HAM")
    hall = Location.get(Location.code == "Halle 7")
    press = Location.get(Location.code == "Presse")
    assert (ham.kind, hall.kind, press.kind) == ("site", "building", "area")
    assert press.parent_id == hall.id and hall.parent_id == ham.id
    assert Leak.get(Leak.tag == "1").location_id == press.id
    assert Leak.get(Leak.tag == "2").location_id == hall.id


def test_duplicate_tag_in_file_and_missing_columns(actor, tree):
    text = "Tag;Standort;Datum;Leckrate l/min\n7;BER;01.02.2024;5\n007;BER;01.02.2024;6\n"
    res = run(actor, text)
    assert [(e.row, e.column) for e in res.errors] == [(3, "Tag")]
    res = run(actor, "Tag;Standort\n1;BER\n")
    assert not res.committed and res.errors[0].row == 0
    assert "Found at" in str(res.errors[0]) or "Leak rate" in str(res.errors[0])


def test_xlsx_import_and_formula_guard_removed(actor, tree):
    from openpyxl import Workbook

    wb = Workbook()
    ws = wb.active
    ws.append(["Nr.", "Standort", "Datum", "Leckrate l/min", "Bauteil", "Bemerkung"])
    ws.append([5, "BER/H1/A1", dt.datetime(2024, 5, 2, 8, 0), 2.5, "Ventil", "'=1+2"])
    out = io.BytesIO()
    wb.save(out)
    res = service.run_import(actor, out.getvalue(), "leaks.xlsx")
    assert res.format == "xlsx" and res.committed, [str(e) for e in res.errors]
    leak = Leak.get()
    assert (leak.tag, leak.rate_lpm, leak.component) == ("5", D("2.5"), "valve")
    assert leak.description == "=1+2"


def test_registry_detects_formats():
    assert formats.importer_for("x.csv", b"a;b\n1;2").name == "csv"
    assert formats.importer_for("x.xlsx", b"PK\x03\x04....").name == "xlsx"
    with pytest.raises(formats.FormatError):
        formats.importer_for("x.bin", b"\0\0\0")


def test_web_import_flow(actor, tree, login):
    c = login(actor.user)
    resp = c.post("/leaks/import", data={"csrf_token": "t", "file": (
        io.BytesIO(GERMAN.encode("cp1252")), "begehung.csv")},
        content_type="multipart/form-data", base_url=BASE)
    assert resp.status_code == 302
    url = resp.headers["Location"]
    page = c.get(url, base_url=BASE)
    assert page.status_code == 200 and b"3 rows: 3 new" in page.data
    form = {"csrf_token": "t", "action": "commit"}
    form.update({f"col_{i}": f for i, f in mapping.suggest(
        GERMAN.splitlines()[0].split(";")).items()})
    resp = c.post(url, data=form, base_url=BASE)
    assert resp.status_code == 302 and Leak.select().count() == 3
    # Another user's session cannot use the staged file.
    assert c.get(url, base_url=BASE).status_code == 404


def test_cli_import(actor, tree, tmp_path, config, monkeypatch):
    from leakhub import cli
    from leakhub.core.config import set_config

    set_config(config)
    f = tmp_path / "l.csv"
    f.write_bytes(GERMAN.encode("cp1252"))
    cli.main(["import", "leaks", "--org", "acme", str(f), "--dry-run"])
    assert Leak.select().count() == 0
    bad = tmp_path / "bad.csv"
    bad.write_bytes(GERMAN.replace("12,5", "x").encode("cp1252"))
    with pytest.raises(SystemExit) as exc:
        cli.main(["import", "leaks", "--org", "acme", str(bad)])
    assert exc.value.code == 1 and Leak.select().count() == 0
    # --mapping overrides single columns on top of the suggestion (issue 12): "ignore" drops
    # Bauteil, the columns not named keep their suggested fields (Bemerkung → description).
    mapping_json = json.dumps({"Standort": "location", "Bauteil": "ignore"})
    try:
        cli.main(["import", "leaks", "--org", "acme", str(f), "--mapping", mapping_json])
    except SystemExit as e:
        assert e.code in (0, None)
    assert Leak.select().count() == 3
    assert Leak.get(Leak.tag == "101").component == "other"  # Bauteil not mapped
    assert Leak.get(Leak.tag == "101").description.startswith("Kupplung undicht")
