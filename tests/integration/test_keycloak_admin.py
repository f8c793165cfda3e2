"""The Keycloak Admin REST client and the realm template against a real Keycloak.

Uses the shared ``stack`` fixture (tests/integration/conftest.py): ``stack.keycloak_url`` is the
internal base URL incl. ``/auth``, ``stack.public_url`` the public origin (Keycloak's
``KC_HOSTNAME`` is ``<public_url>/auth``), the service client secret is in
``<stack.home>/secrets/keycloak-service-client-secret``. Every test that needs a realm gets a
fresh one, deleted afterwards.
"""
from __future__ import annotations

import base64
import hashlib
import html
import json
import re
import secrets
import time
import uuid
from pathlib import Path

import pytest
import requests

from leakhub.identity.keycloak_admin import (
    API_AUDIENCE,
    KeycloakAdmin,
    KeycloakConflict,
    KeycloakError,
    KeycloakNotFound,
    KeycloakUnreachable,
    render_realm,
)

from support.kc import service_secret

pytestmark = pytest.mark.integration

SERVICE_CLIENT_ID = "leakhub-service"
REPO = Path(__file__).resolve().parents[2]
TEMPLATE = REPO / "compose" / "realm-template.json"
EXPECTED_POLICY = (
    "length(8) and hashAlgorithm(pbkdf2-sha512) and hashIterations(210000) and notUsername "
    "and notEmail and passwordBlacklist(leakhub-common-passwords.txt)"
)
BLOCKLIST = REPO / "compose" / "keycloak" / "password-blacklists" / "leakhub-common-passwords.txt"


def admin(stack) -> KeycloakAdmin:
    return KeycloakAdmin(stack.keycloak_url, SERVICE_CLIENT_ID, service_secret(stack))


def internal_url(stack) -> str:
    return getattr(stack, "internal_url", None) or "http://127.0.0.1:8000"


@pytest.fixture
def kc(stack):
    return admin(stack)


@pytest.fixture
def realm(stack, kc):
    """A fresh realm from the template; yields (slug, app client secret); deleted afterwards."""
    slug = f"kt-{uuid.uuid4().hex[:10]}"
    app_secret = secrets.token_urlsafe(32)
    kc.create_realm(
        render_realm(
            TEMPLATE,
            slug=slug,
            name=f"Test org {slug}",
            public_url=stack.public_url,
            internal_url=internal_url(stack),
            app_client_secret=app_secret,
        )
    )
    yield slug, app_secret
    try:
        kc.delete_realm(slug)
    except KeycloakNotFound:
        pass


def jwt_claims(token: str) -> dict:
    payload = token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))


def client_credentials(stack, slug, client_id, secret) -> requests.Response:
    return requests.post(
        f"{stack.keycloak_url}/realms/{slug}/protocol/openid-connect/token",
        data={"grant_type": "client_credentials", "client_id": client_id, "client_secret": secret},
        timeout=10,
    )


# ------------------------------------------------------------------ without a server


def test_render_realm_substitutes_inside_json_strings():
    rep = render_realm(
        TEMPLATE,
        slug="acme",
        name='ACME "Nord" \\ <Werk> ${ORG_SLUG}',
        public_url="https://leakhub.example.com/",
        internal_url="http://web:8000",
        app_client_secret="s" * 32,
    )
    assert rep["realm"] == "acme"
    # the name is data: quotes/backslashes survive, a placeholder inside it is not expanded
    assert rep["displayName"] == 'ACME "Nord" \\ <Werk> ${ORG_SLUG}'
    json.loads(json.dumps(rep))
    client = next(c for c in rep["clients"] if c["clientId"] == "leakhub")
    assert client["secret"] == "s" * 32
    assert client["redirectUris"] == ["https://leakhub.example.com/oidc/callback/acme"]
    assert client["webOrigins"] == ["https://leakhub.example.com"]
    attrs = client["attributes"]
    assert attrs["post.logout.redirect.uris"] == "https://leakhub.example.com/signed-out"
    assert attrs["backchannel.logout.url"] == "http://web:8000/oidc/backchannel-logout/acme"
    assert "${" not in json.dumps(rep).replace("${ORG_SLUG}", "")


