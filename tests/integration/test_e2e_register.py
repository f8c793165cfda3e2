"""End to end in Chromium on a tablet-sized touch viewport: sign in through Keycloak, record a
leak through the form, add a photo, change its status, see it on the dashboard, edit it and
read the change in the leak's Activity section (the audit trail)."""
import base64
import io
import re

import pytest
from PIL import Image
from playwright.sync_api import expect, sync_playwright

from support.browser import TABLET, first_sign_in, launch
from support.kc import new_org

pytestmark = pytest.mark.e2e


def jpeg_with_gps() -> bytes:
    img = Image.new("RGB", (640, 480), (40, 90, 160))
    exif = Image.Exif()
    exif[0x010F] = "SecretCam"
    gps = exif.get_ifd(0x8825)
    gps[1], gps[2], gps[3], gps[4] = "N", (52.0, 31.0, 12.0), "E", (13.0, 24.0, 36.0)
    out = io.BytesIO()
    img.save(out, "JPEG", exif=exif)
    return out.getvalue()


FETCH_BASE64 = """async url => {
    const resp = await fetch(url);
    if (!resp.ok) throw new Error(url + ": " + resp.status);
    const bytes = new Uint8Array(await resp.arrayBuffer());
    let s = "";
    for (const b of bytes) s += String.fromCharCode(b);
    return btoa(s);
}"""


def no_horizontal_scroll(page) -> bool:
    return page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")


def test_record_leak_with_photo_on_tablet_status_dashboard_and_activity(stack, tmp_path):
    slug, email, otp = new_org(stack, "e")
    base = stack.public_url
    photo = tmp_path / "Kupplung Halle 1.jpg"
    photo.write_bytes(jpeg_with_gps())
    with sync_playwright() as p:
        ctx = launch(p, stack.ca_dir, tmp_path / "chromium", viewport=TABLET, has_touch=True)
        page = ctx.new_page()
        page.set_default_timeout(20_000)
        assert page.evaluate("navigator.maxTouchPoints") > 0
        assert page.evaluate("window.innerWidth") == TABLET["width"]

        # Sign in through the real Keycloak page; the first admin sets a new password.
        page.goto(f"{base}/login/{slug}")
        first_sign_in(page, slug, email, otp)
        expect(page.get_by_test_id("org-name")).to_have_text(f"Org {slug}")

        # A site to record the leak at.
        page.goto(f"{base}/locations/new")
        page.select_option("#f-kind", "site")
        page.fill("#f-code", "BER")
        page.fill("#f-name", "Werk Berlin")
        page.get_by_test_id("save").tap()
        page.wait_for_url(re.compile(r".*/locations/\d+$"))
        site_id = page.url.rsplit("/", 1)[1]

        # Record the leak through the form (decimal comma as typed on site).
        page.goto(f"{base}/leaks")
        page.get_by_test_id("new-leak").tap()
        page.wait_for_url(re.compile(r".*/leaks/new"))
        assert no_horizontal_scroll(page), "the leak form scrolls sideways on a tablet"
        page.select_option("#f-location", site_id)
        page.fill("#f-tag", "T-4711")
        page.fill("#f-rate_lpm", "12,5")
        page.fill("#f-pressure_bar", "6,5")
        page.select_option("#f-component", "coupling")
        page.fill("#f-description", "Kupplung zischt")
        page.get_by_test_id("save").tap()
        page.wait_for_url(re.compile(r".*/leaks/\d+$"))
        leak_url = page.url
        expect(page.get_by_test_id("leak-tag")).to_contain_text("Leak T-4711")
        expect(page.get_by_test_id("leak-status")).to_have_text("open")
        expect(page.get_by_test_id("kwh")).to_have_text("640 kWh")
        assert no_horizontal_scroll(page), "the leak page scrolls sideways on a tablet"

        # Add a photo on the leak page; the thumbnail is shown and loads.
        photos = page.get_by_test_id("photos")
        expect(photos.locator("img")).to_have_count(0)
        page.set_input_files("#photo-files", str(photo))
        photos.locator("button[type=submit]").tap()
        page.wait_for_url(re.compile(r".*/leaks/\d+(#photos)?$"))
        thumb = photos.locator("img")
        expect(thumb).to_have_count(1)
        expect(photos).to_contain_text("Kupplung Halle 1.jpg")
        expect(photos).to_contain_text("640×480")
        thumb.scroll_into_view_if_needed()
        page.wait_for_function("img => img.complete && img.naturalWidth > 0",
                               arg=thumb.element_handle())
        # The photo as the browser gets it: location and camera data are gone.
        served = base64.b64decode(page.evaluate(FETCH_BASE64, photos.locator("a").first
                                                .get_attribute("href")))
        assert served[:3] == b"\xff\xd8\xff" and b"SecretCam" not in served
        assert not Image.open(io.BytesIO(served)).getexif()

        # The dashboard counts it as open.
        page.goto(f"{base}/dashboard")
        expect(page.get_by_test_id("open-count")).to_have_text("1")
        expect(page.get_by_test_id("open-rate")).to_have_text("12.5 l/min")
        expect(page.get_by_test_id("open-kwh")).to_have_text("640 kWh")
        expect(page.get_by_test_id("saved-kwh")).to_have_text("0")

        # Change its status through the leak page: repaired.
        page.goto(leak_url)
        form = page.get_by_test_id("status-form")
        form.locator("#f-status").select_option("repaired")
        form.locator("#f-repair_cost").fill("45,50")
        form.locator("#f-note").fill("Dichtung getauscht")
        page.get_by_test_id("change-status").tap()
        expect(page.get_by_test_id("leak-status")).to_have_text("repaired")
        history = page.get_by_test_id("history")
        expect(history).to_contain_text("open → repaired")
        expect(history).to_contain_text("Dichtung getauscht")

        # The dashboard moves it from open to the realised savings.
        page.get_by_test_id("nav-dashboard").tap()
        page.wait_for_url(re.compile(r".*/dashboard$"))
        expect(page.get_by_test_id("open-count")).to_have_text("0")
        expect(page.get_by_test_id("saved-kwh")).to_have_text("640")

        # Edit a field; the leak's Activity section shows the change old → new.
        page.goto(leak_url)
        page.get_by_test_id("edit").tap()
        page.wait_for_url(re.compile(r".*/leaks/\d+/edit$"))
        expect(page.locator("#f-description")).to_have_value("Kupplung zischt")
        page.fill("#f-description", "Kupplung getauscht, Schlauch prüfen")
        page.get_by_test_id("save").tap()
        page.wait_for_url(leak_url)
        activity = page.get_by_test_id("activity")
        expect(activity).to_be_visible()
        newest = activity.get_by_test_id("activity-item").first    # newest first
        expect(newest).to_contain_text("Changed")      # actions and fields by label (issue 14)
        # (Only the description changed; that the unchanged decimals are listed too on
        # PostgreSQL is a known bug, see test_leak_register.py::test_activity_of_an_edit_...)
        diff_row = newest.locator("table.diff tbody tr", has=page.locator(
            "td", has_text=re.compile(r"^Description$")))
        expect(diff_row).to_have_count(1)
        expect(diff_row.locator("td.old")).to_have_text("Kupplung zischt")
        expect(diff_row.locator("td.new")).to_have_text("Kupplung getauscht, Schlauch prüfen")
        page.screenshot(path=str(tmp_path / "leak-activity.png"), full_page=True)
        ctx.close()
