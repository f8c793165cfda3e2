"""Device ingest: findings become leaks "to review"; replays create nothing; all-or-nothing;
device tokens only; locations by full path or unique code; photos checked like uploads;
described in the OpenAPI document."""
import base64
import io
import time

import pytest
from PIL import Image

import leakhub.api.auth as auth
from leakhub import authz
from leakhub.devices import service
from leakhub.devices.models import Device
from leakhub.identity.models import User
from leakhub.leaks.models import Leak
from leakhub.locations.models import Location
from leakhub.orgs.models import Organization
from leakhub.photos import service as photos
from leakhub.photos.models import Photo
from leakhub.photos.storage import photo_storage

from support.reporting_data import jpeg_with_exif_gps, png_bytes


@pytest.fixture
def setup(app, monkeypatch):
    org = Organization.create(slug="acme", name="ACME", oidc_client_secret="x")
    Location.create(organization=org, kind="site", code="P1", name="Plant 1")
    device = Device.create(organization=org, name="LD500", client_id="device-ld500", serial="S-1")
    state = {"actor": authz.Actor(organization=org, kind="device", device=device,
                                  label="device LD500")}
    monkeypatch.setattr(auth, "authenticate", lambda: state["actor"])
    return org, device, state


def post(client, body):
    return client.post("/api/v1/ingest/findings", json=body)


def test_ingest_creates_leaks_to_review_and_replay_is_idempotent(client, setup):
    org, device, _ = setup
    body = {"findings": [{"id": "f-1", "location_code": "P1", "rate_lpm": "12,5",
                          "component": "coupling"},
                         {"id": "f-2", "location_code": "P1", "rate_lpm": 3}]}
    first = post(client, body)
    assert first.status_code == 201, first.json
    assert len(first.json["created"]) == 2
    leaks = list(Leak.select().where(Leak.organization == org))
    assert {lk.status for lk in leaks} == {"to_review"} \
        and {lk.source for lk in leaks} == {"device"}
    again = post(client, body)
    assert again.status_code == 200 and len(again.json["duplicates"]) == 2
    assert Leak.select().count() == 2


def test_one_bad_finding_rejects_the_batch_naming_it(client, setup):
    body = {"findings": [{"id": "ok", "location_code": "P1", "rate_lpm": 1},
                         {"id": "bad", "location_code": "P1", "rate_lpm": "lots"}]}
    resp = post(client, body)
    assert resp.status_code == 422
    assert "findings[1].rate_lpm" in resp.json["errors"]
    assert Leak.select().count() == 0
    resp = post(client, {"findings": [{"id": "x", "location_code": "NOPE", "rate_lpm": 1}]})
    assert resp.status_code == 422 and "findings[0].location_code" in resp.json["errors"]


def test_user_tokens_cannot_ingest(client, setup):
    org, _, state = setup
    user = User.create(organization=org, sub="u", email="u@x", role="admin")
    state["actor"] = authz.Actor(organization=org, kind="user", user=user)
    assert post(client, {"findings": [{"id": "1", "location_code": "P1"}]}).status_code == 403


# ---------------------------------------------------------------- locations: path or code

@pytest.fixture
def plants(setup):
    """W01 Werk Süd / H3 Halle 3 / M Montage, the same building and area codes under
    W02 Werk Nord, and a building whose name contains a slash."""
    org = setup[0]
    out = {}
    for code, name in (("W01", "Werk Süd"), ("W02", "Werk Nord")):
        site = Location.create(organization=org, kind="site", code=code, name=name)
        hall = Location.create(organization=org, kind="building", code="H3", name="Halle 3",
                               parent=site)
        out[code] = Location.create(organization=org, kind="area", code="M", name="Montage",
                                    parent=hall)
    site = Location.get(Location.code == "W01")
    out["slash"] = Location.create(organization=org, kind="building", code="H34",
                                   name="Halle 3/4", parent=site)
    return out


def finding(i="f-1", **kw):
    return {"id": i, "rate_lpm": 2, **kw}


@pytest.mark.parametrize("text", [
    "Werk Süd / Halle 3 / Montage",       # names, as the issue writes it
    "W01 / H3 / M",                       # codes
    "W01 · Werk Süd / H3 · Halle 3 / M · Montage",   # labels, as Leakhub shows the path
    "werk süd/HALLE 3 /  montage",        # case and white space do not matter
])
def test_location_by_full_path(client, setup, plants, text):
    resp = post(client, {"findings": [finding(location=text)]})
    assert resp.status_code == 201, resp.json
    assert Leak.get_by_id(resp.json["created"][0]["leak_id"]).location_id == plants["W01"].id


def test_location_by_unique_code_and_a_name_containing_a_slash(client, setup, plants):
    resp = post(client, {"findings": [finding("a", location="H34"),
                                      finding("b", location="Werk Süd / Halle 3/4"),
                                      finding("c", location_code="p1")]})
    assert resp.status_code == 201, resp.json
    got = [Leak.get_by_id(c["leak_id"]).location for c in resp.json["created"]]
    assert [loc.code for loc in got] == ["H34", "H34", "P1"]


