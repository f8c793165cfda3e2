"""Floor plan in Chromium (issue 18 part 5), tablet viewport with touch: upload a plan on the
location's plan page, tap the plan to place a leak (static/js/floorplan.js turns the tap into
fractions of the plan), and find the pin where it was tapped. Short: one sign-in, one site."""
import io
import re

import pytest
from PIL import Image
from playwright.sync_api import expect, sync_playwright

from support.browser import TABLET, first_sign_in, launch
from support.kc import new_org

pytestmark = pytest.mark.e2e


def test_upload_a_plan_and_place_a_leak_by_tapping(stack, tmp_path):
    slug, email, otp = new_org(stack, "fp")
    base = stack.public_url
    plan = tmp_path / "Halle 1.png"
    out = io.BytesIO()
    Image.new("RGB", (800, 400), (250, 240, 200)).save(out, "PNG")
    plan.write_bytes(out.getvalue())
    with sync_playwright() as p:
        ctx = launch(p, stack.ca_dir, tmp_path / "chromium", viewport=TABLET, has_touch=True)
        page = ctx.new_page()
        page.set_default_timeout(20_000)
        failed = []
        page.on("response", lambda r: failed.append(f"{r.status} {r.url}")
                if r.status >= 400 else None)
        page.goto(f"{base}/login/{slug}")
        first_sign_in(page, slug, email, otp)
        expect(page.get_by_test_id("org-name")).to_have_text(f"Org {slug}")

        page.goto(f"{base}/locations/new")
        page.select_option("#f-kind", "site")
        page.fill("#f-code", "BER")
        page.fill("#f-name", "Werk Berlin")
        page.get_by_test_id("save").tap()
        page.wait_for_url(re.compile(r".*/locations/\d+$"))
        site_id = page.url.rsplit("/", 1)[1]

        page.goto(f"{base}/leaks/new?location={site_id}")
        page.select_option("#f-location", site_id)
        page.fill("#f-tag", "P-1")
        page.fill("#f-rate_lpm", "10")
        page.get_by_test_id("save").tap()
        page.wait_for_url(re.compile(r".*/leaks/\d+$"))

        # Upload the plan from the location page.
        page.goto(f"{base}/locations/{site_id}")
        page.get_by_test_id("plan-link").tap()
        expect(page.get_by_test_id("no-plan")).to_be_visible()
        page.set_input_files("#plan-file", str(plan))
        page.get_by_test_id("plan-upload").locator("button[type=submit]").tap()
        svg = page.get_by_test_id("plan-svg")
        expect(svg).to_be_visible()
        page.wait_for_function(
            "() => { const i = document.querySelector('#plan-svg image');"
            " return i && i.getBBox().width > 0; }")

        # Tap at 25 % across, 50 % down: the leak's pin appears there.
        page.select_option("#pin-leak", label="P-1")
        box = svg.bounding_box()
        svg.tap(position={"x": box["width"] * 0.25, "y": box["height"] * 0.5})
        pin = svg.locator("g.pin circle")
        expect(pin).to_have_count(1)
        cx, cy = float(pin.get_attribute("cx")), float(pin.get_attribute("cy"))
        assert abs(cx / 800 - 0.25) < 0.02 and abs(cy / 400 - 0.5) < 0.02, (cx, cy)
        expect(svg.locator("g.pin")).to_have_attribute("aria-label", re.compile(r"P-1 – "))
        expect(page.get_by_test_id("plan-legend")).to_contain_text("circle")
        # The plan image itself loaded (served through the app, not a static route).
        got = page.evaluate("""async url => {
            const r = await fetch(url);
            const b = new Uint8Array(await r.arrayBuffer());
            return [r.status, Array.from(b.slice(0, 8))];
        }""", svg.locator("image").get_attribute("href"))
        assert got == [200, list(b"\x89PNG\r\n\x1a\n")], got
        assert not [f for f in failed if "/plan" in f], failed
        ctx.close()
