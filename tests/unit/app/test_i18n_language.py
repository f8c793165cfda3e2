"""Issue 14, phase 2: the language per user (stored in Leakhub, copied to Keycloak's locale
attribute, chosen in that order: the user's, the organization's, the browser's) and the one
number parser of forms, imports and the API ("6.000"/"6,000" in both languages). Keycloak is
faked at the edge (identity.keycloak.admin_client)."""
import json
from decimal import Decimal as D

import pytest
from werkzeug.datastructures import LanguageAccept

import leakhub.identity.keycloak as keycloak
from leakhub.audit.models import AuditEntry
from leakhub.authz import Actor
from leakhub.core.i18n import numbers_in, select_locale
from leakhub.core.validation import Fields, ValidationError, parse_decimal, parse_int
from leakhub.identity.keycloak_admin import KeycloakError
from leakhub.identity.models import User
from leakhub.imports import service as imports
from leakhub.leaks.models import Leak
from leakhub.locations import service as loc
from leakhub.users import service


class FakeKeycloak:
    def __init__(self):
        self.calls, self.fail = [], False

    def set_user_locale(self, realm, user_id, locale):
        self.calls.append((realm, user_id, locale))
        if self.fail:
            raise KeycloakError("set locale: Keycloak answered HTTP 500")


@pytest.fixture
def kc(monkeypatch):
    fake = FakeKeycloak()
    monkeypatch.setattr(keycloak, "admin_client", lambda config: fake)
    return fake


def accept(*langs):
    return LanguageAccept([(lang, 1.0 - i / 10) for i, lang in enumerate(langs)])


# ------------------------------------------------------------------ locale selection order

def test_locale_order_user_then_organization_then_browser():
    assert select_locale("de", "en", accept("en")) == "de"
    assert select_locale(None, "de", accept("en")) == "de"
    assert select_locale("", "en", accept("de")) == "en"
    assert select_locale(None, None, accept("fr", "de-AT", "en")) == "de"
    assert select_locale(None, None, accept("fr")) == "en"
    assert select_locale(None, None, None) == "en"
    assert select_locale("xx", "de") == "de"  # an unknown stored value is skipped


def test_pages_speak_the_users_language_over_the_organizations(org, make_user, login, app):
    german = make_user("admin")
    german.language = "de"
    german.save()
    english = make_user("admin")
    page = login(german).get("/leaks", headers={"Accept-Language": "en"}).get_data(as_text=True)
    assert 'lang="de"' in page and "Leckagen" in page
    page = login(english, app.test_client()).get("/leaks").get_data(as_text=True)
    assert 'lang="en"' in page                      # the organization's (en), not the browser's
    org.language = "de"
    org.save()
    page = login(english, app.test_client()).get("/leaks").get_data(as_text=True)
    assert 'lang="de"' in page
    anonymous = app.test_client().get("/no-such-page",
                                      headers={"Accept-Language": "de-DE,de;q=0.9"})
    assert 'lang="de"' in anonymous.get_data(as_text=True)


# ------------------------------------------------------------------ the user's choice

def test_choice_is_stored_audited_and_sent_to_keycloak(config, org, make_user, login, kc):
    user = make_user("viewer")
    c = login(user)
    page = c.get("/account/sessions").get_data(as_text=True)
    assert 'data-testid="language-form"' in page and "As the organization (English)" in page
    resp = c.post("/account/language", data={"csrf_token": "t", "language": "de"})
    assert resp.status_code == 302
    assert User.get_by_id(user.id).language == "de"
    assert kc.calls == [("acme", user.sub, "de")]
    entry = AuditEntry.get(AuditEntry.action == "user.language_changed")
    assert entry.entity_id == user.id and json.loads(entry.changes) == {"language": [None, "de"]}
    page = c.get("/account/sessions").get_data(as_text=True)
    assert 'lang="de"' in page and "Sprache gespeichert." in page
    # Back to the organization's language: stored as NULL, Keycloak gets the organization's.
    c.post("/account/language", data={"csrf_token": "t", "language": ""})
    assert User.get_by_id(user.id).language is None
    assert kc.calls[-1] == ("acme", user.sub, "en")


def test_unknown_language_is_a_422_naming_the_field(org, make_user, login, kc):
    user = make_user("viewer")
    resp = login(user).post("/account/language", data={"csrf_token": "t", "language": "fr"})
    assert resp.status_code == 422
    assert 'data-testid="error-language"' in resp.get_data(as_text=True)
    assert User.get_by_id(user.id).language is None and kc.calls == []


def test_keycloak_down_keeps_the_choice_and_warns(config, org, make_user, kc):
    user = make_user("editor")
    kc.fail = True
    actor = Actor(organization=org, kind="user", user=user)
    saved, warning = service.set_language(config, actor, "de")
    assert saved.language == "de" and User.get_by_id(user.id).language == "de"
    assert warning and "sign-in service" in warning


def test_language_change_needs_the_csrf_token(org, make_user, login, kc):
    user = make_user("viewer")
    resp = login(user).post("/account/language", data={"language": "de"})
    assert resp.status_code == 403 and User.get_by_id(user.id).language is None


