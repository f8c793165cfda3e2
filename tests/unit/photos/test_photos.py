"""Photos: type sniffing, metadata stripping, size limits, authorized delivery."""
import io

import pytest
from PIL import Image

from leakhub.photos import service
from leakhub.photos.models import Photo
from leakhub.photos.storage import photo_storage

from support.reporting_data import BASE, jpeg_with_exif_gps, make_tree, new_leak, png_bytes


@pytest.fixture
def leak(actor):
    return new_leak(actor, make_tree(actor)["area"])


def upload(c, leak_id, files, **kw):
    data = {"csrf_token": "t", "photos": [(io.BytesIO(b), name) for name, b in files]}
    return c.post(f"/leaks/{leak_id}/photos", data=data, content_type="multipart/form-data",
                  base_url=BASE, **kw)


def test_upload_strips_exif_and_gps_and_keeps_orientation(actor, leak, login):
    c = login(actor.user)
    raw = jpeg_with_exif_gps(size=(64, 48), orientation=6)  # 6: rotate 90° to display
    assert b"SecretCam" in raw
    resp = upload(c, leak.id, [("../../etc/Kupplung Öl<1>.jpg", raw)])
    assert resp.status_code == 302, resp.data
    photo = Photo.get()
    assert photo.original_filename == "Kupplung Öl_1_.jpg"
    stored = photo_storage(photo.organization_id).read(photo.sha256)
    import hashlib
    assert hashlib.sha256(stored).hexdigest() == photo.sha256
    for secret in (b"SecretCam", b"Model X", b"Firmware", b"secret comment", b"Exif"):
        assert secret not in stored
    img = Image.open(io.BytesIO(stored))
    assert not img.getexif()
    assert "exif" not in img.info and "comment" not in img.info
    # Orientation 6 applied to the pixels: the stored image is upright (48 × 64).
    assert (img.width, img.height) == (48, 64) == (photo.width, photo.height)
    # The served bytes are the stored bytes, privately cacheable; the thumbnail too.
    got = c.get(f"/photos/{photo.id}", base_url=BASE)
    assert got.status_code == 200 and got.data == stored
    assert got.headers["Content-Type"] == "image/jpeg"
    assert "private" in got.headers["Cache-Control"]
    thumb = c.get(f"/photos/{photo.id}/thumb", base_url=BASE)
    assert thumb.status_code == 200 and thumb.data[:3] == b"\xff\xd8\xff"
    assert b"SecretCam" not in thumb.data
    # Audit trail entry for the photo.
    from leakhub.audit.models import AuditEntry
    assert AuditEntry.select().where(AuditEntry.entity_type == "photo",
                                     AuditEntry.action == "create").count() == 1


def test_same_image_twice_is_stored_once_and_delete_releases_it(actor, leak, login):
    c = login(actor.user)
    raw = jpeg_with_exif_gps()
    assert upload(c, leak.id, [("a.jpg", raw), ("b.jpg", raw)]).status_code == 302
    a, b = list(Photo.select().order_by(Photo.id))
    assert a.sha256 == b.sha256
    store = photo_storage(actor.organization)
    assert len(list(store.keys())) == 2  # image + thumbnail
    resp = c.post(f"/photos/{a.id}/delete", data={"csrf_token": "t"}, base_url=BASE)
    assert resp.status_code == 302
    assert store.exists(b.sha256)  # still used by b
    c.post(f"/photos/{b.id}/delete", data={"csrf_token": "t"}, base_url=BASE)
    assert list(store.keys()) == [] and Photo.select().count() == 0


def test_png_accepted(actor, leak, login):
    c = login(actor.user)
    resp = upload(c, leak.id, [("plan.png", png_bytes())], headers={"Accept": "application/json"})
    assert resp.status_code == 201
    assert resp.json[0]["content_type"] == "image/png"


def test_non_image_renamed_jpg_refused_naming_the_file(actor, leak, login):
    c = login(actor.user)
    resp = upload(c, leak.id, [("ok.jpg", jpeg_with_exif_gps()),
                               ("invoice.jpg", b"%PDF-1.4 not an image")])
    assert resp.status_code == 422
    assert b"invoice.jpg" in resp.data
    assert Photo.select().count() == 0  # all or nothing
    # A file that starts like a JPEG but is broken.
    resp = upload(c, leak.id, [("broken.jpg", b"\xff\xd8\xff\xe0" + b"\0" * 100)],
                  headers={"Accept": "application/json"})
    assert resp.status_code == 422 and resp.json["file"] == "broken.jpg"


