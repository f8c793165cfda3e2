"""Issue 14 against the real Keycloak: realms speak de and en (template, and `leakctl setup`'s
update of older realms), and a user's language reaches the Keycloak user's locale attribute,
so Keycloak's own pages follow it."""
from __future__ import annotations

import secrets
import uuid
from pathlib import Path

import pytest
import requests

from leakhub.identity.keycloak_admin import KeycloakAdmin, KeycloakNotFound, render_realm

from support.kc import service_secret

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
TEMPLATE = REPO / "compose" / "realm-template.json"


@pytest.fixture
def kc(stack):
    secret = service_secret(stack)
    return KeycloakAdmin(stack.keycloak_url, "leakhub-service", secret)


@pytest.fixture
def realm(stack, kc):
    slug = f"ki-{uuid.uuid4().hex[:10]}"
    kc.create_realm(render_realm(
        TEMPLATE, slug=slug, name=f"Test org {slug}", public_url=stack.public_url,
        internal_url=getattr(stack, "internal_url", None) or "http://127.0.0.1:8000",
        app_client_secret=secrets.token_urlsafe(32)))
    yield slug
    try:
        kc.delete_realm(slug)
    except KeycloakNotFound:
        pass


def test_realm_speaks_de_and_en_and_setup_restores_it(kc, realm):
    rep = kc.get_realm(realm)
    assert rep["internationalizationEnabled"] is True
    assert set(rep["supportedLocales"]) == {"de", "en"} and rep["defaultLocale"] == "en"
    # A realm made before issue 14 (no internationalization): leakctl setup's update fixes it.
    kc._request("PUT", f"/admin/realms/{realm}",
                json_body={"internationalizationEnabled": False, "supportedLocales": []})
    assert kc.get_realm(realm)["internationalizationEnabled"] is False
    kc.update_realm_policies(realm, template_path=TEMPLATE, reset_password_allowed=False)
    rep = kc.get_realm(realm)
    assert rep["internationalizationEnabled"] is True
    assert set(rep["supportedLocales"]) == {"de", "en"}


def test_user_locale_attribute_set_changed_and_removed(stack, kc, realm):
    user_id = kc.create_user(realm, email=f"anna.{uuid.uuid4().hex[:6]}@example.com")
    kc.set_user_locale(realm, user_id, "de")
    user = kc.get_user(realm, user_id)
    assert user["attributes"]["locale"] == ["de"]
    assert user["email"].startswith("anna.")            # the rest of the user is kept
    kc.set_user_locale(realm, user_id, "en")
    assert kc.get_user(realm, user_id)["attributes"]["locale"] == ["en"]
    kc.set_user_locale(realm, user_id, None)
    assert "locale" not in (kc.get_user(realm, user_id).get("attributes") or {})
    with pytest.raises(ValueError):
        kc.set_user_locale(realm, user_id, "de'; drop")


def test_sign_in_page_is_german_for_de(stack, kc, realm):
    params = {"client_id": "leakhub", "response_type": "code", "scope": "openid",
              "redirect_uri": f"{stack.public_url}/oidc/callback/{realm}",
              "code_challenge": "x" * 43, "code_challenge_method": "S256"}
    url = f"{stack.keycloak_url}/realms/{realm}/protocol/openid-connect/auth"
    german = requests.get(url, params={**params, "ui_locales": "de"}, timeout=20, verify=False)
    english = requests.get(url, params={**params, "ui_locales": "en"}, timeout=20, verify=False)
    assert german.status_code == 200 and english.status_code == 200
    assert "Passwort" in german.text and "Password" in english.text