@pytest.mark.parametrize(
    "kwargs, word",
    [
        ({"slug": "Bad Slug"}, "slug"),
        ({"slug": "master"}, "slug"),
        ({"name": ""}, "name"),
        ({"name": "a\nb"}, "name"),
        ({"public_url": "leakhub.example.com"}, "public_url"),
        ({"public_url": "https://x.example.com/?a=1"}, "public_url"),
        ({"internal_url": "ftp://web"}, "internal_url"),
        ({"app_client_secret": "short"}, "app_client_secret"),
    ],
)
def test_render_realm_rejects_bad_values(kwargs, word):
    args = dict(
        slug="acme",
        name="ACME",
        public_url="https://leakhub.example.com",
        internal_url="http://web:8000",
        app_client_secret="s" * 32,
    )
    args.update(kwargs)
    with pytest.raises(ValueError, match=word):
        render_realm(TEMPLATE, **args)


def test_unreachable_keycloak_fails_fast_with_one_line():
    secret = "never-shown-" + secrets.token_hex(8)
    kc = KeycloakAdmin("http://127.0.0.1:9/auth", SERVICE_CLIENT_ID, secret, timeout=3)
    started = time.monotonic()
    with pytest.raises(KeycloakUnreachable) as err:
        kc.ping()
    with pytest.raises(KeycloakUnreachable):
        kc.list_realms()
    assert time.monotonic() - started < 5
    text = str(err.value)
    assert text.startswith("Keycloak is not reachable at http://127.0.0.1:9/auth")
    assert "\n" not in text and secret not in text and secret not in repr(kc)


# ------------------------------------------------------------------ realm template


def test_realm_from_template_has_the_security_settings(stack, kc, realm):
    slug, _ = realm
    rep = kc.get_realm(slug)
    assert rep["enabled"] is True
    assert rep["displayName"] == f"Test org {slug}"
    assert rep["passwordPolicy"] == EXPECTED_POLICY
    assert rep["registrationAllowed"] is False
    # "Forgot password?" only with a mail server: off in the template, on at org creation and
    # setup when LEAKHUB_SMTP_HOST is set (test_reset_password_follows_the_smtp_settings).
    assert rep["resetPasswordAllowed"] is False
    assert rep["loginWithEmailAllowed"] is True
    assert rep["duplicateEmailsAllowed"] is False
    assert rep["sslRequired"] == "external"
    # brute force: lock after 3 failures, temporarily (60 s growing to 15 min)
    assert rep["bruteForceProtected"] is True
    assert rep["failureFactor"] == 3
    assert rep["permanentLockout"] is False
    assert rep["waitIncrementSeconds"] == 60
    assert rep["maxFailureWaitSeconds"] == 900
    assert rep["maxDeltaTimeSeconds"] == 43200
    assert rep["quickLoginCheckMilliSeconds"] == 1000
    # token and session lifetimes
    assert rep["accessTokenLifespan"] == 300
    assert rep["ssoSessionIdleTimeout"] == 1800
    assert rep["ssoSessionMaxLifespan"] == 43200
    # events
    assert rep["eventsEnabled"] is True
    assert rep["eventsExpiration"] == 2592000
    assert rep["adminEventsEnabled"] is True
    assert rep["adminEventsDetailsEnabled"] is True
    assert rep["attributes"]["adminEventsExpiration"] == "2592000"
    stored = set(kc.get_events_config(slug)["enabledEventTypes"])
    assert {"LOGIN", "LOGIN_ERROR", "LOGOUT", "UPDATE_PASSWORD", "UPDATE_CREDENTIAL",
            "CLIENT_LOGIN", "CLIENT_LOGIN_ERROR", "USER_DISABLED_BY_TEMPORARY_LOCKOUT"} <= stored
    headers = rep["browserSecurityHeaders"]
    assert headers["xFrameOptions"] == "SAMEORIGIN"
    assert "frame-ancestors 'self'" in headers["contentSecurityPolicy"]
    assert headers["xContentTypeOptions"] == "nosniff"


