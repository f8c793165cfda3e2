"""Revocation on the real stack: a disabled user, a revoked grant and a Keycloak-side logout
take effect at the very next request (DESIGN §3.3, §3.4)."""
import json
import re
import time

import pytest

from leakhub.identity.keycloak_admin import KeycloakAdmin

from support.kc import new_org, service_secret, sign_in

CSV = "Tag,Location,Found at,Leak rate l/min\n501,BER/H1,2024-03-01,12.5\n"


@pytest.fixture
def org(stack, tmp_path):
    """A fresh organization with one site (BER), one building (H1) and leak 501 in it."""
    slug, _email, _otp = new_org(stack, "rv")
    path = tmp_path / "leaks.csv"
    path.write_text(CSV)
    out = stack.leakctl("import", "leaks", "--org", slug, "--create-locations", "--json",
                        str(path))
    assert json.loads(out.stdout)["new"] == 1, out.stdout
    return slug


def invite(stack, slug, role):
    email = f"{role}-{int(time.time() * 1000)}@{slug}.example.com"
    out = stack.leakctl("user", "invite", "--org", slug, "--email", email, "--role", role,
                        "--json")
    data = json.loads(out.stdout)
    assert data["delivery"] == "one_time_password" and data["one_time_password"]
    return email, data["one_time_password"]


def signed_in(stack, slug, email, otp):
    http = stack.requests_session()
    resp, _password = sign_in(http, stack, slug, email, otp)
    assert resp.url == f"{stack.public_url}/", resp.url
    return http


def leak_url(stack, http) -> str:
    """Open leak 501 by its tag; returns the detail page's URL."""
    resp = http.get(f"{stack.public_url}/leaks/tag/501", allow_redirects=True)
    assert resp.status_code == 200, (resp.status_code, resp.url)
    assert "/leaks/" in resp.url and "501" in resp.text
    return resp.url


def goes_to_login(resp) -> bool:
    return resp.status_code == 302 and "/login" in resp.headers.get("Location", "")


def test_disabled_user_is_out_at_the_next_request(stack, org):
    email, otp = invite(stack, org, "editor")
    http = signed_in(stack, org, email, otp)
    url = leak_url(stack, http)
    stack.leakctl("user", "disable", "--org", org, "--email", email)
    resp = http.get(url, allow_redirects=False)
    assert goes_to_login(resp), (resp.status_code, resp.headers.get("Location"))
    listed = json.loads(stack.leakctl("user", "list", "--org", org, "--json").stdout)
    assert next(u for u in listed if u["email"] == email)["enabled"] is False
    # Keycloak refuses the user too: a new sign-in does not reach Leakhub.
    again = stack.requests_session()
    resp, _ = sign_in(again, stack, org, email, otp)
    assert not resp.url.startswith(f"{stack.public_url}/leaks")
    assert again.get(url, allow_redirects=False).status_code == 302


def test_revoked_grant_gives_404_at_the_next_request(stack, org):
    email, otp = invite(stack, org, "external")
    stack.leakctl("grant", "add", "--org", org, "--email", email, "--location", "BER",
                  "--level", "view", "--expires", "2099-12-31")
    http = signed_in(stack, org, email, otp)
    url = leak_url(stack, http)
    explained = json.loads(stack.leakctl("user", "access", "--org", org, "--email", email,
                                         "--leak", "501", "--json").stdout)
    assert explained["decisions"][0]["allowed"] is True
    stack.leakctl("grant", "revoke", "--org", org, "--email", email, "--location", "BER")
    resp = http.get(url, allow_redirects=False)
    assert resp.status_code == 404
    # Only the page's main part: the header shows the user's e-mail, whose timestamp may hold "501".
    main = re.split(r"<main\b[^>]*>", resp.text, maxsplit=1)
    assert len(main) == 2, resp.text[:500]
    assert "501" not in main[1].split("</main>", 1)[0]


def test_keycloak_logout_ends_the_leakhub_session_by_back_channel(stack, org):
    email, otp = invite(stack, org, "viewer")
    http = signed_in(stack, org, email, otp)
    url = leak_url(stack, http)
    secret = service_secret(stack)
    admin = KeycloakAdmin(stack.keycloak_url, "leakhub-service", secret)
    admin.logout_user(org, admin.find_user_by_email(org, email)["id"])
    deadline = time.monotonic() + 10
    while True:
        resp = http.get(url, allow_redirects=False)
        if goes_to_login(resp) or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert goes_to_login(resp), "the Leakhub session survived Keycloak's logout"
