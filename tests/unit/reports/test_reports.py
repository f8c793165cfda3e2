"""PDF reports per survey and per location."""
import datetime as dt
from decimal import Decimal as D

import pytest

from leakhub.leaks import service as leaks
from leakhub.photos import service as photos
from leakhub.reports import pdf, service
from leakhub.surveys import service as surveys

from support.reporting_data import BASE, jpeg_with_exif_gps, make_tree, new_leak, pdf_text


@pytest.fixture
def survey(actor):
    tree = make_tree(actor)
    s = surveys.create_survey(actor, name="Frühjahr 2024", period_start=dt.date(2024, 3, 1),
                              auditor_company="Druckluft-Audit GmbH", scope=[tree["site"].id])
    a = new_leak(actor, tree["area"], tag="4711", survey=s.id, component="coupling",
                 description="Kupplung zischt – Größe ½")
    b = new_leak(actor, tree["hall"], tag="4712", survey=s.id, rate_lpm=D("35.5"))
    leaks.change_status(actor, b, "repaired", repaired_at=dt.date(2024, 3, 20))
    new_leak(actor, tree["site2"], tag="9999")  # another survey: not in the report
    photos.add_photos(actor, a, [("kupplung.jpg", jpeg_with_exif_gps())])
    return s, tree


def test_survey_pdf_contains_tags_figures_and_photo(actor, survey):
    s, _tree = survey
    data = service.survey_report(actor, s)
    assert [r.leak.tag for r in data.rows] == ["4711", "4712"]
    assert data.open.count == 1 and data.fixed.count == 1
    body = pdf.render(data, compress=False)
    assert body.startswith(b"%PDF")
    assert b"(4711)" in body and b"(4712)" in body and b"9999" not in body
    assert b"ACME GmbH" in body  # header
    assert b"Page 1 of" in body
    assert b"/Subtype /Image" in body  # the photo thumbnail
    assert b"Built-in defaults" in body  # settings used (none stored: defaults)


def test_routes_and_isolation(actor, survey, login, make_actor, other_org):
    s, tree = survey
    c = login(actor.user)
    resp = c.get(f"/surveys/{s.id}/report.pdf", base_url=BASE)
    assert resp.status_code == 200 and resp.mimetype == "application/pdf"
    assert resp.data.startswith(b"%PDF") and b"4711" in pdf_text(resp.data)
    resp = c.get(f"/locations/{tree['hall'].id}/report.pdf", base_url=BASE)
    text = pdf_text(resp.data)
    assert resp.status_code == 200 and b"4712" in text and b"4711" in text and b"9999" not in text
    stranger = make_actor("admin", organization=other_org)
    c2 = login(stranger.user, c=c.application.test_client())
    assert c2.get(f"/surveys/{s.id}/report.pdf", base_url=BASE).status_code == 404
    assert c2.get(f"/locations/{tree['hall'].id}/report.pdf", base_url=BASE).status_code == 404


def test_location_report_settings_with_validity(actor, survey):
    from leakhub.locations import service as loc

    _s, tree = survey
    loc.create_settings(actor, valid_from=dt.date(2024, 1, 1), price_per_kwh=D("0.25"),
                        currency="EUR", specific_power=D("6"), operating_hours=6000,
                        co2_factor=D("0.35"))
    data = service.location_report(actor, tree["site"])
    scopes = [(r.scope, r.valid_from) for r in data.settings]
    assert ("Organization", dt.date(2024, 1, 1)) in scopes
    body = pdf_text(pdf.render(data))
    assert b"01.01.2024" in body or b"2024-01-01" in body
