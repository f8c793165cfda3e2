"""End to end in Chromium: HTTPS → Keycloak login page → new password → Leakhub; logout
ends the Keycloak session too."""
import pytest
from playwright.sync_api import expect, sync_playwright

from support.browser import back_from_keycloak, first_sign_in, launch
from support.kc import new_org

pytestmark = pytest.mark.e2e


def test_browser_sign_in_set_password_and_sign_out(stack, tmp_path):
    slug, email, otp = new_org(stack, "e")
    with sync_playwright() as p:
        ctx = launch(p, stack.ca_dir, tmp_path / "chromium")
        page = ctx.new_page()
        page.goto(f"{stack.public_url}/")
        # One organization may exist besides ours: choose ours explicitly when asked.
        if page.locator("input#org").count():
            page.fill("input#org", slug)
            page.locator("button[type=submit]").click()
        if "/auth/realms/" not in page.url:
            page.goto(f"{stack.public_url}/login/{slug}")
        first_sign_in(page, slug, email, otp)
        expect(page.get_by_test_id("org-name")).to_have_text(f"Org {slug}")
        page.screenshot(path=str(tmp_path / "signed-in.png"))

        page.get_by_test_id("logout").click()
        expect(page.get_by_test_id("signed-out")).to_be_visible()
        page.goto(f"{stack.public_url}/login/{slug}")
        # The Keycloak session ended too: the password is asked for again.
        expect(page.locator("#password")).to_be_visible()
        page.fill("#username", email)
        page.fill("#password", "Leak-hub-2026!")
        page.locator("#kc-login").click()
        back_from_keycloak(page, slug)
        expect(page.get_by_test_id("org-name")).to_have_text(f"Org {slug}")
        ctx.close()
