"""Token settings per organization (issue 15 part 7) on the real Keycloak: `leakctl org set`
reaches the realm, an access token's lifetime matches, the sign-in page offers "Remember me",
and a refresh token is good for one use only (rotation)."""
import base64
import hashlib
import json

from leakhub.identity.keycloak_admin import KeycloakAdmin

from support.kc import new_org, service_secret
from support.tokens import b64url, client_secret, code_flow


def kc_admin(stack) -> KeycloakAdmin:
    return KeycloakAdmin(stack.keycloak_url, "leakhub-service", service_secret(stack))


def claims(token: str) -> dict:
    payload = token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))


def test_org_token_settings_reach_the_realm_and_the_tokens(stack):
    slug, email, otp = new_org(stack, "tk")
    out = stack.leakctl("org", "set", "--org", slug, "--access-token-minutes", "2",
                        "--session-hours", "4", "--remember-me", "on",
                        "--remember-me-days", "3", "--json")
    assert json.loads(out.stdout) == {"organization": slug, "access_token_minutes": 2,
                                      "session_hours": 4, "remember_me": True,
                                      "remember_me_days": 3}
    realm = kc_admin(stack).get_realm(slug)
    assert realm["accessTokenLifespan"] == 120
    assert realm["ssoSessionMaxLifespan"] == 4 * 3600
    assert realm["rememberMe"] is True
    assert realm["ssoSessionMaxLifespanRememberMe"] == 3 * 86400
    assert realm["revokeRefreshToken"] is True and realm["refreshTokenMaxReuse"] == 0

    # out of bounds: refused, the realm unchanged
    bad = stack.leakctl("org", "set", "--org", slug, "--access-token-minutes", "60",
                        check=False)
    assert bad.returncode != 0
    assert kc_admin(stack).get_realm(slug)["accessTokenLifespan"] == 120

    # the login page offers "keep me signed in"
    http = stack.requests_session()
    page = http.get(f"{stack.public_url}/auth/realms/{slug}/protocol/openid-connect/auth",
                    params={"client_id": "leakhub", "response_type": "code", "scope": "openid",
                            "redirect_uri": f"{stack.public_url}/oidc/callback/{slug}",
                            "state": "s" * 16, "nonce": "n" * 16,
                            "code_challenge": b64url(hashlib.sha256(b"v" * 48).digest()),
                            "code_challenge_method": "S256"})
    assert page.status_code == 200, page.text[:300]
    assert 'name="rememberMe"' in page.text

    tokens, _password = code_flow(stack, slug, email, otp)
    access = claims(tokens["access_token"])
    assert access["exp"] - access["iat"] == 120

    # refresh-token rotation: the first use gives a new pair, the second use is refused
    endpoint = f"{stack.public_url}/auth/realms/{slug}/protocol/openid-connect/token"
    form = {"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"],
            "client_id": "leakhub", "client_secret": client_secret(stack, slug)}
    first = stack.requests_session().post(endpoint, data=form)
    assert first.status_code == 200, first.text
    assert first.json()["refresh_token"] != tokens["refresh_token"]
    again = stack.requests_session().post(endpoint, data=form)
    assert again.status_code == 400 and again.json()["error"] == "invalid_grant"
