"""The JSON API with REAL Keycloak access tokens, and attacks on them (DESIGN §3.5).

Tokens are obtained the way Leakhub's own sign-in gets them — the authorization-code flow
with PKCE (S256) of the realm's confidential `leakhub` client through the real Keycloak login
page (direct grants stay disabled) — but the code is exchanged by the test itself, with the
client secret read from Leakhub's database. Every forged or foreign token must get 401; a
valid token of another organization authenticates as that organization and sees only its
data; disabling a user in Leakhub's database ends API access at the next request although
the token is still valid. (Expiry beyond the leeway: tests/unit/identity/test_tokens.py and
tests/unit/api/test_resources.py, with locally signed tokens.)
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time
import uuid

import pytest

from support.kc import new_org, service_secret
from support.stackctl import sql
from support.tokens import Person, api, b64url, invite

pytestmark = pytest.mark.integration

# ---------------------------------------------------------------- helpers

def b64json(obj) -> str:
    return b64url(json.dumps(obj, separators=(",", ":")).encode())


def unb64json(part: str) -> dict:
    return json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))


def assert_401(resp, what):
    assert resp.status_code == 401, (what, resp.status_code, resp.text[:300])
    assert resp.headers["Content-Type"].startswith("application/problem+json"), what
    assert resp.headers.get("WWW-Authenticate", "").startswith("Bearer"), what
    return resp


# ---------------------------------------------------------------- organizations

@pytest.fixture(scope="module")
def org_a(stack):
    slug, email, otp = new_org(stack, "apia")
    admin = Person(slug, email, otp)
    token = admin.token(stack)
    site = api(stack, "POST", "/locations", token, json={"kind": "site", "code": "S1",
                                                         "name": "Werk Alpha"})
    assert site.status_code == 201, site.text
    leak = api(stack, "POST", "/leaks", token, json={
        "location": site.json()["id"], "found_at": "2024-03-01T08:00:00Z", "rate_lpm": 12.5,
        "description": "GEHEIM-ALPHA"})
    assert leak.status_code == 201, leak.text
    return {"slug": slug, "admin": admin, "site": site.json(), "leak": leak.json(),
            "viewer": invite(stack, slug, "viewer")}


@pytest.fixture(scope="module")
def org_b(stack):
    slug, email, otp = new_org(stack, "apib")
    return {"slug": slug, "admin": Person(slug, email, otp)}


def realm_public_key(stack, slug, kid):
    from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicNumbers

    jwks = stack.requests_session().get(
        f"{stack.public_url}/auth/realms/{slug}/protocol/openid-connect/certs").json()
    jwk = next(k for k in jwks["keys"] if k["kid"] == kid)

    def num(v):
        return int.from_bytes(base64.urlsafe_b64decode(v + "=" * (-len(v) % 4)), "big")
    return RSAPublicNumbers(num(jwk["e"]), num(jwk["n"])).public_key()


def hs256(header: dict, payload: dict, secret: bytes) -> str:
    signing_input = f"{b64json(header)}.{b64json(payload)}"
    sig = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{b64url(sig)}"


# ---------------------------------------------------------------- tests

def test_real_user_token_works_and_carries_what_leakhub_checks(stack, org_a):
    token = org_a["admin"].token(stack)
    head, payload, _sig = token.split(".")
    header, claims = unb64json(head), unb64json(payload)
    assert header["alg"] in ("RS256", "PS256", "ES256") and header.get("kid")
    assert claims["iss"] == f"{stack.public_url}/auth/realms/{org_a['slug']}"
    aud = claims["aud"] if isinstance(claims["aud"], list) else [claims["aud"]]
    assert "leakhub-api" in aud and claims["azp"] == "leakhub"
    resp = api(stack, "GET", "/leaks", token)
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["total"] == 1 and body["items"][0]["description"] == "GEHEIM-ALPHA"
    got = api(stack, "GET", f"/leaks/{org_a['leak']['id']}", token)
    assert got.status_code == 200 and got.json()["rate_lpm"] == 12.5
    assert got.json()["found_at"] == "2024-03-01T08:00:00Z"
    # the OpenAPI document is public
    doc = api(stack, "GET", "/openapi.json")
    assert doc.status_code == 200 and doc.json()["openapi"].startswith("3.1")


def test_roles_come_from_leakhub_not_the_token(stack, org_a):
    viewer = org_a["viewer"]
    token = viewer.token(stack)
    assert api(stack, "GET", "/leaks", token).status_code == 200
    resp = api(stack, "POST", "/locations", token, json={"kind": "site", "code": "V",
                                                         "name": "nope"})
    assert resp.status_code == 403, resp.text
    # promoted in Leakhub's database: the same token may write at its next request
    sql(stack, 'UPDATE "user" SET role = %s WHERE email = %s', "editor", viewer.email)
    try:
        resp = api(stack, "POST", "/locations", token, json={"kind": "site", "code": "V",
                                                             "name": "now yes"})
        assert resp.status_code == 201, resp.text
        assert api(stack, "DELETE", f"/locations/{resp.json()['id']}", token).status_code == 204
        # role removed (waiting for access): 403
        sql(stack, 'UPDATE "user" SET role = NULL WHERE email = %s', viewer.email)
        assert api(stack, "GET", "/leaks", token).status_code == 403
    finally:
        sql(stack, 'UPDATE "user" SET role = %s WHERE email = %s', "viewer", viewer.email)


def test_forged_tokens_are_refused(stack, org_a, org_b):
    token = org_a["admin"].token(stack)
    head, payload, sig = token.split(".")
    header, claims = unb64json(head), unb64json(payload)
    leak_path = f"/leaks/{org_a['leak']['id']}"
    attacks = {}

    # 1. alg "none" (with and without a trailing signature part)
    attacks["alg none"] = f"{b64json({'alg': 'none', 'typ': 'JWT'})}.{payload}."
    attacks["alg None, kid kept"] = f"{b64json(dict(header, alg='None'))}.{payload}."
    attacks["signature stripped"] = f"{head}.{payload}."

    # 2. HS256 signed with the realm's PUBLIC key as the HMAC secret (PEM and DER)
    from cryptography.hazmat.primitives import serialization as ser

    public = realm_public_key(stack, org_a["slug"], header["kid"])
    variants = {
        "PEM SPKI": public.public_bytes(ser.Encoding.PEM, ser.PublicFormat.SubjectPublicKeyInfo),
        "PEM PKCS1": public.public_bytes(ser.Encoding.PEM, ser.PublicFormat.PKCS1),
        "DER SPKI": public.public_bytes(ser.Encoding.DER, ser.PublicFormat.SubjectPublicKeyInfo),
        "DER PKCS1": public.public_bytes(ser.Encoding.DER, ser.PublicFormat.PKCS1),
    }
    for name, secret in variants.items():
        attacks[f"HS256 with public key ({name})"] = hs256(dict(header, alg="HS256"), claims,
                                                           secret)

    # 3. a valid token of organization B with `iss` changed to A's issuer
    b_token = org_b["admin"].token(stack)
    bh, bp, bs = b_token.split(".")
    b_claims = unb64json(bp)
    attacks["B's token with iss of A"] = f"{bh}.{b64json(dict(b_claims, iss=claims['iss']))}.{bs}"
    attacks["B's token with iss and sub of A"] = (
        f"{bh}.{b64json(dict(b_claims, iss=claims['iss'], sub=claims['sub']))}.{bs}")

    # 4. re-signed with a fresh key: unknown kid, and the realm's kid
    from joserfc import jwt
    from joserfc.jwk import RSAKey

    fresh = RSAKey.generate_key(2048, parameters={"kid": uuid.uuid4().hex})
    attacks["fresh key, random kid"] = jwt.encode({"alg": "RS256", "kid": fresh.kid}, claims,
                                                  fresh)
    attacks["fresh key, realm's kid"] = jwt.encode({"alg": "RS256", "kid": header["kid"]},
                                                   claims, fresh)
    attacks["fresh key, no kid"] = jwt.encode({"alg": "RS256"}, claims, fresh)

    # 5. tampered payload, original signature
    attacks["tampered exp"] = f"{head}.{b64json(dict(claims, exp=claims['exp'] + 86400))}.{sig}"
    attacks["tampered sub"] = f"{head}.{b64json(dict(claims, sub=str(uuid.uuid4())))}.{sig}"
    attacks["tampered aud"] = f"{head}.{b64json(dict(claims, aud=['leakhub-api', 'x']))}.{sig}"
    attacks["signature of another token"] = f"{head}.{payload}.{bs}"

    # 6. tokens that are genuine but not access tokens for the API
    tokens = org_a["admin"].tokens(stack)
    attacks["ID token (aud leakhub)"] = tokens["id_token"]
    if tokens.get("refresh_token"):
        attacks["refresh token"] = tokens["refresh_token"]

    # 7. garbage
    attacks["not a JWT"] = "hello"
    attacks["two parts"] = f"{head}.{payload}"
    attacks["long"] = "a" * 6000

    assert api(stack, "GET", leak_path, token).status_code == 200  # the original is fine
    for what, forged in attacks.items():
        assert_401(api(stack, "GET", leak_path, forged), what)
        assert_401(api(stack, "PATCH", leak_path, forged,
                       json={"description": "pwned", "version": 1}), what)
    # an oversized header is refused before the application (gunicorn: 431)
    assert api(stack, "GET", leak_path, "a" * 20000).status_code == 431
    # the token anywhere but the Authorization header is not looked at
    assert_401(api(stack, "GET", f"/leaks?access_token={token}"), "query parameter")
    assert_401(api(stack, "GET", "/leaks", headers={"Authorization": f"Basic {token}"}),
               "other scheme")
    resp = api(stack, "GET", leak_path, token)
    assert resp.json()["description"] == "GEHEIM-ALPHA"


def test_tokens_of_other_clients_are_refused(stack, org_a):
    """Wrong audience (a client without the leakhub-api audience mapper), and the right
    audience from a client that is neither Leakhub's nor a registered device."""
    from leakhub.identity.keycloak_admin import KeycloakAdmin

    secret = service_secret(stack)
    kc = KeycloakAdmin(stack.keycloak_url, "leakhub-service", secret)
    slug = org_a["slug"]
    plain_id = f"plain-{uuid.uuid4().hex[:8]}"
    resp = kc._request("POST", f"/admin/realms/{slug}/clients", json_body={
        "clientId": plain_id, "enabled": True, "protocol": "openid-connect",
        "publicClient": False, "clientAuthenticatorType": "client-secret",
        "standardFlowEnabled": False, "directAccessGrantsEnabled": False,
        "serviceAccountsEnabled": True, "secret": "s-" + secrets.token_urlsafe(24)})
    assert resp.status_code == 201
    rogue_id = f"rogue-{uuid.uuid4().hex[:8]}"
    rogue_secret = kc.create_service_client(slug, rogue_id)
    cases = {}
    for client_id, client_secret_ in (
            (plain_id, kc._json("GET", f"/admin/realms/{slug}/clients/"
                                f"{kc._client_uuid(slug, plain_id)}/client-secret")["value"]),
            (rogue_id, rogue_secret)):
        tok = stack.requests_session().post(
            f"{stack.public_url}/auth/realms/{slug}/protocol/openid-connect/token",
            data={"grant_type": "client_credentials", "client_id": client_id,
                  "client_secret": client_secret_})
        assert tok.status_code == 200, tok.text
        cases[client_id] = tok.json()["access_token"]
    plain_claims = unb64json(cases[plain_id].split(".")[1])
    assert "leakhub-api" not in (plain_claims.get("aud") or [])
    rogue_claims = unb64json(cases[rogue_id].split(".")[1])
    assert "leakhub-api" in (rogue_claims["aud"] if isinstance(rogue_claims["aud"], list)
                             else [rogue_claims["aud"]])
    assert_401(api(stack, "GET", "/leaks", cases[plain_id]), "wrong audience")
    assert_401(api(stack, "GET", "/leaks", cases[rogue_id]), "unregistered client")


