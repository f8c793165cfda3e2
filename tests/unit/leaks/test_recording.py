"""Recording in the plant (issue 18 item 2): photos in the record form itself (all or
nothing), "save and record another" keeps finder, survey and location, fields per status,
and deferring needs a reason — in the form, the API and the service alike."""
import datetime as dt
import io
from decimal import Decimal as D

import pytest

from leakhub.core.validation import ValidationError
from leakhub.leaks import service
from leakhub.leaks.models import Leak
from leakhub.photos.models import Photo
from leakhub.surveys import service as sv

from support.reporting_data import BASE, jpeg_with_exif_gps, make_tree, png_bytes


@pytest.fixture
def place(actor):
    tree = make_tree(actor)
    survey = sv.create_survey(actor, name="Frühjahr", period_start=dt.date(2024, 3, 1),
                              scope=[tree["site"].id])
    return {"area": tree["area"], "survey": survey}


def form(place, **kw):
    data = {"csrf_token": "t", "location": str(place["area"].id),
            "survey": str(place["survey"].id), "found_at": "2024-03-05T10:15",
            "method": "device", "rate_lpm": "12,5", "component": "other", "priority": "2",
            "status": "open"}
    data.update(kw)
    return data


def post(c, data, files=()):
    data = dict(data)
    if files:
        data["photos"] = [(io.BytesIO(b), name) for name, b in files]
    return c.post("/leaks/new", data=data, content_type="multipart/form-data", base_url=BASE)


def test_record_form_offers_the_camera(actor, place, login):
    page = login(actor.user).get("/leaks/new", base_url=BASE).get_data(as_text=True)
    assert 'type="file" name="photos" accept="image/*" capture="environment" multiple' in page
    assert 'enctype="multipart/form-data"' in page


def test_photos_are_stored_with_the_new_leak(actor, place, login):
    c = login(actor.user)
    resp = post(c, form(place), [("a.jpg", jpeg_with_exif_gps()), ("b.png", png_bytes())])
    assert resp.status_code == 302, resp.get_data(as_text=True)[:2000]
    leak = Leak.get()
    names = sorted(p.original_filename for p in Photo.select().where(Photo.leak == leak.id))
    assert names == ["a.jpg", "b.png"]


def test_a_bad_photo_saves_nothing_and_names_the_file(actor, place, login):
    c = login(actor.user)
    resp = post(c, form(place, description="zischt"),
                [("good.png", png_bytes()), ("notes.jpg", b"%PDF-1.4 not an image")])
    assert resp.status_code == 422
    page = resp.get_data(as_text=True)
    assert 'data-testid="error-photos"' in page and "notes.jpg" in page
    assert 'zischt' in page  # the typed fields come back
    assert Leak.select().count() == 0 and Photo.select().count() == 0
    # Field errors and the photo's error at once, not one after the other.
    resp = post(c, form(place, rate_lpm="viel"), [("notes.jpg", b"not an image")])
    page = resp.get_data(as_text=True)
    assert resp.status_code == 422
    assert 'data-testid="error-photos"' in page and 'data-testid="error-rate_lpm"' in page
    assert Leak.select().count() == 0 and Photo.select().count() == 0


def test_save_and_record_another_keeps_finder_survey_and_location(actor, place, login):
    c = login(actor.user)
    resp = post(c, form(place, another="1", found_by_user=str(actor.user.id),
                        found_by="Fa. Druckluft Müller"))
    assert resp.status_code == 302
    nxt = c.get(resp.headers["Location"], base_url=BASE).get_data(as_text=True)
    assert f'<option value="{place["survey"].id}" selected' in nxt
    assert f'<option value="{place["area"].id}" selected' in nxt
    assert f'<option value="{actor.user.id}" selected' in nxt
    assert 'value="Fa. Druckluft Müller"' in nxt


def test_status_form_marks_the_fields_of_each_status(actor, place, login):
    leak = service.create_leak(actor, location=place["area"].id,
                               found_at=dt.datetime(2024, 3, 2, 9), rate_lpm=D("5"))
    page = login(actor.user).get(f"/leaks/{leak.id}", base_url=BASE).get_data(as_text=True)
    assert 'data-show-when="status=repair_planned"' in page
    assert 'data-show-when="status=repaired"' in page
    assert 'data-show-when="status=verified"' in page
    assert "js/leakform.js" in page


def test_deferring_needs_a_reason_everywhere(actor, place, login):
    leak = service.create_leak(actor, location=place["area"].id,
                               found_at=dt.datetime(2024, 3, 2, 9), rate_lpm=D("5"))
    with pytest.raises(ValidationError) as err:
        service.change_status(actor, leak, "deferred", note="  ")
    assert "note" in err.value.errors
    c = login(actor.user)
    resp = c.post(f"/leaks/{leak.id}/status", base_url=BASE,
                  data={"csrf_token": "t", "version": "1", "status": "deferred"})
    assert resp.status_code == 422
    assert 'data-testid="error-note"' in resp.get_data(as_text=True)
    assert Leak.get_by_id(leak.id).status == "open"
    resp = c.post(f"/leaks/{leak.id}/status", base_url=BASE,
                  data={"csrf_token": "t", "version": "1", "status": "deferred",
                        "note": "Stillstand im August"})
    assert resp.status_code == 302
    assert Leak.get_by_id(leak.id).status == "deferred"