def test_app_client_is_confidential_pkce_with_exact_uris(stack, kc, realm):
    slug, app_secret = realm
    c = kc.get_client(slug, "leakhub")
    assert c["publicClient"] is False
    assert c["clientAuthenticatorType"] == "client-secret"
    assert c["secret"] == app_secret
    assert c["standardFlowEnabled"] is True
    assert c["implicitFlowEnabled"] is False
    assert c["directAccessGrantsEnabled"] is False
    assert c["serviceAccountsEnabled"] is False
    assert c["frontchannelLogout"] is False
    assert c["redirectUris"] == [f"{stack.public_url}/oidc/callback/{slug}"]
    assert c["webOrigins"] == [stack.public_url]
    a = c["attributes"]
    assert a["pkce.code.challenge.method"] == "S256"
    assert a["post.logout.redirect.uris"] == f"{stack.public_url}/signed-out"
    assert a["backchannel.logout.url"] == f"{internal_url(stack)}/oidc/backchannel-logout/{slug}"
    assert a["backchannel.logout.session.required"] == "true"
    assert a["backchannel.logout.revoke.offline.tokens"] == "true"
    aud = [m for m in c["protocolMappers"] if m["protocolMapper"] == "oidc-audience-mapper"]
    assert aud and aud[0]["config"]["included.custom.audience"] == API_AUDIENCE
    assert aud[0]["config"]["access.token.claim"] == "true"
    # the template must not have replaced Keycloak's default client scopes
    assert {"basic", "profile", "email", "roles"} <= set(c["defaultClientScopes"])


def test_creating_a_realm_twice_conflicts(stack, kc, realm):
    slug, _ = realm
    assert kc.realm_exists(slug)
    assert slug in [r["realm"] for r in kc.list_realms()]
    again = render_realm(TEMPLATE, slug=slug, name="Again", public_url=stack.public_url,
                         internal_url=internal_url(stack), app_client_secret="a" * 32)
    with pytest.raises(KeycloakConflict, match=slug):
        kc.create_realm(again)
    assert not kc.realm_exists(f"kt-missing-{uuid.uuid4().hex[:6]}")


def test_delete_realm(stack, kc):
    slug = f"kt-{uuid.uuid4().hex[:10]}"
    kc.create_realm(render_realm(TEMPLATE, slug=slug, name="Doomed", public_url=stack.public_url,
                                 internal_url=internal_url(stack), app_client_secret="d" * 32))
    kc.delete_realm(slug)
    assert not kc.realm_exists(slug)
    with pytest.raises(KeycloakNotFound):
        kc.delete_realm(slug)
    with pytest.raises(ValueError):
        kc.delete_realm("master")


def test_update_app_client_reapplies_urls_and_secret(stack, kc, realm):
    slug, _ = realm
    new_secret = secrets.token_urlsafe(32)
    kc.update_app_client(slug, public_url="https://moved.example.com", internal_url="http://web:8000",
                         secret=new_secret)
    c = kc.get_client(slug, "leakhub")
    assert c["redirectUris"] == [f"https://moved.example.com/oidc/callback/{slug}"]
    assert c["attributes"]["backchannel.logout.url"] == f"http://web:8000/oidc/backchannel-logout/{slug}"
    assert c["secret"] == new_secret
    # idempotent, and the secret never lands in admin events
    kc.update_app_client(slug, public_url="https://moved.example.com", internal_url="http://web:8000",
                         secret=new_secret)
    assert new_secret not in json.dumps(kc.get_admin_events(slug, max=1000))


# ------------------------------------------------------------------ service client


def test_service_client_token_is_cached_and_refreshed_after_401(stack, kc, realm):
    slug, _ = realm
    kc.get_realm(slug)
    first = kc._token
    kc.get_realm(slug)
    assert kc._token == first  # cached
    kc._token = "not-a-valid-token"  # as if Keycloak had revoked it
    assert kc.get_realm(slug)["realm"] == slug
    assert kc._token not in (None, "not-a-valid-token")


