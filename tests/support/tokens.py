"""API tokens the way Leakhub's own sign-in gets them, for the integration tests and
bench/bench_load.py: the authorization-code flow with PKCE (S256) of the realm's confidential
`leakhub` client through the real Keycloak login page, the code exchanged with the client
secret read from Leakhub's database; `Person` keeps a token fresh, `api` calls /api/v1."""
from __future__ import annotations

import base64
import hashlib
import json
import secrets
import time
import uuid
from dataclasses import dataclass
from urllib.parse import parse_qs, urljoin, urlsplit

from support.kc import form_action
from support.stackctl import sql

API = "/api/v1"


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def client_secret(stack, slug) -> str:
    (secret,), = sql(stack, "SELECT oidc_client_secret FROM organization WHERE slug = %s", slug)
    return secret


def code_flow(stack, slug, email, password) -> tuple[dict, str]:
    """Authorization code + PKCE through the real login page. Returns (token response,
    the password now valid — a one-time password is replaced when Keycloak asks)."""
    http = stack.requests_session()
    verifier = secrets.token_urlsafe(48)
    challenge = b64url(hashlib.sha256(verifier.encode()).digest())
    state = secrets.token_urlsafe(16)
    redirect_uri = f"{stack.public_url}/oidc/callback/{slug}"
    realm = f"{stack.public_url}/auth/realms/{slug}/protocol/openid-connect"
    page = http.get(f"{realm}/auth", params={
        "client_id": "leakhub", "response_type": "code", "scope": "openid",
        "redirect_uri": redirect_uri, "state": state, "nonce": secrets.token_urlsafe(16),
        "code_challenge": challenge, "code_challenge_method": "S256"})
    assert page.status_code == 200 and 'name="password"' in page.text, page.text[:500]

    def within_keycloak(resp):
        # Follow Keycloak's own redirects (required actions), never the one to the app.
        while resp.status_code in (302, 303) and \
                urljoin(resp.url, resp.headers["Location"]).startswith(f"{realm_base}/"):
            resp = http.get(urljoin(resp.url, resp.headers["Location"]), allow_redirects=False)
        return resp

    realm_base = f"{stack.public_url}/auth/realms/{slug}"
    resp = within_keycloak(http.post(form_action(page.text), allow_redirects=False, data={
        "username": email, "password": password, "credentialId": ""}))
    if resp.status_code == 200 and ("kc-passwd-update-form" in resp.text
                                    or "password-new" in resp.text):
        password = "N3w-" + secrets.token_urlsafe(12)
        resp = within_keycloak(http.post(
            form_action(resp.text), data={"password-new": password, "password-confirm": password},
            allow_redirects=False))
    assert resp.status_code in (302, 303), (resp.status_code, resp.text[:500])
    location = resp.headers["Location"]
    assert location.startswith(redirect_uri + "?"), location   # not followed: we keep the code
    query = parse_qs(urlsplit(location).query)
    assert query["state"] == [state]
    token = http.post(f"{realm}/token", data={
        "grant_type": "authorization_code", "code": query["code"][0],
        "redirect_uri": redirect_uri, "code_verifier": verifier, "client_id": "leakhub",
        "client_secret": client_secret(stack, slug)})
    assert token.status_code == 200, token.text
    return token.json(), password


@dataclass
class Person:
    slug: str
    email: str
    password: str
    _tokens: dict | None = None
    _at: float = 0.0

    def tokens(self, stack) -> dict:
        if self._tokens is None or time.monotonic() - self._at > 200:  # lifespan 300 s
            self._tokens, self.password = code_flow(stack, self.slug, self.email, self.password)
            self._at = time.monotonic()
        return self._tokens

    def token(self, stack) -> str:
        return self.tokens(stack)["access_token"]


def invite(stack, slug, role) -> Person:
    email = f"{role}-{uuid.uuid4().hex[:6]}@{slug}.example.com"
    out = stack.leakctl("user", "invite", "--org", slug, "--email", email, "--role", role,
                        "--json")
    data = json.loads(out.stdout)
    return Person(slug, email, data["one_time_password"])


def api(stack, method, path, token=None, **kw):
    http = stack.requests_session()
    headers = kw.pop("headers", {})
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    return http.request(method, stack.public_url + API + path, headers=headers, timeout=30,
                        allow_redirects=False, **kw)
