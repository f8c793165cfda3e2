"""Offline capture's sync through /api/v1 (issue 18): idempotent by client id, called by the
signed-in browser session with its CSRF token in a header; the capture page, its service
worker and manifest."""
from __future__ import annotations

import datetime as dt
import io
import json
import uuid

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from leakhub.audit.models import AuditEntry
from leakhub.authz import Actor
from leakhub.leaks import service as leaks
from leakhub.leaks.models import Leak
from leakhub.orgs.models import Organization
from leakhub.photos.models import Photo

from support.reporting_data import make_tree, png_bytes

API = "/api/v1"
CSRF = {"X-CSRF-Token": "t"}


@pytest.fixture
def editor(make_user):
    return make_user("editor", name="Erika Auditor")


@pytest.fixture
def where(actor):
    return make_tree(actor)


@pytest.fixture
def session(login, editor, where):
    return login(editor)


def post_leak(c, location, client_id, headers=CSRF, **extra):
    body = {"client_id": client_id, "location": location.id,
            "found_at": "2026-03-01T09:30:00Z", "rate_lpm": 12.5, **extra}
    return c.post(API + "/leaks", data=json.dumps(body), content_type="application/json",
                  headers=headers)


def post_photo(c, leak_id, client_id, headers=CSRF):
    data = {"client_id": client_id, "photos": (io.BytesIO(png_bytes()), "p.png")}
    return c.post(f"{API}/leaks/{leak_id}/photos", data=data,
                  content_type="multipart/form-data", headers=headers)


def test_same_client_id_twice_makes_one_leak_named_after_the_auditor(session, where, editor):
    cid = str(uuid.uuid4())
    first = post_leak(session, where["site"], cid)
    assert first.status_code == 201, first.get_data(as_text=True)
    again = post_leak(session, where["site"], cid.upper(), rate_lpm=99)  # a replay
    assert again.status_code == 200
    assert again.get_json()["id"] == first.get_json()["id"]
    assert again.get_json()["rate_lpm"] == first.get_json()["rate_lpm"]  # not changed
    assert Leak.select().where(Leak.client_id == cid).count() == 1
    entry = (AuditEntry.select().where((AuditEntry.entity_type == "leak")
                                       & (AuditEntry.entity_id == first.get_json()["id"])
                                       & (AuditEntry.action == "create")).get())
    assert entry.actor_kind == "user" and entry.actor_id == editor.id


def test_the_same_client_id_in_another_organization_is_another_leak(
        session, where, other_org, make_user, login, app):
    cid = str(uuid.uuid4())
    mine = post_leak(session, where["site"], cid)
    assert mine.status_code == 201
    outsider = make_user("admin", organization=other_org)
    theirs_tree = make_tree(Actor(organization=other_org, kind="user", user=outsider))
    other = login(outsider, app.test_client())
    resp = post_leak(other, theirs_tree["site"], cid)
    assert resp.status_code == 201, resp.get_data(as_text=True)
    assert resp.get_json()["id"] != mine.get_json()["id"]
    assert Leak.select().where(Leak.client_id == cid).count() == 2
    assert Leak.get_by_id(resp.get_json()["id"]).organization_id == other_org.id
    assert Leak.get_by_id(mine.get_json()["id"]).rate_lpm == 12.5  # untouched


@pytest.mark.parametrize("bad", ["nope", "1234", "g" * 36, "x" * 64, 17, "' OR 1=1 --"])
def test_malformed_client_id_is_422_naming_the_field(session, where, bad):
    resp = post_leak(session, where["site"], bad)
    assert resp.status_code == 422
    assert "client_id" in resp.get_json()["errors"]
    assert Leak.select().count() == 0


def test_without_client_id_every_post_is_a_new_leak(session, where):
    body = {"location": where["site"].id, "found_at": "2026-03-01T09:30:00Z", "rate_lpm": 3}
    for _ in range(2):
        resp = session.post(API + "/leaks", json=body, headers=CSRF)
        assert resp.status_code == 201
    assert Leak.select().count() == 2


def test_session_calls_need_the_csrf_header_and_our_origin(session, where):
    cid = str(uuid.uuid4())
    assert post_leak(session, where["site"], cid, headers={}).status_code == 403
    assert post_leak(session, where["site"], cid,
                     headers={"X-CSRF-Token": "wrong"}).status_code == 403
    assert post_leak(session, where["site"], cid,
                     headers={**CSRF, "Origin": "https://evil.test"}).status_code == 403
    assert Leak.select().count() == 0
    assert post_leak(session, where["site"], cid,
                     headers={**CSRF, "Origin": "https://leakhub.test"}).status_code == 201