def test_bootstrap_is_idempotent_once_the_service_client_exists(stack):
    result = KeycloakAdmin.bootstrap_service_client(
        stack.keycloak_url,
        bootstrap_client_id="leakhub-bootstrap",
        bootstrap_client_secret="not-the-bootstrap-secret",
        service_client_id=SERVICE_CLIENT_ID,
        service_client_secret=service_secret(stack),
    )
    assert result == "exists"
    with pytest.raises(KeycloakError, match="Neither"):
        KeycloakAdmin.bootstrap_service_client(
            stack.keycloak_url,
            bootstrap_client_id="leakhub-bootstrap",
            bootstrap_client_secret="wrong",
            service_client_id=SERVICE_CLIENT_ID,
            service_client_secret="wrong",
        )


def test_wrong_service_secret_is_one_clear_line(stack):
    kc = KeycloakAdmin(stack.keycloak_url, SERVICE_CLIENT_ID, "wrong-secret-123")
    with pytest.raises(KeycloakError) as err:
        kc.list_realms()
    assert "rejected the credentials" in str(err.value)
    assert "wrong-secret-123" not in str(err.value)


# ------------------------------------------------------------------ users


def test_user_with_temporary_password_and_update_password(stack, kc, realm):
    slug, _ = realm
    email = f"Alice.{uuid.uuid4().hex[:6]}@Example.com"
    temp = "Temp-" + secrets.token_urlsafe(9)
    user_id = kc.create_user(slug, email=email, first_name="Alice", last_name="A",
                             temporary_password=temp)
    user = kc.get_user(slug, user_id)
    assert user["email"] == email.lower()  # Keycloak stores e-mail addresses lower-case
    assert user["enabled"] is True
    assert user["requiredActions"] == ["UPDATE_PASSWORD"]
    assert kc.find_user_by_email(slug, email.lower())["id"] == user_id
    assert kc.find_user_by_email(slug, "nobody@example.com") is None
    creds = kc._json("GET", f"/admin/realms/{slug}/users/{user_id}/credentials")
    data = json.loads(creds[0]["credentialData"])
    assert data == {"hashIterations": 210000, "algorithm": "pbkdf2-sha512",
                    "additionalParameters": {}}
    with pytest.raises(KeycloakConflict):
        kc.create_user(slug, email=email)
    # the temporary password is not in the admin events
    assert temp not in json.dumps(kc.get_admin_events(slug, max=1000))


def test_password_policy_rejections_name_the_rule_and_roll_back(stack, kc, realm):
    slug, _ = realm
    with pytest.raises(KeycloakError, match="minimum length 8") as err:
        kc.create_user(slug, email="short@example.com", temporary_password="Ab1-")
    assert err.value.status == 400
    assert kc.find_user_by_email(slug, "short@example.com") is None  # rolled back
    user_id = kc.create_user(slug, email="named@example.com")
    with pytest.raises(KeycloakError, match="username"):
        kc.reset_password(slug, user_id, "named@example.com")
    kc.reset_password(slug, user_id, "A-fine-password-42", temporary=False)


def test_blocklist_is_shipped_lower_case_with_english_and_german_entries():
    words = BLOCKLIST.read_text(encoding="utf-8").splitlines()
    assert len(words) >= 2000 and len(set(words)) == len(words)
    assert all(w and w == w.lower() and w.strip() == w for w in words)
    assert {"password1", "passwort", "hallo123", "schatz", "qwertz123", "letmein"} <= set(words)


@pytest.mark.parametrize("weak", ["password1", "Password1", "passwort123", "Hallo123",
                                  "qwertz123", "sommer2024"])
def test_common_passwords_are_refused(stack, kc, realm, weak):
    slug, _ = realm
    user_id = kc.create_user(slug, email=f"u{uuid.uuid4().hex[:6]}@example.com")
    with pytest.raises(KeycloakError, match="(?i)blacklist|blocklist|password") as err:
        kc.reset_password(slug, user_id, weak, temporary=False)
    assert err.value.status == 400
    with pytest.raises(KeycloakError):
        kc.create_user(slug, email=f"v{uuid.uuid4().hex[:6]}@example.com",
                       temporary_password=weak)


