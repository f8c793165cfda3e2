"""Debian's Chromium driven by Playwright, trusting exactly the stack's internal CA."""
from __future__ import annotations

import base64
import hashlib
import subprocess
import time
from pathlib import Path

CHROMIUM = "/usr/bin/chromium"


def spki_hash(cert_path: Path) -> str:
    pem = Path(cert_path).read_bytes()
    pub = subprocess.run(["openssl", "x509", "-pubkey", "-noout"], input=pem,
                         capture_output=True, check=True).stdout
    der = subprocess.run(["openssl", "pkey", "-pubin", "-outform", "der"], input=pub,
                         capture_output=True, check=True).stdout
    return base64.b64encode(hashlib.sha256(der).digest()).decode()


TABLET = {"width": 820, "height": 1180}   # a 10.9" tablet in portrait, CSS pixels

# HTTP/1.1 to Caddy: when the host's network interfaces change — podman adds a veth for every
# container the compose tests start beside the main run — Chromium closes its HTTP/2 sessions
# and every request in flight on them fails with ERR_NETWORK_CHANGED (a form POST that the
# server had already processed: a sign-in, an upload). HTTP/1.1 requests in flight survive it
# (reproduced in a network namespace: a veth added during a slow POST through Caddy fails
# three POSTs of three over HTTP/2, none over HTTP/1.1). That Caddy offers HTTP/2 is tested
# in test_caddy.py.
STEADY_NETWORK = ("--disable-http2",)


def launch(playwright, ca_dir: Path, user_data_dir: Path, *, viewport: dict | None = None,
           has_touch: bool = False, locale: str | None = None):
    """Chromium accepts certificates only from our CA (root or intermediate key pinned), not
    any certificate: `--ignore-certificate-errors-spki-list` instead of ignoring all errors.
    `viewport` (default 1024×768) and `has_touch` emulate other devices, e.g. `TABLET`;
    `locale` (e.g. "de-DE") is the browser's language as pages see it (Accept-Language,
    navigator.language; Chromium's own widgets keep its UI language)."""
    hashes = [spki_hash(p) for p in sorted(Path(ca_dir).glob("*.crt"))]
    args = [
        "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", *STEADY_NETWORK,
        "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        "--ignore-certificate-errors-spki-list=" + ",".join(hashes),
    ]
    return playwright.chromium.launch_persistent_context(
        str(user_data_dir), executable_path=CHROMIUM, headless=True, args=args,
        viewport=viewport or {"width": 1024, "height": 768}, has_touch=has_touch,
        **({"locale": locale} if locale else {}))


def first_sign_in(page, slug: str, email: str, one_time_password: str,
                  new_password: str = "Leak-hub-2026!") -> None:
    """On the organization's Keycloak login page: sign in with the one-time password, then
    set a new one (the UPDATE_PASSWORD required action)."""
    assert f"/auth/realms/{slug}/" in page.url, page.url
    page.fill("#username", email)
    page.fill("#password", one_time_password)
    page.locator("#kc-login").click()
    page.wait_for_selector("#password-new")
    page.fill("#password-new", new_password)
    page.fill("#password-confirm", new_password)
    page.locator("[type=submit]").first.click()
    back_from_keycloak(page, slug)


def back_from_keycloak(page, slug: str) -> None:
    """Wait until the browser has left the organization's Keycloak pages for Leakhub."""
    # Back at Leakhub: Keycloak's redirect and the callback can take seconds on a busy machine,
    # longer than an assertion's default 5 s; a page left on Keycloak names its message.
    try:
        page.wait_for_url(lambda url: f"/auth/realms/{slug}/" not in url, timeout=45_000)
    except Exception as exc:
        message = page.locator("#input-error, .alert-error, .kc-feedback-text, .pf-m-danger")
        raise AssertionError(f"still on Keycloak at {page.url}: "
                             f"{message.all_inner_texts() if message.count() else page.title()}"
                             ) from exc
    page.wait_for_load_state()


NETWORK_CHANGED = "ERR_NETWORK_CHANGED"


def goto(page, url: str, attempts: int = 3, **kwargs):
    """page.goto, again after ERR_NETWORK_CHANGED (a page load's connection being set up when
    the interfaces change, see STEADY_NETWORK); any other error at once."""
    from playwright.sync_api import Error as PlaywrightError
    for attempt in range(attempts):
        try:
            return page.goto(url, **kwargs)
        except PlaywrightError as exc:
            if NETWORK_CHANGED not in str(exc) or attempt == attempts - 1:
                raise
            time.sleep(1)

