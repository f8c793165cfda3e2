"""Signing in through the real Keycloak login page with a plain HTTP client (no browser),
for tests that need many sign-ins. The browser path is covered by the e2e tests."""
from __future__ import annotations

import html
import re
import secrets
import uuid
from pathlib import Path

from leakhub.core.secrets import read_secret


def service_secret(stack) -> str:
    """The Leakhub service client's secret of a test stack, read as the app reads it (it is
    encrypted at rest with the stack's data key)."""
    return read_secret(Path(stack.home) / "secrets", "keycloak-service-client-secret")


_FORM = re.compile(r'<form[^>]*id="(kc-form-login|kc-passwd-update-form)"[^>]*action="([^"]+)"',
                   re.S)
_FORM_ANY = re.compile(r'<form[^>]*action="([^"]+)"', re.S)


def form_action(page: str) -> str:
    m = _FORM.search(page) or None
    if m:
        return html.unescape(m.group(2))
    m = _FORM_ANY.search(page)
    assert m, "no form on the Keycloak page:\n" + page[:2000]
    return html.unescape(m.group(1))


def new_org(stack, prefix="t"):
    """A fresh organization (realm) per test: returns (slug, admin email, one-time password)."""
    slug = f"{prefix}{uuid.uuid4().hex[:10]}"
    email = f"admin@{slug}.example.com"
    out = stack.leakctl("org", "create", "--slug", slug, "--name", f"Org {slug}",
                        "--admin-email", email, "--json")
    import json

    data = json.loads(out.stdout)
    return slug, email, data["one_time_password"]


def start_login(http, stack, slug):
    resp = http.get(f"{stack.public_url}/login/{slug}", allow_redirects=True)
    assert resp.status_code == 200, resp.status_code
    assert "/auth/realms/" in resp.url, resp.url
    return resp


def submit_password(http, page_resp, username, password):
    action = form_action(page_resp.text)
    return http.post(action, data={"username": username, "password": password,
                                   "credentialId": ""}, allow_redirects=True)


def sign_in(http, stack, slug, email, password, *, new_password=None):
    """Full sign-in; sets a new password when Keycloak asks for it. Returns (response, password)."""
    resp = submit_password(http, start_login(http, stack, slug), email, password)
    if "kc-passwd-update-form" in resp.text or "password-new" in resp.text:
        new_password = new_password or ("N3w-" + secrets.token_urlsafe(12))
        resp = http.post(form_action(resp.text),
                         data={"password-new": new_password, "password-confirm": new_password},
                         allow_redirects=True)
        password = new_password
    return resp, password