def test_username_and_email_are_refused_and_a_strong_password_is_accepted(stack, kc, realm):
    slug, _ = realm
    email = f"erika.{uuid.uuid4().hex[:6]}@example.com"
    user_id = kc.create_user(slug, email=email)
    username = kc.get_user(slug, user_id)["username"]
    for same in {username, email, email.upper()}:
        with pytest.raises(KeycloakError) as err:
            kc.reset_password(slug, user_id, same, temporary=False)
        assert err.value.status == 400
    kc.reset_password(slug, user_id, "Kompressor-Leck-" + secrets.token_hex(4), temporary=False)


def test_account_flow_refuses_a_common_new_password(stack, kc, realm):
    """The UPDATE_PASSWORD form at first sign-in (the flow an administrator goes through)."""
    slug, _ = realm
    email = f"admin.{uuid.uuid4().hex[:6]}@example.com"
    temp = "Temp-" + secrets.token_urlsafe(9)
    kc.create_user(slug, email=email, temporary_password=temp,
                   required_actions=("UPDATE_PASSWORD",))
    http = stack.requests_session()
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=")
    page = http.get(f"{stack.public_url}/auth/realms/{slug}/protocol/openid-connect/auth",
                    params={"client_id": "leakhub", "response_type": "code", "scope": "openid",
                            "redirect_uri": f"{stack.public_url}/oidc/callback/{slug}",
                            "code_challenge": challenge.decode(),
                            "code_challenge_method": "S256", "state": "s", "nonce": "n"},
                    timeout=30)
    assert page.status_code == 200, page.text[:300]
    action = html.unescape(re.search(r'action="([^"]+)"', page.text).group(1))
    form = http.post(action, data={"username": email, "password": temp, "credentialId": ""},
                     allow_redirects=True, timeout=30)
    assert 'name="password-new"' in form.text, form.text[:500]
    action = html.unescape(re.search(r'action="([^"]+)"', form.text).group(1))
    refused = http.post(action, data={"password-new": "password1", "password-confirm": "password1"},
                        allow_redirects=False, timeout=30)
    assert refused.status_code == 200 and 'name="password-new"' in refused.text
    assert re.search(r"(?i)blacklist|blocklist|password", refused.text)


def test_reset_password_follows_the_smtp_settings(stack, kc):
    """Org creation and `leakctl setup` (for existing realms) turn "Forgot password?" on only
    with LEAKHUB_SMTP_HOST, and setup brings an old realm's password policy and token
    settings up to date."""
    smtp = {"LEAKHUB_SMTP_HOST": "smtp.invalid", "LEAKHUB_SMTP_PORT": "2525"}
    with_mail = f"sm{uuid.uuid4().hex[:8]}"
    without = f"sn{uuid.uuid4().hex[:8]}"
    stack.leakctl("org", "create", "--slug", with_mail, "--name", "With mail",
                  "--admin-email", f"a@{with_mail}.example.com", env=smtp)
    stack.leakctl("org", "create", "--slug", without, "--name", "Without mail",
                  "--admin-email", f"a@{without}.example.com")
    assert kc.get_realm(with_mail)["resetPasswordAllowed"] is True
    assert kc.get_realm(without)["resetPasswordAllowed"] is False
    assert kc.get_realm(without)["passwordPolicy"] == EXPECTED_POLICY

    # A realm from before the blocklist and the token settings (reusable refresh tokens, a
    # lifetime changed in Keycloak's console): setup re-applies the template's policy and the
    # organization's stored token settings.
    kc._request("PUT", f"/admin/realms/{without}", json_body={
        "passwordPolicy": "length(8)", "revokeRefreshToken": False, "accessTokenLifespan": 900})
    stack.leakctl("setup", env=smtp)
    assert kc.get_realm(without)["resetPasswordAllowed"] is True
    assert kc.get_realm(without)["passwordPolicy"] == EXPECTED_POLICY
    realm = kc.get_realm(without)
    assert realm["revokeRefreshToken"] is True and realm["refreshTokenMaxReuse"] == 0
    assert realm["accessTokenLifespan"] == 300      # the stored default, 5 minutes
    stack.leakctl("setup")                       # idempotent, and back without mail
    stack.leakctl("setup")
    for slug in (with_mail, without):
        rep = kc.get_realm(slug)
        assert rep["resetPasswordAllowed"] is False and rep["passwordPolicy"] == EXPECTED_POLICY