def test_no_session_no_token_is_401_so_the_page_asks_to_sign_in(client, where):
    resp = post_leak(client, where["site"], str(uuid.uuid4()))
    assert resp.status_code == 401
    assert resp.mimetype == "application/problem+json"
    assert client.get(API + "/capture").status_code == 401


def test_a_viewer_cannot_sync(login, make_user, where):
    c = login(make_user("viewer"))
    assert post_leak(c, where["site"], str(uuid.uuid4())).status_code == 403


def test_photos_are_idempotent_per_client_id(session, where):
    leak = post_leak(session, where["site"], str(uuid.uuid4())).get_json()
    pid = str(uuid.uuid4())
    first = post_photo(session, leak["id"], pid)
    assert first.status_code == 201, first.get_data(as_text=True)
    again = post_photo(session, leak["id"], pid)
    assert again.status_code == 200
    assert again.get_json()["items"][0]["id"] == first.get_json()["items"][0]["id"]
    assert Photo.select().where(Photo.leak == leak["id"]).count() == 1
    other = post_leak(session, where["site"], str(uuid.uuid4())).get_json()
    clash = post_photo(session, other["id"], pid)
    assert clash.status_code == 409
    assert Photo.select().where(Photo.leak == other["id"]).count() == 0
    bad = post_photo(session, leak["id"], "not-a-uuid")
    assert bad.status_code == 422 and "client_id" in bad.get_json()["errors"]


def test_capture_data_gives_the_csrf_token_only_to_the_sync(session, where):
    plain = session.get(API + "/capture")
    assert plain.status_code == 200
    data = plain.get_json()
    assert "csrf_token" not in data
    assert {loc["id"] for loc in data["locations"]} >= {where["site"].id, where["hall"].id}
    assert data["next_tag"] == 1
    synced = session.get(API + "/capture", headers={"X-Leakhub-Sync": "1"})
    assert synced.get_json()["csrf_token"] == "t"


def test_page_service_worker_and_manifest(session, client):
    page = session.get("/capture")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert 'rel="manifest"' in html and "js/capture.js" in html
    assert "<script>" not in html  # no inline script: the CSP stays strict
    sw = client.get("/sw.js")
    assert sw.status_code == 200 and sw.mimetype == "text/javascript"
    assert sw.headers["Cache-Control"] == "no-cache"
    assert "/static/js/capture.js?v=" in sw.get_data(as_text=True)
    manifest = client.get("/manifest.webmanifest")
    assert manifest.mimetype == "application/manifest+json"
    doc = manifest.get_json(force=True)
    assert doc["start_url"] == "/capture" and doc["display"] == "standalone"
    for icon in doc["icons"]:
        assert client.get(icon["src"]).status_code == 200


# ---------------------------------------------------------------- property: replays

POOL = [str(uuid.UUID(int=n + 1)) for n in range(4)]


def test_any_sequence_of_replays_makes_one_leak_per_client_id(app, make_user):
    """Whatever order and however often the ids come (a flaky network replays any prefix of
    the queue), each id makes exactly one leak, created on its first call only."""
    counter = {"n": 0}

    @settings(max_examples=25, deadline=None,
              suppress_health_check=[HealthCheck.function_scoped_fixture])
    @given(st.lists(st.sampled_from(POOL + [""]), min_size=1, max_size=12))
    def run(ids):
        counter["n"] += 1
        org = Organization.create(slug=f"p{counter['n']}", name="P", oidc_client_secret="x")
        user = make_user("editor", organization=org)
        actor = Actor(organization=org, kind="user", user=user)
        site = make_tree(Actor(organization=org, kind="user",
                               user=make_user("admin", organization=org)))["site"]
        seen: dict = {}
        for cid in ids:
            leak, created = leaks.record_leak_once(
                actor, cid, location=site.id, found_at=dt.datetime(2026, 3, 1), rate_lpm=1)
            if cid and cid in seen:
                assert not created and leak.id == seen[cid]
            else:
                assert created
                if cid:
                    seen[cid] = leak.id
        made = Leak.select().where(Leak.organization == org.id)
        assert made.count() == len(seen) + ids.count("")
        assert sorted(x.client_id for x in made if x.client_id) == sorted(seen)

    run()
