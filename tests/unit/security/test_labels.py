"""The security page shows event kinds and sources through the label table (issue 14)."""
import re
from pathlib import Path

import leakhub
from leakhub.security.keycloak_sync import LOGIN_TYPES
from leakhub.security.models import KINDS, SOURCES, SecurityEvent
from leakhub.security.views import KIND_LABELS, SOURCE_LABELS, kind_label, source_label

from support.session import sign_in


def test_every_stored_kind_and_source_has_a_label():
    assert set(KIND_LABELS) == set(KINDS)
    assert set(SOURCE_LABELS) == set(SOURCES)
    assert kind_label("something_new") == "something_new"
    assert source_label("elsewhere") == "elsewhere"


def test_every_kind_the_code_records_is_offered_and_labelled():
    recorded = set(LOGIN_TYPES.values()) | {"csrf_rejected", "access_denied", "rate_limited"}
    call = re.compile(r'\brecord(?:_security_event)?\(\s*"([a-z_]+)"')
    for path in Path(leakhub.__file__).parent.rglob("*.py"):
        recorded.update(call.findall(path.read_text(encoding="utf-8")))
    sync = (Path(leakhub.__file__).parent / "security" / "keycloak_sync.py").read_text("utf-8")
    for a, b in re.findall(r'\bkind="([a-z_]+)"|"kind": "([a-z_]+)"', sync):
        recorded.add(a or b)
    assert {"ip_denied", "sign_in", "lockout", "session_expired"} <= recorded
    assert recorded - set(KINDS) == set()


def _page(client, org, make_user, language):
    admin = make_user("admin")
    admin.language = language
    admin.save()
    sign_in(client, admin)
    SecurityEvent.create(organization=org, kind="sign_in_failed", source="keycloak",
                         username="bob@acme.test")
    return client.get("/security").get_data(as_text=True)


def test_security_page_in_german(client, org, make_user):
    page = _page(client, org, make_user, "de")
    assert "Fehlgeschlagene Anmeldung" in page and "Anmeldedienst (Keycloak)" in page
    assert "Formularprüfung fehlgeschlagen (CSRF)" in page       # the kind filter's options
    assert '<option value="sign_in_failed"' in page              # filters still send names
    assert '<option value="keycloak"' in page
    assert ">sign_in_failed<" not in page and ">keycloak<" not in page


def test_security_page_in_english(client, org, make_user):
    page = _page(client, org, make_user, "en")
    assert "Failed sign-in" in page and "Sign-in service (Keycloak)" in page
    assert ">sign_in_failed<" not in page
