"""Import presets (issue 18 part 6): save the review's mapping as a preset, apply it (web
review, upload choice, `leakctl import leaks --preset` as a subprocess), another
organization's presets stay invisible, deleting is for who saved it or an administrator."""
import io
import json
import os
import subprocess
from pathlib import Path

import pytest

from leakhub.audit.models import AuditEntry
from leakhub.core.db import database
from leakhub.core.validation import ValidationError
from leakhub.imports import service
from leakhub.imports.models import ImportPreset
from leakhub.imports.views import SESSION_KEY, staging
from leakhub.leaks.models import Leak

from support.reporting_data import BASE

REPO = Path(__file__).resolve().parents[3]
# A detector's export with headers the suggestion does not know.
VENDOR = ("Punkt;Ort;Zeit;Wert l/min;Notiz\r\n"
          "701;BER/H1/A1;05.03.2024;12,5;Kupplung undicht\r\n"
          "702;BER/H1/A1;06.03.2024;3;Schlauch\r\n")
HEADERS = ["Punkt", "Ort", "Zeit", "Wert l/min", "Notiz"]
MAPPING = {0: "tag", 1: "location", 2: "found_at", 3: "rate_lpm", 4: "description"}


def test_save_and_apply(actor, tree):
    preset = service.save_preset(actor, "  Vendor   X ", HEADERS, MAPPING)
    assert preset.name == "Vendor X"
    assert json.loads(preset.mapping) == {"Punkt": "tag", "Ort": "location", "Zeit": "found_at",
                                          "Wert l/min": "rate_lpm", "Notiz": "description"}
    # Headers in another order and case still match; the file's extra column is suggested.
    headers = ["ORT", "punkt", "Zeit", "Wert l/min", "Notiz", "Druck"]
    assert service.preset_column_map(actor, "Vendor X", headers) == {
        0: "location", 1: "tag", 2: "found_at", 3: "rate_lpm", 4: "description",
        5: "pressure_bar"}
    result = service.run_import(actor, VENDOR.encode(), "v.csv",
                                column_map=service.preset_column_map(actor, "Vendor X", HEADERS))
    assert result.committed and result.new == 2, [str(e) for e in result.errors]
    # Saving under the same name replaces it (audited update), unmapped columns as "ignore".
    service.save_preset(actor, "Vendor X", HEADERS, {0: "tag", 1: "location", 2: "found_at",
                                                     3: "rate_lpm"})
    assert json.loads(ImportPreset.get().mapping)["Notiz"] == "ignore"
    assert [e.action for e in AuditEntry.select().where(
        AuditEntry.entity_type == "import_preset").order_by(AuditEntry.seq)] == [
        "create", "update"]


def test_bad_names_and_missing_columns_are_named(actor):
    for name in ("", "   ", "x" * 81):
        with pytest.raises(ValidationError) as exc:
            service.save_preset(actor, name, HEADERS, MAPPING)
        assert "preset_name" in exc.value.errors
    with pytest.raises(ValidationError) as exc:
        service.save_preset(actor, "Empty", HEADERS, {})
    assert "at least one column" in exc.value.errors["preset_name"]
    service.save_preset(actor, "Vendor X", HEADERS, MAPPING)
    with pytest.raises(ValidationError) as exc:
        service.preset_column_map(actor, "Vendor X", ["Punkt", "Ort"])
    assert "“Zeit”" in exc.value.errors["preset"] and "Vendor X" in exc.value.errors["preset"]
    with pytest.raises(ValidationError) as exc:
        service.preset_column_map(actor, "Nope", HEADERS)
    assert "Nope" in exc.value.errors["preset"]


def test_other_organization_does_not_see_or_delete_presets(actor, make_actor, other_org):
    preset = service.save_preset(actor, "Vendor X", HEADERS, MAPPING)
    stranger = make_actor("admin", organization=other_org)
    assert service.list_presets(stranger) == []
    with pytest.raises(ValidationError):
        service.preset_column_map(stranger, "Vendor X", HEADERS)
    with pytest.raises(Exception) as exc:
        service.delete_preset(stranger, preset.id)
    assert getattr(exc.value, "code", None) == 404
    # Same name in the other organization is its own preset.
    service.save_preset(stranger, "Vendor X", HEADERS, {0: "tag"})
    assert ImportPreset.select().count() == 2


