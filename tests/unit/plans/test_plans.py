"""Floor plans (issue 18 part 5): upload (PNG, JPEG, a PDF's first page), bad files as clear
4xx, pins by fractions, replacing a plan keeps pins only when asked (audited), and the pins
drawn in the location PDF report at the expected spot (page rendered with pypdfium2)."""
import datetime as dt
import io
import struct
import zlib

import pypdfium2 as pdfium
import pytest
from PIL import Image
from reportlab.pdfgen import canvas

from leakhub.audit.models import AuditEntry
from leakhub.core import crypto
from leakhub.leaks.models import Leak
from leakhub.plans import service
from leakhub.plans.models import FloorPlan
from leakhub.surveys import service as surveys

from support.reporting_data import BASE, make_tree, new_leak

PLAN_RGB = (250, 240, 200)  # a pale yellow plan, easy to find on the rendered page


def plan_png(size=(400, 200), colour=PLAN_RGB) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", size, colour).save(out, "PNG")
    return out.getvalue()


def pdf_plan(pages=1) -> bytes:
    out = io.BytesIO()
    c = canvas.Canvas(out, pagesize=(400, 300))
    for _ in range(pages):
        c.setFillColorRGB(0, 0, 1)
        c.rect(50, 50, 100, 100, fill=1)
        c.showPage()
    c.save()
    return out.getvalue()


def png_bomb(width=100_000, height=100_000) -> bytes:
    """A tiny PNG whose header claims width × height pixels."""
    def chunk(kind, data):
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr)
            + chunk(b"IDAT", zlib.compress(b"\x00" * 16)) + chunk(b"IEND", b""))


@pytest.fixture
def places(actor):
    return make_tree(actor)


def upload(c, loc, data, name="plan.png", **form):
    return c.post(f"/locations/{loc.id}/plan", base_url=BASE, content_type="multipart/form-data",
                  data={"csrf_token": "t", "plan": (io.BytesIO(data), name), **form})


def test_upload_png_is_stored_encrypted_and_served(actor, places, login):
    c = login(actor.user)
    resp = upload(c, places["hall"], plan_png())
    assert resp.status_code == 302
    plan = FloorPlan.get(FloorPlan.location == places["hall"].id)
    assert (plan.width, plan.height, plan.version) == (400, 200, 1)
    raw = service.plan_storage(plan.organization_id)._path(plan.sha256).read_bytes()
    assert raw.startswith(crypto.MAGIC)
    img = c.get(f"/locations/{places['hall'].id}/plan/image", base_url=BASE)
    assert img.status_code == 200 and img.data[:8] == b"\x89PNG\r\n\x1a\n"
    page = c.get(f"/locations/{places['hall'].id}/plan", base_url=BASE)
    assert page.status_code == 200 and b'data-testid="plan-svg"' in page.data


def test_pdf_first_page_becomes_the_plan(actor, places):
    plan = service.upload_plan(actor, places["hall"], "plan.pdf", pdf_plan(pages=2))
    assert plan.content_type == "image/png"
    # 400 × 300 pt at 200 dpi
    assert abs(plan.width - 1111) <= 1 and abs(plan.height - 833) <= 1


@pytest.mark.parametrize("name,data,status,words", [
    ("notes.txt", b"hello, not an image", 422, "is not a PNG or JPEG image or a PDF"),
    ("bomb.png", png_bomb(), 422, "too many pixels"),
    ("empty.pdf", None, 422, "has no pages"),
    ("broken.pdf", b"%PDF-1.7\n garbage", 422, "could not be read as a PDF"),
    ("broken.png", b"\x89PNG\r\n\x1a\n" + b"\x00" * 40, 422, "could not be read"),
])
def test_bad_files_are_a_clear_4xx(actor, places, login, name, data, status, words):
    if data is None:
        pdf = pdfium.PdfDocument.new()
        out = io.BytesIO()
        pdf.save(out)
        data = out.getvalue()
    c = login(actor.user)
    resp = upload(c, places["hall"], data, name)
    assert resp.status_code == status
    body = resp.get_data(as_text=True)
    assert words in body and name in body
    assert FloorPlan.select().count() == 0