# ------------------------------------------------------------------ one number parser

@pytest.mark.parametrize("text,de,en", [
    ("6.000", D("6000"), D("6")),
    ("6,000", D("6"), D("6000")),
    ("1.234,5", D("1234.5"), None),
    ("1,234.5", None, D("1234.5")),
    ("12,5", D("12.5"), D("12.5")),      # a lone separator before other than 3 digits: decimal
    ("12.5", D("12.5"), D("12.5")),
    ("0.500", D("0.5"), D("0.5")),       # a leading zero is never a thousands group
    ("1.234.567", D("1234567"), None),
    ("1,234,567", None, D("1234567")),
    ("-1.000,25", D("-1000.25"), None),
    ("1 234,5", D("1234.5"), D("1234.5")),
    ("12,5,0", None, None),
])
def test_parse_decimal_in_both_languages(text, de, en):
    for locale, expected in (("de", de), ("en", en)):
        if expected is None:
            with pytest.raises(ValidationError) as exc:
                parse_decimal(text, "rate", locale)
            assert "rate" in exc.value.errors
        else:
            assert parse_decimal(text, "rate", locale) == expected


def test_whole_numbers_accept_thousands_separators():
    assert parse_int("6.000", "h", "de") == 6000
    assert parse_int("6,000", "h", "en") == 6000
    assert parse_int("8760", "h", "de") == 8760
    with pytest.raises(ValidationError):
        parse_int("6,5", "h", "de")


def test_fields_follow_the_active_number_locale():
    with numbers_in("de"):
        f = Fields({"hours": "6.000", "rate": "6,000"})
        assert f.integer("hours") == 6000 and f.decimal("rate") == D("6")
    with numbers_in("en"):
        f = Fields({"hours": "6,000", "rate": "6.000"})
        assert f.integer("hours") == 6000 and f.decimal("rate") == D("6")
    assert parse_decimal(6000) == D("6000") and parse_decimal(12.5) == D("12.5")  # JSON


@pytest.fixture
def world(org, make_user):
    admin = make_user("admin")
    a = Actor(organization=org, kind="user", user=admin)
    site = loc.create_location(a, kind="site", code="BER", name="Werk Berlin")
    hall = loc.create_location(a, kind="building", code="H1", name="Halle 1", parent=site)
    return {"actor": a, "admin": admin, "hall": hall}


def form(world, **kw):
    data = {"csrf_token": "t", "location": str(world["hall"].id), "found_at": "2024-03-05T10:15",
            "method": "device", "rate_lpm": "12,5", "component": "hose", "priority": "2",
            "gas": "air", "status": "open"}
    data.update(kw)
    return data


def test_leak_form_reads_6000_per_user_language(world, login, app):
    admin = world["admin"]
    c = login(admin)
    assert c.post("/leaks/new", data=form(world, tag="1", rate_lpm="6.000")).status_code == 302
    admin.language = "de"
    admin.save()
    assert c.post("/leaks/new", data=form(world, tag="2", rate_lpm="6.000")).status_code == 302
    rates = {leak.tag: leak.rate_lpm for leak in Leak.select()}
    assert rates == {"1": D("6"), "2": D("6000")}
    # The German form shows the stored 1,25 back with a decimal comma (and reads it again).
    leak = Leak.get(Leak.tag == "2")
    leak.rate_lpm = D("1.234")
    leak.save()
    page = c.get(f"/leaks/{leak.id}/edit").get_data(as_text=True)
    assert 'value="1,234"' in page


def test_import_reads_numbers_in_the_files_convention(world):
    actor = world["actor"]
    german = ("Leckage-Nr;Ort;Datum;Leckrate l/min;Bauteil\r\n"
              "11;BER/H1;05.03.2024;6.000;Schlauch\r\n12;BER/H1;05.03.2024;6,000;Schlauch\r\n")
    english = ('Tag,Location,Found at,Leak rate l/min,Component\r\n'
               '21,BER/H1,2024-03-05,"6,000",hose\r\n22,BER/H1,2024-03-05,6.000,hose\r\n')
    for text in (german, english):
        result = imports.run_import(actor, text.encode(), "leaks.csv")
        assert result.errors == [] and result.committed, result.errors
    rates = {leak.tag: leak.rate_lpm for leak in Leak.select()}
    assert rates == {"11": D("6000"), "12": D("6"), "21": D("6000"), "22": D("6")}


def test_tab_separated_import_follows_the_users_language(world):
    actor = world["actor"]
    text = ("Tag\tLocation\tFound at\tLeak rate l/min\tComponent\r\n"
            "31\tBER/H1\t2024-03-05\t6.000\those\r\n")
    world["admin"].language = "de"
    result = imports.run_import(actor, text.encode(), "leaks.csv")
    assert result.committed, result.errors
    assert Leak.get(Leak.tag == "31").rate_lpm == D("6000")
    assert imports.file_number_locale(Actor(organization=actor.organization, kind="user",
                                            user=None), "\t") == "en"


def test_api_documents_json_numbers_and_english_strings(client):
    info = client.get("/api/v1/openapi.json").json["info"]["description"]
    assert "JSON numbers" in info and '"6,000" is six thousand' in info
