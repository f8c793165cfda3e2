"""Sign-in through the real Keycloak: lock-out, isolation between organizations, logout."""
import re

from support.kc import new_org, sign_in, start_login, submit_password


def _home(http, stack):
    return http.get(f"{stack.public_url}/", allow_redirects=False)


def test_sign_in_lands_on_the_organization(stack):
    slug, email, otp = new_org(stack)
    http = stack.requests_session()
    resp, _ = sign_in(http, stack, slug, email, otp)
    assert resp.url == f"{stack.public_url}/", resp.url
    assert f"Org {slug}" in resp.text


def test_three_wrong_passwords_lock_the_account(stack):
    slug, email, otp = new_org(stack)
    http = stack.requests_session()
    page = start_login(http, stack, slug)
    for _ in range(3):
        page = submit_password(http, page, email, "wrong-password")
        assert "/auth/realms/" in page.url
    page = submit_password(http, page, email, otp)
    # Locked: even the right password does not get through to Leakhub.
    assert "/auth/realms/" in page.url
    assert "kc-passwd-update-form" not in page.text
    assert _home(http, stack).status_code == 302


def test_user_of_one_org_cannot_sign_in_to_another(stack):
    slug_a, email_a, otp_a = new_org(stack, "a")
    slug_b, _, _ = new_org(stack, "b")
    http = stack.requests_session()
    page = start_login(http, stack, slug_b)
    page = submit_password(http, page, email_a, otp_a)
    assert "/auth/realms/" + slug_b in page.url
    assert _home(http, stack).status_code == 302
    # A session of A shows A, never B, and B's callback cannot be completed with it.
    http_a = stack.requests_session()
    resp, _ = sign_in(http_a, stack, slug_a, email_a, otp_a)
    assert f"Org {slug_a}" in resp.text and f"Org {slug_b}" not in resp.text
    cb = http_a.get(f"{stack.public_url}/oidc/callback/{slug_b}?code=x&state=y",
                    allow_redirects=False)
    assert cb.status_code == 400
    assert f"Org {slug_b}" not in _home(http_a, stack).text


def test_logout_ends_keycloak_session_and_old_cookie_is_worthless(stack):
    slug, email, otp = new_org(stack)
    http = stack.requests_session()
    resp, password = sign_in(http, stack, slug, email, otp)
    assert resp.url == f"{stack.public_url}/"
    cookie_name = next(c.name for c in http.cookies
                       if "leakhub" in c.name and c.name != "leakhub_org")
    stolen = http.cookies.get(cookie_name)
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', resp.text).group(1)
    out = http.post(f"{stack.public_url}/logout", data={"csrf_token": csrf}, allow_redirects=True)
    assert out.url == f"{stack.public_url}/signed-out", out.url
    # Keycloak's SSO session is gone: a new visit asks for the password again.
    again = start_login(http, stack, slug)
    assert 'name="password"' in again.text
    # Replaying the old session cookie leads to the login, not the page.
    replay = stack.requests_session()
    replay.cookies.set(cookie_name, stolen, domain=stack.cookie_domain, path="/")
    r = replay.get(f"{stack.public_url}/", allow_redirects=False)
    assert r.status_code == 302 and "/login" in r.headers["Location"]