def test_other_org_token_sees_only_its_own_organization(stack, org_a, org_b):
    token = org_b["admin"].token(stack)
    mine = api(stack, "GET", "/leaks", token)
    assert mine.status_code == 200 and mine.json()["total"] == 0
    assert "GEHEIM" not in mine.text
    a_leak, a_site = org_a["leak"]["id"], org_a["site"]["id"]
    for method, path, body in (
            ("GET", f"/leaks/{a_leak}", None),
            ("PATCH", f"/leaks/{a_leak}", {"description": "pwned", "version": 1}),
            ("DELETE", f"/leaks/{a_leak}", None),
            ("POST", f"/leaks/{a_leak}/status", {"status": "repaired"}),
            ("GET", f"/leaks/{a_leak}/photos", None),
            ("GET", f"/locations/{a_site}", None),
            ("DELETE", f"/locations/{a_site}", None)):
        resp = api(stack, method, path, token, json=body)
        assert resp.status_code == 404, (method, path, resp.status_code)
        assert "GEHEIM" not in resp.text and "Alpha" not in resp.text
    for path in ("/locations", "/surveys", "/dashboard", f"/leaks?location={a_site}",
                 "/leaks?q=GEHEIM"):
        resp = api(stack, "GET", path, token)
        assert resp.status_code == 200 and "GEHEIM" not in resp.text and "Alpha" not in resp.text
    # creating in B with A's location: a validation error naming the field, nothing in A
    resp = api(stack, "POST", "/leaks", token, json={
        "location": a_site, "found_at": "2024-03-01T08:00:00Z", "rate_lpm": 1})
    assert resp.status_code == 422 and set(resp.json()["errors"]) == {"location"}
    got = api(stack, "GET", f"/leaks/{a_leak}", org_a["admin"].token(stack))
    assert got.json()["description"] == "GEHEIM-ALPHA" and got.json()["version"] == 1


def test_disabling_a_user_in_leakhub_revokes_a_still_valid_token(stack, org_a):
    editor = invite(stack, org_a["slug"], "editor")
    token = editor.token(stack)
    assert api(stack, "GET", "/leaks", token).status_code == 200
    assert sql(stack, 'UPDATE "user" SET enabled = FALSE WHERE email = %s', editor.email) == 1
    claims = unb64json(token.split(".")[1])
    assert claims["exp"] > time.time() + 60          # still valid as far as Keycloak goes
    assert_401(api(stack, "GET", "/leaks", token), "disabled user")
    assert_401(api(stack, "GET", f"/leaks/{org_a['leak']['id']}", token), "disabled user")
    sql(stack, 'UPDATE "user" SET enabled = TRUE WHERE email = %s', editor.email)
    assert api(stack, "GET", "/leaks", token).status_code == 200
    # and through the CLI (also disables the user in Keycloak)
    stack.leakctl("user", "disable", "--org", org_a["slug"], "--email", editor.email)
    assert_401(api(stack, "GET", "/leaks", token), "disabled by leakctl")