def test_delete_by_saver_or_admin_only(actor, make_actor):
    editor, other_editor = make_actor("editor"), make_actor("editor")
    preset = service.save_preset(editor, "Mine", HEADERS, MAPPING)
    with pytest.raises(Exception) as exc:
        service.delete_preset(other_editor, preset.id)
    assert getattr(exc.value, "code", None) == 403
    service.delete_preset(editor, preset.id)
    preset = service.save_preset(editor, "Again", HEADERS, MAPPING)
    service.delete_preset(actor, preset.id)  # admin
    assert ImportPreset.select().count() == 0


def _stage(client, actor, data: bytes, name="v.csv") -> str:
    key = staging(actor.organization).put(data)
    with client.session_transaction(base_url=BASE) as s:
        s[SESSION_KEY] = {key: {"org": actor.organization.id, "filename": name}}
    return key


def test_web_review_saves_and_applies_a_preset(actor, tree, login):
    c = login(actor.user)
    key = _stage(c, actor, VENDOR.encode())
    form = {"csrf_token": "t", "action": "save_preset", "preset_name": "Vendor X",
            **{f"col_{i}": f for i, f in MAPPING.items()}}
    resp = c.post(f"/leaks/import/{key}", data=form, base_url=BASE)
    assert resp.status_code == 200 and "Vendor X" in resp.get_data(as_text=True)
    assert ImportPreset.get().name == "Vendor X"
    # A fresh review with the preset chosen maps every column; committing imports.
    page = c.get(f"/leaks/import/{key}?preset=Vendor+X", base_url=BASE)
    assert page.status_code == 200
    text = page.get_data(as_text=True)
    assert '<option value="rate_lpm" selected>' in text
    resp = c.post(f"/leaks/import/{key}", base_url=BASE, data={
        "csrf_token": "t", "action": "apply_preset", "preset": "Vendor X"})
    assert resp.status_code == 200 and "2 rows: 2 new" in resp.get_data(as_text=True)
    bad = c.post(f"/leaks/import/{key}", base_url=BASE, data={
        "csrf_token": "t", "action": "apply_preset", "preset": "Nope"})
    assert bad.status_code == 422 and "There is no preset" in bad.get_data(as_text=True)
    # The upload page offers it and refuses a preset that does not fit the file.
    up = c.get("/leaks/import", base_url=BASE).get_data(as_text=True)
    assert 'data-testid="import-preset"' in up and 'data-testid="preset-list"' in up
    wrong = c.post("/leaks/import", base_url=BASE, content_type="multipart/form-data", data={
        "csrf_token": "t", "preset": "Vendor X",
        "file": (io.BytesIO(b"Tag;Standort\r\n1;BER\r\n"), "other.csv")})
    assert wrong.status_code == 422 and "has no column" in wrong.get_data(as_text=True)


def _leakctl(config, *args):
    env = dict(os.environ)
    env.update({"LEAKHUB_HOME": str(Path(config.data_dir).parent),
                "LEAKHUB_PUBLIC_URL": "https://leakhub.test",
                "KEYCLOAK_URL": "http://127.0.0.1:9/auth", "LEAKHUB_TESTING": "1",
                "LEAKHUB_LOG_LEVEL": "WARNING", "DATABASE_URL": config.database_url})
    return subprocess.run([str(REPO / ".venv" / "bin" / "leakctl"), *args], env=env,
                          capture_output=True, text=True, timeout=120)


def test_leakctl_import_with_preset(actor, tree, config, tmp_path):
    service.save_preset(actor, "Vendor X", HEADERS, MAPPING)
    f = tmp_path / "vendor.csv"
    f.write_bytes(VENDOR.encode())
    database.close()
    out = _leakctl(config, "import", "leaks", "--org", actor.organization.slug, str(f),
                   "--preset", "Vendor X", "--json")
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["new"] == 2
    assert Leak.select().where(Leak.tag.in_(["701", "702"])).count() == 2
    missing = _leakctl(config, "import", "leaks", "--org", actor.organization.slug, str(f),
                       "--preset", "Nope")
    assert missing.returncode != 0 and "Nope" in missing.stderr
    assert len(missing.stderr.strip().splitlines()) == 1
    both = _leakctl(config, "import", "leaks", "--org", actor.organization.slug, str(f),
                    "--preset", "Vendor X", "--mapping", "{}")
    assert both.returncode != 0 and "choose one" in both.stderr