def test_disable_user_and_logout(stack, kc, realm):
    slug, _ = realm
    user_id = kc.create_user(slug, email="bob@example.com", first_name="Bob",
                             temporary_password="Bob-temp-pass-1")
    kc.set_user_enabled(slug, user_id, False)
    user = kc.get_user(slug, user_id)
    assert user["enabled"] is False
    assert user["firstName"] == "Bob"  # a full update, nothing else lost
    kc.set_user_enabled(slug, user_id, True)
    assert kc.get_user(slug, user_id)["enabled"] is True
    kc.logout_user(slug, user_id)
    with pytest.raises(KeycloakNotFound):
        kc.get_user(slug, str(uuid.uuid4()))


# ------------------------------------------------------------------ device clients


def test_device_client_token_has_api_audience_and_public_issuer(stack, kc, realm):
    slug, _ = realm
    secret = kc.create_service_client(slug, "device-sn-0001", description="Detector SN 0001")
    resp = client_credentials(stack, slug, "device-sn-0001", secret)
    assert resp.status_code == 200, resp.text
    token = resp.json()["access_token"]
    assert "refresh_token" not in resp.json()

    # signature checks out against the realm's JWKS fetched over the internal URL
    from joserfc import jwt
    from joserfc.jwk import KeySet

    meta = requests.get(f"{stack.keycloak_url}/realms/{slug}/.well-known/openid-configuration",
                        timeout=10).json()
    issuer = f"{stack.public_url}/auth/realms/{slug}"
    assert meta["issuer"] == issuer
    jwks = requests.get(f"{stack.keycloak_url}/realms/{slug}/protocol/openid-connect/certs",
                        timeout=10).json()
    claims = jwt.decode(token, KeySet.import_key_set(jwks), algorithms=["RS256"]).claims
    assert claims["iss"] == issuer
    aud = claims["aud"] if isinstance(claims["aud"], list) else [claims["aud"]]
    assert API_AUDIENCE in aud
    assert claims["azp"] == "device-sn-0001"
    assert "email" not in claims and "preferred_username" not in claims  # data economy

    with pytest.raises(KeycloakConflict):
        kc.create_service_client(slug, "device-sn-0001")
    c = kc.get_client(slug, "device-sn-0001")
    assert c["serviceAccountsEnabled"] is True
    assert c["standardFlowEnabled"] is False and c["directAccessGrantsEnabled"] is False


def test_disabled_or_deleted_device_client_gets_no_token(stack, kc, realm):
    slug, _ = realm
    secret = kc.create_service_client(slug, "device-sn-0002")
    assert client_credentials(stack, slug, "device-sn-0002", secret).status_code == 200
    kc.set_client_enabled(slug, "device-sn-0002", False)
    assert client_credentials(stack, slug, "device-sn-0002", secret).status_code in (400, 401)
    kc.set_client_enabled(slug, "device-sn-0002", True)
    assert client_credentials(stack, slug, "device-sn-0002", secret).status_code == 200
    kc.delete_client(slug, "device-sn-0002")
    assert client_credentials(stack, slug, "device-sn-0002", secret).status_code in (400, 401)
    with pytest.raises(KeycloakNotFound):
        kc.delete_client(slug, "device-sn-0002")
    with pytest.raises(ValueError):
        kc.delete_client(slug, "leakhub")


# ------------------------------------------------------------------ events