def test_too_large_file_is_413(actor, places, monkeypatch):
    monkeypatch.setattr(service, "MAX_FILE_BYTES", 100)
    with pytest.raises(service.PlanError) as exc:
        service.upload_plan(actor, places["hall"], "big.png", plan_png())
    assert exc.value.status == 413


def test_pin_by_fractions_and_bad_values(actor, places, login):
    service.upload_plan(actor, places["hall"], "p.png", plan_png())
    leak = new_leak(actor, places["area"])  # below the hall: on the hall's plan
    c = login(actor.user)
    url = f"/locations/{places['hall'].id}/plan/pin"
    resp = c.post(url, data={"csrf_token": "t", "leak": leak.id, "x": "0.25", "y": "0.75"},
                  base_url=BASE)
    assert resp.status_code == 302
    leak = Leak.get_by_id(leak.id)
    assert (leak.plan_x, leak.plan_y, leak.plan_version) == (0.25, 0.75, 1)
    for x, y in (("1.5", "0.5"), ("abc", "0.1"), ("nan", "0.1"), ("0.1", "")):
        bad = c.post(url, data={"csrf_token": "t", "leak": leak.id, "x": x, "y": y},
                     base_url=BASE)
        assert bad.status_code == 422
        assert "must be a number from 0 to 1" in bad.get_data(as_text=True)
    other_site_leak = new_leak(actor, places["site2"])
    bad = c.post(url, data={"csrf_token": "t", "leak": other_site_leak.id, "x": "0.1",
                            "y": "0.1"}, base_url=BASE)
    assert bad.status_code == 422 and "is not at this location" in bad.get_data(as_text=True)


def test_a_leak_belongs_to_the_nearest_plan(actor, places):
    service.upload_plan(actor, places["hall"], "hall.png", plan_png())
    leak = new_leak(actor, places["area"])
    assert leak.id in {lk.id for lk in service.plan_leaks(actor, places["hall"])}
    service.upload_plan(actor, places["area"], "area.png", plan_png())
    assert leak.id not in {lk.id for lk in service.plan_leaks(actor, places["hall"])}
    assert leak.id in {lk.id for lk in service.plan_leaks(actor, places["area"])}


@pytest.mark.parametrize("keep", [True, False])
def test_replacing_keeps_pins_only_when_confirmed_and_is_audited(actor, places, login, keep):
    service.upload_plan(actor, places["hall"], "p.png", plan_png())
    leak = new_leak(actor, places["area"])
    service.set_pin(actor, places["hall"], leak.id, "0.5", "0.5")
    c = login(actor.user)
    resp = upload(c, places["hall"], plan_png(colour=(1, 2, 3)), "new.png",
                  pins="keep" if keep else "clear")
    assert resp.status_code == 302
    plan = FloorPlan.get(FloorPlan.location == places["hall"].id)
    assert plan.version == 2
    leak = Leak.get_by_id(leak.id)
    if keep:
        assert (leak.plan_x, leak.plan_version) == (0.5, 2)
    else:
        assert (leak.plan_x, leak.plan_y, leak.plan_version) == (None, None, None)
    actions = [e.action for e in AuditEntry.select().where(
        AuditEntry.entity_type == "floor_plan").order_by(AuditEntry.seq)]
    assert actions == ["create", "floor_plan.replaced",
                       "floor_plan.pins_kept" if keep else "floor_plan.pins_cleared"]


def test_other_organization_cannot_see_the_plan(actor, places, make_actor, other_org, login):
    service.upload_plan(actor, places["hall"], "p.png", plan_png())
    stranger = make_actor("admin", organization=other_org)
    c = login(stranger.user)
    assert c.get(f"/locations/{places['hall'].id}/plan", base_url=BASE).status_code == 404
    assert c.get(f"/locations/{places['hall'].id}/plan/image",
                 base_url=BASE).status_code == 404


def _find_box(img, rgb, tol=6):
    """Bounding box (x0, y0, x1, y1) of the pixels of colour `rgb`."""
    px = img.load()
    xs, ys = [], []
    for y in range(0, img.height, 2):
        for x in range(0, img.width, 2):
            p = px[x, y]
            if all(abs(p[i] - rgb[i]) <= tol for i in range(3)):
                xs.append(x)
                ys.append(y)
    assert xs, f"colour {rgb} not on the page"
    return min(xs), min(ys), max(xs), max(ys)