def test_ambiguous_code_is_422_naming_every_candidate(client, setup, plants):
    resp = post(client, {"findings": [finding("ok", location="W01 / H3 / M"),
                                      finding("x", location="M")]})
    assert resp.status_code == 422 and resp.mimetype == "application/problem+json"
    body = resp.json
    assert body["status"] == 422 and body["title"]
    expected = ["W01 · Werk Süd / H3 · Halle 3 / M · Montage",
                "W02 · Werk Nord / H3 · Halle 3 / M · Montage"]
    assert body["candidates"] == {"findings[1].location": expected}
    message = body["errors"]["findings[1].location"]
    assert all(path in message for path in expected)
    assert Leak.select().count() == 0   # nothing of the batch
    # A candidate's path, sent back as it is, is unique.
    resp = post(client, {"findings": [finding("x", location=expected[1])]})
    assert resp.status_code == 201
    assert Leak.get_by_id(resp.json["created"][0]["leak_id"]).location_id == plants["W02"].id


def test_unknown_location_names_the_finding_and_field(client, setup, plants):
    for loc, field in ((("location", "Werk Ost / Halle 3"), "findings[1].location"),
                       (("location_code", "NOPE"), "findings[1].location_code"),
                       (("location", ""), "findings[1].location")):
        resp = post(client, {"findings": [finding("a", location="W01"),
                                          finding("b", **{loc[0]: loc[1]})]})
        assert resp.status_code == 422, resp.json
        assert field in resp.json["errors"], resp.json
    resp = post(client, {"findings": [finding("a")]})   # no location at all
    assert resp.status_code == 422 and "findings[0].location" in resp.json["errors"]
    assert Leak.select().count() == 0


def test_resolve_location_is_a_function_of_actor_and_text(setup, plants):
    _org, _device, state = setup
    actor = state["actor"]
    assert service.resolve_location(actor, "Werk Nord / H3 / Montage").id == plants["W02"].id
    with pytest.raises(service.AmbiguousLocation) as exc:
        service.resolve_location(actor, "h3", "where")
    assert list(exc.value.candidates) == ["where"] and len(exc.value.candidates["where"]) == 2
    with pytest.raises(service.ValidationError) as exc:
        service.resolve_location(actor, "Werk Süd / Halle 9")
    assert "location" in exc.value.errors


def test_another_organizations_location_is_unknown(client, setup, plants, other_org):
    Location.create(organization=other_org, kind="site", code="ZZ", name="Fremdwerk")
    resp = post(client, {"findings": [finding(location="ZZ")]})
    assert resp.status_code == 422 and "findings[0].location" in resp.json["errors"]


# ---------------------------------------------------------------- photos

def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def test_photos_are_stored_without_metadata_and_replay_creates_nothing(client, setup):
    raw = jpeg_with_exif_gps(size=(64, 48))
    assert b"SecretCam" in raw
    body = {"findings": [finding("p-1", location="P1", photos=[
        {"filename": "../Kupplung.jpg", "content_base64": b64(raw)},
        {"content_base64": b64(png_bytes())}])]}
    resp = post(client, body)
    assert resp.status_code == 201, resp.json
    assert resp.json["created"][0]["photos"] == 2
    leak = Leak.get_by_id(resp.json["created"][0]["leak_id"])
    stored = list(Photo.select().where(Photo.leak == leak).order_by(Photo.id))
    assert [p.content_type for p in stored] == ["image/jpeg", "image/png"]
    assert stored[0].original_filename == "Kupplung.jpg" and stored[0].uploaded_by is None
    data = photo_storage(leak.organization_id).read(stored[0].sha256)
    for secret in (b"SecretCam", b"Model X", b"Firmware", b"secret comment", b"Exif"):
        assert secret not in data
    assert not Image.open(io.BytesIO(data)).getexif()
    files = sorted(photo_storage(leak.organization_id).keys())
    again = post(client, body)
    assert again.status_code == 200 and again.json["created"] == []
    assert again.json["duplicates"] == [{"id": "p-1", "leak_id": leak.id}]
    assert Leak.select().count() == 1 and Photo.select().count() == 2
    assert sorted(photo_storage(leak.organization_id).keys()) == files


def _nothing_written(org):
    assert Leak.select().count() == 0 and Photo.select().count() == 0
    assert list(photo_storage(org.id).keys()) == []


def test_bad_photo_type_refuses_the_batch_naming_finding_and_photo(client, setup):
    org = setup[0]
    body = {"findings": [
        finding("a", location="P1", photos=[{"content_base64": b64(png_bytes())}]),
        finding("b", location="P1", photos=[
            {"content_base64": b64(png_bytes())},
            {"filename": "virus.jpg", "content_base64": b64(b"MZ\x90\x00 not an image")}])]}
    resp = post(client, body)
    assert resp.status_code == 422, resp.json
    assert "JPEG, PNG or WebP" in resp.json["errors"]["findings[1].photos[1]"]
    _nothing_written(org)
    body["findings"][1]["photos"][1] = {"content_base64": "***not base64***"}
    resp = post(client, body)
    assert resp.status_code == 422 and "findings[1].photos[1].content_base64" in resp.json["errors"]
    body["findings"][1]["photos"][1] = {"content_base64": b64(png_bytes()), "exif": "x"}
    assert post(client, body).status_code == 422
    _nothing_written(org)


