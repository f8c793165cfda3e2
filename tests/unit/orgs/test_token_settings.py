"""Token settings per organization (issue 15 part 7): bounds, the realm attributes, the page
and `leakctl org set`, all-or-nothing with Keycloak (faked at identity.keycloak.admin_client)."""
import json
import re

import pytest
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st

import leakhub.identity.keycloak as keycloak
from leakhub.audit.models import AuditEntry
from leakhub.cli import cli
from leakhub.core.validation import ValidationError
from leakhub.identity.keycloak_admin import KeycloakError
from leakhub.orgs import tokens
from leakhub.orgs.models import Organization


class FakeKeycloak:
    def __init__(self):
        self.realms = {}
        self.fail = False

    def set_token_settings(self, realm, body):
        if self.fail:
            raise KeycloakError("Keycloak is unreachable")
        self.realms.setdefault(realm, {}).update(body)


@pytest.fixture
def kc(monkeypatch):
    fake = FakeKeycloak()
    monkeypatch.setattr(keycloak, "admin_client", lambda config: fake)
    return fake


def csrf(data=None):
    return {"csrf_token": "t", **(data or {})}


GOOD = {"access_token_minutes": "10", "session_hours": "8", "remember_me": "on",
        "remember_me_days": "20"}


def test_realm_settings_are_seconds_with_rotation():
    body = tokens.realm_settings(tokens.validate(GOOD))
    assert body == {"accessTokenLifespan": 600, "ssoSessionIdleTimeout": 1800,
                    "ssoSessionMaxLifespan": 8 * 3600, "rememberMe": True,
                    "ssoSessionIdleTimeoutRememberMe": 7 * 86400,
                    "ssoSessionMaxLifespanRememberMe": 20 * 86400,
                    "revokeRefreshToken": True, "refreshTokenMaxReuse": 0}


@settings(max_examples=60, deadline=None)
@given(minutes=st.integers(-5, 40), hours=st.integers(-2, 40), days=st.integers(-2, 60))
def test_bounds_are_enforced(minutes, hours, days):
    form = {"access_token_minutes": str(minutes), "session_hours": str(hours),
            "remember_me_days": str(days)}
    inside = 1 <= minutes <= 15 and 1 <= hours <= 24 and 1 <= days <= 30
    try:
        values = tokens.validate(form)
    except ValidationError as exc:
        assert not inside
        assert set(exc.errors) <= set(tokens.BOUNDS)
    else:
        assert inside
        body = tokens.realm_settings(values)
        assert 60 <= body["accessTokenLifespan"] <= 900
        assert body["ssoSessionIdleTimeout"] <= body["ssoSessionMaxLifespan"] <= 86400
        assert (body["ssoSessionIdleTimeoutRememberMe"]
                <= body["ssoSessionMaxLifespanRememberMe"] <= 30 * 86400)
        assert body["revokeRefreshToken"] is True and body["refreshTokenMaxReuse"] == 0


def test_bad_values_name_the_field():
    with pytest.raises(ValidationError) as exc:
        tokens.validate({**GOOD, "access_token_minutes": "60", "remember_me": "maybe",
                         "session_hours": "x"})
    assert set(exc.value.errors) == {"access_token_minutes", "remember_me", "session_hours"}


def test_page_saves_applies_and_audits(app, org, kc, make_user, login):
    admin = make_user("admin")
    client = login(admin, app.test_client())
    page = client.get("/organization/settings").get_data(as_text=True)
    assert 'data-testid="token-settings"' in page
    resp = client.post("/organization/tokens", data=csrf(GOOD))
    assert resp.status_code == 302
    org = Organization.get_by_id(org.id)
    assert (org.access_token_minutes, org.session_hours, org.remember_me,
            org.remember_me_days) == (10, 8, True, 20)
    assert kc.realms["acme"]["accessTokenLifespan"] == 600
    (ev,) = AuditEntry.select().where(AuditEntry.action == "settings.changed")
    assert json.loads(ev.changes)["access_token_minutes"] == [5, 10]
    # out of bounds: the settings page again (422) with the message at the field and every
    # value as typed; nothing changed
    resp = client.post("/organization/tokens",
                       data=csrf({**GOOD, "access_token_minutes": "99", "session_hours": "7"}))
    assert resp.status_code == 422
    page = resp.get_data(as_text=True)
    assert 'data-testid="error-access_token_minutes"' in page and "at most 15" in page
    assert re.search(r'name="access_token_minutes"[^>]*value="99"[^>]*aria-invalid="true"', page)
    assert re.search(r'name="session_hours"[^>]*value="7"', page)
    assert Organization.get_by_id(org.id).access_token_minutes == 10
    assert Organization.get_by_id(org.id).session_hours == 8


def test_keycloak_down_keeps_the_typed_values(app, org, kc, make_user, login):
    client = login(make_user("admin"), app.test_client())
    kc.fail = True
    resp = client.post("/organization/tokens", data=csrf({**GOOD, "remember_me_days": "3"}))
    assert resp.status_code == 502
    page = resp.get_data(as_text=True)
    assert 'data-testid="token-errors"' in page
    assert re.search(r'name="remember_me_days"[^>]*value="3"', page)
    assert Organization.get_by_id(org.id).remember_me_days == 14
    assert not AuditEntry.select().where(AuditEntry.action == "settings.changed").exists()


def test_editor_cannot_change_tokens(app, org, kc, make_user, login):
    client = login(make_user("editor"), app.test_client())
    assert client.post("/organization/tokens", data=csrf(GOOD)).status_code == 403
    assert kc.realms == {}


def test_cli_org_set(app, org, kc):
    runner = CliRunner()
    result = runner.invoke(cli, ["org", "set", "--org", "acme", "--access-token-minutes", "3",
                                 "--remember-me", "on", "--json"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert json.loads(result.output) == {"organization": "acme", "access_token_minutes": 3,
                                         "session_hours": 12, "remember_me": True,
                                         "remember_me_days": 14}
    assert kc.realms["acme"]["rememberMe"] is True
    # out of bounds: non-zero exit naming the field, nothing changed
    result = runner.invoke(cli, ["org", "set", "--org", "acme", "--access-token-minutes", "0"])
    assert result.exit_code != 0
    assert "access_token_minutes" in (result.output + str(result.exception))
    # Keycloak down: nothing changed in Leakhub either
    kc.fail = True
    result = runner.invoke(cli, ["org", "set", "--org", "acme", "--session-hours", "2"])
    assert result.exit_code != 0
    assert Organization.get(Organization.slug == "acme").session_hours == 12