def test_pins_are_drawn_in_the_location_pdf(actor, places, login):
    service.upload_plan(actor, places["hall"], "p.png", plan_png((400, 200)))
    open_leak = new_leak(actor, places["area"])
    service.set_pin(actor, places["hall"], open_leak.id, "0.25", "0.5")
    c = login(actor.user)
    resp = c.get(f"/locations/{places['hall'].id}/report.pdf", base_url=BASE)
    assert resp.status_code == 200
    pdf = pdfium.PdfDocument(resp.data)
    found = None
    for i in range(len(pdf)):
        img = pdf[i].render(scale=2).to_pil().convert("RGB")
        try:
            found = (img, _find_box(img, PLAN_RGB))
            break
        except AssertionError:
            continue
    assert found, "the plan is not in the report"
    img, (x0, y0, x1, y1) = found
    # The open leak's pin (red circle) at 25 % across, 50 % down the plan.
    cx, cy = x0 + 0.25 * (x1 - x0), y0 + 0.5 * (y1 - y0)
    red = service.STATUS_STYLE["open"][0]
    rgb = tuple(int(red[i:i + 2], 16) for i in (1, 3, 5))
    px = img.getpixel((round(cx), round(cy)))
    assert all(abs(px[i] - rgb[i]) <= 12 for i in range(3)), (px, rgb)


def test_leak_page_links_to_its_plan(actor, places, login):
    leak = new_leak(actor, places["area"])
    c = login(actor.user)
    page = c.get(f"/leaks/{leak.id}", base_url=BASE).get_data(as_text=True)
    assert 'data-testid="plan-link"' not in page
    service.upload_plan(actor, places["hall"], "p.png", plan_png())
    page = c.get(f"/leaks/{leak.id}", base_url=BASE).get_data(as_text=True)
    assert f'/locations/{places["hall"].id}/plan?leak={leak.id}' in page
    assert "Place on the floor plan" in page
    plan_page = c.get(f"/locations/{places['hall'].id}/plan?leak={leak.id}",
                      base_url=BASE).get_data(as_text=True)
    assert f'<option value="{leak.id}" selected>' in plan_page


def test_survey_pdf_has_the_plan_and_unpinned_leaks_are_not_drawn(actor, places, login):
    s = surveys.create_survey(actor, name="Begehung", period_start=dt.date(2024, 3, 1),
                              scope=[places["site"].id])
    service.upload_plan(actor, places["hall"], "p.png", plan_png((400, 200)))
    pinned = new_leak(actor, places["area"], survey=s.id, status="to_review")
    new_leak(actor, places["area"], survey=s.id)  # not placed: no pin
    service.set_pin(actor, places["hall"], pinned.id, "0.75", "0.25")
    c = login(actor.user)
    resp = c.get(f"/surveys/{s.id}/report.pdf", base_url=BASE)
    assert resp.status_code == 200
    pdf = pdfium.PdfDocument(resp.data)
    for i in range(len(pdf)):
        img = pdf[i].render(scale=2).to_pil().convert("RGB")
        try:
            x0, y0, x1, y1 = _find_box(img, PLAN_RGB)
        except AssertionError:
            continue
        blue = service.STATUS_STYLE["to_review"][0]
        rgb = tuple(int(blue[k:k + 2], 16) for k in (1, 3, 5))
        px = img.getpixel((round(x0 + 0.75 * (x1 - x0)), round(y0 + 0.25 * (y1 - y0))))
        assert all(abs(px[k] - rgb[k]) <= 12 for k in range(3)), (px, rgb)
        red = service.STATUS_STYLE["open"][0]
        assert not any(abs(p[0] - int(red[1:3], 16)) <= 6 and abs(p[1] - int(red[3:5], 16)) <= 6
                       for p in img.crop((x0, y0, x1, y1)).getdata()), "unplaced leak drawn"
        break
    else:
        pytest.fail("the plan is not in the survey report")