def test_oversized_request_413(config, app, actor, leak, login):
    c = login(actor.user)
    app.config["MAX_CONTENT_LENGTH"] = 50_000
    big = b"\xff\xd8\xff" + b"\0" * 60_000
    resp = upload(c, leak.id, [("big.jpg", big)])
    assert resp.status_code == 413
    assert Photo.select().count() == 0


def test_per_file_limit_413(monkeypatch, actor, leak, login):
    monkeypatch.setattr(service, "MAX_FILE_BYTES", 1000)
    c = login(actor.user)
    resp = upload(c, leak.id, [("large.jpg", jpeg_with_exif_gps(size=(400, 400)))])
    assert resp.status_code == 413 and b"large.jpg" in resp.data


def test_other_orgs_photo_is_404(actor, leak, login, make_actor, other_org):
    c = login(actor.user)
    assert upload(c, leak.id, [("a.jpg", jpeg_with_exif_gps())]).status_code == 302
    photo = Photo.get()
    stranger = make_actor("admin", organization=other_org)
    from flask.testing import FlaskClient
    c2 = login(stranger.user, c=c.application.test_client())
    assert isinstance(c2, FlaskClient)
    for url in (f"/photos/{photo.id}", f"/photos/{photo.id}/thumb"):
        assert c2.get(url, base_url=BASE).status_code == 404
    assert c2.post(f"/photos/{photo.id}/delete", data={"csrf_token": "t"},
                   base_url=BASE).status_code == 404
    assert upload(c2, leak.id, [("x.jpg", jpeg_with_exif_gps())]).status_code == 404
    assert Photo.select().count() == 1


def test_viewer_cannot_upload(actor, leak, login, make_user):
    viewer = make_user("viewer")
    c = login(viewer)
    assert upload(c, leak.id, [("a.jpg", jpeg_with_exif_gps())]).status_code == 403


def test_anonymous_redirected(client, actor, leak):
    assert client.get("/photos/1", base_url=BASE).status_code in (302, 401)


def test_leak_page_shows_photo_section(actor, leak, login, make_user):
    c = login(actor.user)
    upload(c, leak.id, [("a.jpg", jpeg_with_exif_gps())])
    photo = Photo.get()
    html = c.get(f"/leaks/{leak.id}", base_url=BASE).data.decode()
    assert 'data-testid="photos"' in html and f"/photos/{photo.id}/thumb" in html
    assert f'action="/leaks/{leak.id}/photos"' in html
    viewer = login(make_user("viewer"), c=c.application.test_client())
    html = viewer.get(f"/leaks/{leak.id}", base_url=BASE).data.decode()
    assert f"/photos/{photo.id}/thumb" in html and f'action="/leaks/{leak.id}/photos"' not in html


def test_garbage_collection_job_removes_files_of_deleted_leaks_only(actor, leak, login):
    import datetime as dt
    import os

    from leakhub.leaks import service as leaks
    c = login(actor.user)
    other = new_leak(actor, leak.location)
    assert upload(c, leak.id, [("a.jpg", jpeg_with_exif_gps())]).status_code == 302
    assert upload(c, other.id, [("b.png", png_bytes())]).status_code == 302
    store = photo_storage(actor.organization)
    kept = {p.sha256 for p in Photo.select().where(Photo.leak == other.id)}
    leaks.delete_leak(actor, leak)          # photo rows go by cascade; their files stay
    assert len(list(store.keys())) == 4
    # files younger than the grace period survive (an upload may be about to reference them)
    assert service.collect_garbage_everywhere().startswith("0 unreferenced")
    old = (dt.datetime.now() - dt.timedelta(hours=1)).timestamp()
    for key in store.keys():
        os.utime(store._path(key), (old, old))
    message = service.collect_garbage_everywhere()
    assert message.startswith("2 unreferenced") and actor.organization.slug in message
    assert kept <= set(store.keys()) and len(list(store.keys())) == 2