def test_too_big_photo_is_422_naming_it(client, setup, monkeypatch):
    org = setup[0]
    raw = jpeg_with_exif_gps(size=(400, 400))
    monkeypatch.setattr(photos, "MAX_FILE_BYTES", len(raw) - 1)    # the upload limit
    body = {"findings": [finding("a", location="P1", photos=[{"content_base64": b64(raw)}])]}
    resp = post(client, body)
    assert resp.status_code == 422 and "larger than" in resp.json["errors"]["findings[0].photos[0]"]
    # Longer base64 than the limit allows is refused before decoding.
    monkeypatch.setattr(service, "MAX_PHOTO_BASE64", 100)
    resp = post(client, body)
    assert resp.status_code == 422 and "larger than" in resp.json["errors"]["findings[0].photos[0]"]
    _nothing_written(org)


def test_too_many_pixels_is_422(client, setup, monkeypatch):
    monkeypatch.setattr(photos, "MAX_PIXELS", 100)
    body = {"findings": [finding("a", location="P1",
                                 photos=[{"content_base64": b64(png_bytes((20, 10)))}])]}
    resp = post(client, body)
    assert resp.status_code == 422 and "pixels" in resp.json["errors"]["findings[0].photos[0]"]
    _nothing_written(setup[0])


def test_body_shape_errors_are_problem_documents(client, setup):
    resp = client.post("/api/v1/ingest/findings", data="{", content_type="application/json")
    assert resp.status_code == 400 and resp.mimetype == "application/problem+json"
    resp = client.post("/api/v1/ingest/findings", data="x", content_type="text/plain")
    assert resp.status_code == 415 and resp.mimetype == "application/problem+json"
    for bad, field in (({"findings": []}, "findings"), ({"findings": "x"}, "findings"),
                       ({"leaks": []}, "leaks"),
                       ({"findings": [finding("a", location="P1", colour="red")]},
                        "findings[0]"),
                       ({"findings": [finding("a", location="P1"), finding("a", location="P1")]},
                        "findings[1].id")):
        resp = post(client, bad)
        assert resp.status_code == 422 and field in resp.json["errors"], (bad, resp.json)


def test_found_at_with_offset_is_stored_in_utc(client, setup):
    resp = post(client, {"findings": [finding(location="P1",
                                              found_at="2024-03-31T14:30:00+02:00")]})
    assert resp.status_code == 201, resp.json
    leak = Leak.get_by_id(resp.json["created"][0]["leak_id"])
    assert leak.found_at.isoformat() == "2024-03-31T12:30:00"


def test_openapi_describes_ingest(client):
    doc = client.get("/api/v1/openapi.json").json
    op = doc["paths"]["/api/v1/ingest/findings"]["post"]
    assert op["security"] == [{"bearerAuth": []}] and "Device tokens only" in op["description"]
    ref = op["requestBody"]["content"]["application/json"]["schema"]["$ref"]
    schemas = doc["components"]["schemas"]
    request = schemas[ref.rsplit("/", 1)[-1]]
    finding_ref = request["properties"]["findings"]["items"]["$ref"]
    props = schemas[finding_ref.rsplit("/", 1)[-1]]["properties"]
    assert {"id", "location", "photos", "rate_lpm"} <= set(props)
    for code in ("401", "403", "422"):
        assert "application/problem+json" in op["responses"][code]["content"], code
    assert {"200", "201"} <= set(op["responses"])


def test_request_over_the_upload_limit_is_413(app, client, setup):
    app.config["MAX_CONTENT_LENGTH"] = 1_000
    body = {"findings": [finding("a", location="P1", photos=[
        {"content_base64": b64(jpeg_with_exif_gps(size=(400, 400)))}])]}
    resp = post(client, body)
    assert resp.status_code == 413 and resp.mimetype == "application/problem+json"
    assert Leak.select().count() == 0


def test_long_or_repetitive_paths_are_refused_quickly(client, setup, plants):
    started = time.monotonic()
    for text in ("/".join(["Werk Süd"] * 110), "/" * 999, "a" * 1001):
        resp = post(client, {"findings": [finding(location=text)]})
        assert resp.status_code == 422 and "findings[0].location" in resp.json["errors"]
    assert time.monotonic() - started < 5


def test_a_location_the_device_may_not_write_is_403_naming_the_finding(client, setup, plants,
                                                                        monkeypatch):
    def refuse(actor, action, target, field, **kw):
        if target.id == plants["W02"].id:
            raise authz.TargetForbidden(field, "not here")
    monkeypatch.setattr(service, "require_target", refuse)
    resp = post(client, {"findings": [finding("a", location="W01 / H3 / M"),
                                      finding("b", location="W02 / H3 / M")]})
    assert resp.status_code == 403 and resp.mimetype == "application/problem+json"
    assert resp.json["errors"] == {"findings[1].location": "not here"}
    assert Leak.select().count() == 0