def test_events_are_recorded_and_returned_oldest_first(stack, kc, realm):
    slug, _ = realm
    since = int(time.time() * 1000) - 1000
    secret = kc.create_service_client(slug, "device-sn-0003")
    assert client_credentials(stack, slug, "device-sn-0003", "wrong").status_code == 401
    assert client_credentials(stack, slug, "device-sn-0003", secret).status_code == 200
    events = kc.get_events(slug, date_from=since)
    types = [e["type"] for e in events]
    assert types.index("CLIENT_LOGIN_ERROR") < types.index("CLIENT_LOGIN")
    times = [e["time"] for e in events]
    assert times == sorted(times)
    assert all(e.get("id") for e in events)
    assert kc.get_events(slug, date_from=times[-1] + 1) == []
    admin_events = kc.get_admin_events(slug, date_from=since)
    assert ("CREATE", "CLIENT") in [(e["operationType"], e["resourceType"]) for e in admin_events]
    assert secret not in json.dumps(admin_events)


# ------------------------------------------------------------------ brute force, real login page


class _LoginPage:
    """Keycloak's login form through the internal URL. Keycloak marks its cookies Secure
    (the frontend URL is HTTPS), so they are kept and sent by hand over plain HTTP."""

    def __init__(self, stack, slug):
        self.stack, self.slug = stack, slug
        self.http = requests.Session()
        self.cookies: dict[str, str] = {}

    def _send(self, method, url, **kw):
        url = url.replace(f"{self.stack.public_url}/auth", self.stack.keycloak_url)
        headers = {"Cookie": "; ".join(f"{k}={v}" for k, v in self.cookies.items())}
        resp = self.http.request(method, url, headers=headers, allow_redirects=False,
                                 timeout=10, **kw)
        for raw in resp.raw.headers.getlist("Set-Cookie"):
            name, _, value = raw.split(";", 1)[0].partition("=")
            self.cookies[name.strip()] = value
        return resp

    def sign_in(self, username, password) -> requests.Response:
        verifier = secrets.token_urlsafe(48)
        challenge = base64.urlsafe_b64encode(
            hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
        auth = f"{self.stack.keycloak_url}/realms/{self.slug}/protocol/openid-connect/auth"
        page = self._send("GET", auth, params={
            "client_id": "leakhub", "response_type": "code", "scope": "openid",
            "redirect_uri": f"{self.stack.public_url}/oidc/callback/{self.slug}",
            "state": secrets.token_urlsafe(8), "nonce": secrets.token_urlsafe(8),
            "code_challenge": challenge, "code_challenge_method": "S256"})
        assert page.status_code == 200, page.status_code
        m = re.search(r'<form[^>]*id="kc-form-login"[^>]*action="([^"]+)"', page.text, re.S)
        assert m, page.text[:500]
        return self._send("POST", html.unescape(m.group(1)),
                          data={"username": username, "password": password, "credentialId": ""})


def test_three_failed_logins_lock_the_user(stack, kc, realm):
    slug, _ = realm
    password = "Good-pass-" + secrets.token_hex(4)
    user_id = kc.create_user(slug, email="carol@example.com", temporary_password=password)
    for _ in range(3):
        resp = _LoginPage(stack, slug).sign_in("carol@example.com", "wrong-password-1")
        assert resp.status_code == 200  # the form again, with an error
        time.sleep(1.2)  # slower than quickLoginCheckMilliSeconds: count as normal failures
    state = kc.get_login_failures(slug, user_id)
    assert state["numFailures"] == 3 and state["disabled"] is True
    # the right password does not get in while locked
    assert _LoginPage(stack, slug).sign_in("carol@example.com", password).status_code == 200
    events = [(e["type"], e.get("error")) for e in kc.get_events(slug)]
    assert events.count(("LOGIN_ERROR", "invalid_user_credentials")) == 3
    assert ("USER_DISABLED_BY_TEMPORARY_LOCKOUT", None) in events
    assert ("LOGIN_ERROR", "user_temporarily_disabled") in events
    # an administrator unlocks; the right password then leads on (to UPDATE_PASSWORD)
    kc.clear_login_failures(slug, user_id)
    resp = _LoginPage(stack, slug).sign_in("carol@example.com", password)
    assert resp.status_code == 302
    assert "required-action" in resp.headers["Location"]
