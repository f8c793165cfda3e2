"""The JSON API /api/v1 through the Flask test client.

Authentication is faked at the edge: `leakhub.api.auth.authenticate` returns the Actor the
test chose (real tokens: tests/integration/test_api_tokens.py). The last section runs the real
`authenticate` with locally signed tokens and a stand-in for the realm's key endpoint.
"""
from __future__ import annotations

import datetime as dt
import io
import json
import time
from decimal import Decimal as D

import pytest

from leakhub.audit.models import AuditEntry
from leakhub.authz import Actor
from leakhub.core.errors import Conflict, Forbidden, Invalid, NotFound, Unavailable
from leakhub.dashboard import service as dashboard_service
from leakhub.leaks import calc
from leakhub.leaks import service as leak_service
from leakhub.leaks.models import Leak
from leakhub.locations.models import Location
from leakhub.photos.models import Photo
from leakhub.security.models import SecurityEvent
from leakhub.surveys.models import Survey

from support.reporting_data import jpeg_with_exif_gps, make_tree, new_leak

API = "/api/v1"


# ---------------------------------------------------------------- fixtures

class As:
    """Who the faked authentication says is calling (None: no valid token → 401)."""
    user = None


@pytest.fixture
def caller(monkeypatch):
    from leakhub.api import auth

    state = As()

    def fake_authenticate():
        if state.user is None:
            auth._reject("no token (test)")
        user = state.user
        user = type(user).get_by_id(user.id)  # re-read per request like the real one
        if not user.enabled:
            auth._reject("user is unknown or disabled")
        if user.role is None:
            from werkzeug.exceptions import Forbidden
            raise Forbidden(description="Your account is waiting for access.")
        return Actor(organization=user.organization, kind="user", user=user)

    monkeypatch.setattr(auth, "authenticate", fake_authenticate)
    return state


@pytest.fixture
def admin(make_user):
    return make_user("admin")


@pytest.fixture
def api(client, caller, admin):
    """api.get/post/patch/delete(path, json=..., as_=user) → response (JSON bodies)."""
    class Client:
        def call(self, method, path, *, as_=admin, json_body=None, raw=None, headers=None,
                 **kw):
            caller.user = as_
            kwargs = dict(headers=headers or {}, **kw)
            if json_body is not None:
                kwargs["data"] = json.dumps(json_body)
                kwargs["content_type"] = "application/json"
            elif raw is not None:
                kwargs["data"] = raw
                kwargs.setdefault("content_type", "application/json")
            return client.open(API + path, method=method, **kwargs)

        def get(self, path, **kw):
            return self.call("GET", path, **kw)

        def post(self, path, json=None, **kw):
            return self.call("POST", path, json_body=json, **kw)

        def patch(self, path, json=None, **kw):
            return self.call("PATCH", path, json_body=json, **kw)

        def delete(self, path, **kw):
            return self.call("DELETE", path, **kw)
    return Client()


@pytest.fixture
def survey(actor, tree):
    from leakhub.surveys import service as sv

    return sv.create_survey(actor, name="Frühjahr 2024", period_start=dt.date(2024, 3, 1),
                            scope=[tree["site"].id])


def is_problem(resp, status):
    assert resp.status_code == status, (resp.status_code, resp.get_data(as_text=True))
    assert resp.mimetype == "application/problem+json"
    body = resp.get_json()
    assert body["status"] == status and body["title"]
    return body


# ---------------------------------------------------------------- document, auth edge

def test_openapi_document_is_public_and_describes_every_api_route(app, client):
    from leakhub.api import openapi

    resp = client.get(API + "/openapi.json")
    assert resp.status_code == 200 and resp.mimetype == "application/json"
    doc = resp.get_json()
    assert doc["openapi"].startswith("3.1")
    assert doc["components"]["securitySchemes"]["bearerAuth"]["scheme"] == "bearer"
    described = {(path, method) for path, ops in doc["paths"].items() for method in ops}
    # Routes registered by other feature folders that have not declared their operation
    # yet. Remove an entry when its view gets its @openapi.operation (this test then
    # insists that it is described).
    pending = set()
    for rule in openapi.api_rules(app):
        path = openapi._VARIABLE.sub(lambda m: "{" + m.group(1) + "}", rule.rule)
        for method in rule.methods - {"HEAD", "OPTIONS"}:
            if rule.endpoint in pending:
                assert (path, method.lower()) not in described, \
                    f"{rule.endpoint} is described now: remove it from `pending`"
                continue
            assert (path, method.lower()) in described, f"{rule.endpoint} is not described"
            op = doc["paths"][path][method.lower()]
            assert op["responses"], rule.endpoint
            if rule.endpoint != "api.openapi_json":
                assert op["security"] == [{"bearerAuth": []}]
                assert "401" in op["responses"]
                for code, r in op["responses"].items():
                    if code[0] in "45":
                        assert "application/problem+json" in r["content"], (rule.endpoint, code)
    # every $ref resolves
    text = json.dumps(doc)
    import re
    for name in set(re.findall(r'"#/components/schemas/([A-Za-z]+)"', text)):
        assert name in doc["components"]["schemas"], name


def test_missing_or_invalid_token_is_401_problem_with_challenge(api, tree):
    for path in ("/leaks", "/locations", f"/locations/{tree['site'].id}", "/dashboard"):
        resp = api.get(path, as_=None)
        body = is_problem(resp, 401)
        assert resp.headers["WWW-Authenticate"].startswith("Bearer")
        assert "Werk" not in json.dumps(body)
    assert api.post("/locations", json={}, as_=None).status_code == 401


def test_pending_and_disabled_users(api, make_user, tree):
    pending = make_user(None)
    is_problem(api.get("/leaks", as_=pending), 403)
    gone = make_user("admin")
    gone.enabled = False
    gone.save()
    is_problem(api.get("/leaks", as_=gone), 401)


# ---------------------------------------------------------------- locations

def test_location_crud(api, admin):
    resp = api.post("/locations", json={"kind": "site", "code": "BER", "name": "Werk Berlin"})
    assert resp.status_code == 201, resp.data
    site = resp.get_json()
    assert resp.headers["Location"] == f"{API}/locations/{site['id']}"
    assert site["kind"] == "site" and site["parent"] is None and site["version"] == 1
    assert site["created_at"].endswith("Z")
    dt.datetime.fromisoformat(site["created_at"])
    resp = api.post("/locations", json={"kind": "building", "code": "H1", "name": "Halle 1",
                                        "parent": site["id"]})
    assert resp.status_code == 201
    hall = resp.get_json()
    got = api.get(f"/locations/{hall['id']}")
    assert got.status_code == 200 and got.get_json()["parent"] == site["id"]
    assert got.headers["ETag"] == '"1"'
    listed = api.get("/locations").get_json()
    assert listed["total"] == 2 and [i["code"] for i in listed["items"]] == ["BER", "H1"]

    resp = api.patch(f"/locations/{hall['id']}", json={"name": "Halle Eins", "version": 1})
    assert resp.status_code == 200, resp.data
    assert resp.get_json()["name"] == "Halle Eins" and resp.get_json()["code"] == "H1"
    assert resp.get_json()["version"] == 2 and resp.headers["ETag"] == '"2"'

    # Site with a building below cannot go: 409, nothing deleted.
    is_problem(api.delete(f"/locations/{site['id']}"), 409)
    assert api.delete(f"/locations/{hall['id']}").status_code == 204
    assert api.delete(f"/locations/{site['id']}").status_code == 204
    assert Location.select().count() == 0
    assert AuditEntry.select().where(AuditEntry.entity_type == "location").count() == 5


def test_location_validation_names_fields(api, tree):
    body = is_problem(api.post("/locations", json={"kind": "tower", "code": "", "name": 5,
                                                   "colour": "red", "parent": "x"}), 422)
    assert set(body["errors"]) == {"name", "colour", "parent"}  # types and unknown first
    assert body["errors"]["colour"] == "Unknown field."
    body = is_problem(api.post("/locations", json={"kind": "tower", "code": "", "name": "N"}),
                      422)
    assert set(body["errors"]) == {"kind", "code"}
    body = is_problem(api.post("/locations", json={"kind": "building", "code": "X",
                                                   "name": "N"}), 422)
    assert set(body["errors"]) == {"parent"}
    body = is_problem(api.post("/locations", json={"kind": "site", "code": "BER",
                                                   "name": "dup"}), 422)
    assert set(body["errors"]) == {"code"}
    body = is_problem(api.patch(f"/locations/{tree['site'].id}",
                                json={"kind": "area", "version": 1}), 422)
    assert set(body["errors"]) == {"kind"}
    assert Location.select().count() == 4


def test_malformed_json_wrong_media_type_and_non_objects(api, tree):
    is_problem(api.call("POST", "/locations", raw=b'{"kind": "site",'), 400)
    is_problem(api.call("POST", "/locations", raw=b'{"code": NaN}'), 400)
    is_problem(api.call("POST", "/locations", raw=b"\xff\xfe garbage"), 400)
    is_problem(api.call("POST", "/locations", raw=b"", content_type="application/json"), 400)
    is_problem(api.call("POST", "/locations", raw=b"kind=site", content_type="text/plain"), 415)
    body = is_problem(api.call("POST", "/locations", raw=b"[1, 2]"), 422)
    assert "" in body["errors"]
    deep = b"[" * 100000 + b"]" * 100000
    assert api.call("POST", "/locations", raw=deep).status_code in (400, 413)
    assert Location.select().count() == 4


# ---------------------------------------------------------------- surveys

def test_survey_crud_and_scope(api, tree):
    resp = api.post("/surveys", json={"name": "Herbst", "period_start": "2024-09-01",
                                      "scope": [tree["hall"].id, tree["site2"].id],
                                      "coverage_percent": 80})
    assert resp.status_code == 201, resp.data
    s = resp.get_json()
    assert resp.headers["Location"] == f"{API}/surveys/{s['id']}"
    assert s["scope"] == sorted([tree["hall"].id, tree["site2"].id])
    assert s["period_start"] == "2024-09-01" and s["period_end"] is None
    assert s["status"] == "planned" and s["coverage_percent"] == 80
    resp = api.patch(f"/surveys/{s['id']}", json={"status": "in_progress",
                                                 "scope": [tree["site"].id]},
                     headers={"If-Match": '"1"'})
    assert resp.status_code == 200, resp.data
    s2 = resp.get_json()
    assert s2["status"] == "in_progress" and s2["scope"] == [tree["site"].id]
    assert s2["name"] == "Herbst" and s2["coverage_percent"] == 80  # untouched fields kept
    assert api.get("/surveys?status=in_progress").get_json()["total"] == 1
    assert api.get("/surveys?status=completed").get_json()["total"] == 0
    is_problem(api.get("/surveys?status=bogus"), 422)
    body = is_problem(api.post("/surveys", json={"name": "x", "period_start": "2024-09-01",
                                                 "period_end": "2024-08-01"}), 422)
    assert set(body["errors"]) == {"period_end"}
    body = is_problem(api.post("/surveys", json={"name": "x", "period_start": "2024-09-01",
                                                 "scope": [1, "2"]}), 422)
    assert set(body["errors"]) == {"scope"}
    assert api.delete(f"/surveys/{s['id']}").status_code == 204
    assert Survey.select().count() == 0


def test_survey_with_leaks_cannot_be_deleted(api, actor, tree, survey):
    new_leak(actor, tree["area"], survey=survey.id)
    is_problem(api.delete(f"/surveys/{survey.id}"), 409)


def test_survey_scope_of_another_org_is_refused_whole(api, tree, make_actor, other_org):
    theirs = make_tree(make_actor("admin", organization=other_org))
    body = is_problem(api.post("/surveys", json={"name": "x", "period_start": "2024-01-01",
                                                 "scope": [theirs["site"].id]}), 422)
    assert set(body["errors"]) == {"scope"}
    assert Survey.select().count() == 0


# ---------------------------------------------------------------- leaks

def leak_body(tree, **kw):
    body = {"location": tree["area"].id, "found_at": "2024-03-05T09:15:00Z", "rate_lpm": 12.5,
            "pressure_bar": 6.5, "component": "frl_unit", "priority": 1,
            "description": "Wartungseinheit zischt"}
    body.update(kw)
    return body


def test_leak_create_get_and_representation(api, tree, survey):
    resp = api.post("/leaks", json=leak_body(tree, survey=survey.id))
    assert resp.status_code == 201, resp.data
    lk = resp.get_json()
    assert resp.headers["Location"] == f"{API}/leaks/{lk['id']}"
    assert lk["tag"] == "1" and lk["status"] == "open" and lk["version"] == 1
    assert lk["rate_lpm"] == 12.5 and isinstance(lk["rate_lpm"], float)
    assert lk["pressure_bar"] == 6.5 and lk["priority"] == 1
    assert lk["found_at"] == "2024-03-05T09:15:00Z"
    assert lk["survey"] == survey.id and lk["location"] == tree["area"].id
    # 12.5 l/min × 6.4 kW/(m³/min) × 8000 h = 640 kWh; × 0.19 = 121.60
    assert lk["figures"]["kwh_year"] == 640 and lk["figures"]["cost_year"] == 121.6
    assert isinstance(lk["figures"]["cost_year"], (int, float))
    stored = Leak.get_by_id(lk["id"])
    assert stored.found_at == dt.datetime(2024, 3, 5, 9, 15)
    assert stored.rate_lpm == D("12.5")
    # offsets are converted to UTC
    resp = api.post("/leaks", json=leak_body(tree, found_at="2024-03-05T10:15:00+01:00",
                                             tag="A-7"))
    assert resp.get_json()["found_at"] == "2024-03-05T09:15:00Z"
    assert resp.get_json()["tag"] == "A-7"
    got = api.get(f"/leaks/{lk['id']}")
    assert got.status_code == 200 and got.headers["ETag"] == '"1"'
    assert got.get_json() == lk
    text = json.dumps(got.get_json())
    assert "secret" not in text.lower() and "organization" not in text


def test_leak_validation_names_fields_and_writes_nothing(api, tree):
    cases = [
        (leak_body(tree, rate_lpm="12,5"), {"rate_lpm"}),          # JSON type: number
        (leak_body(tree, rate_lpm=-1), {"rate_lpm"}),
        (leak_body(tree, rate_lpm=1.23456), {"rate_lpm"}),         # places
        (leak_body(tree, priority=True), {"priority"}),
        (leak_body(tree, priority=7), {"priority"}),
        (leak_body(tree, component="pipe", status="verified"), {"component", "status"}),
        (leak_body(tree, found_at="yesterday"), {"found_at"}),
        (leak_body(tree, found_at="2024-03-05T09:15:00"), {"found_at"}),   # offset required
        (leak_body(tree, found_at="2024-03-05"), {"found_at"}),
        (leak_body(tree, found_at="2024-02-30T09:15:00Z"), {"found_at"}),
        (leak_body(tree, due_date="05.03.2024"), {"due_date"}),           # JSON: ISO dates
        (leak_body(tree, due_date="2024-3-5"), {"due_date"}),
        (leak_body(tree, location=tree["area"].id + 1000), {"location"}),
        (leak_body(tree, location=10**30), {"location"}),          # no overflow, 422
        (leak_body(tree, survey=99999), {"survey"}),
        (leak_body(tree, colour="red", owner="x"), {"colour", "owner"}),
        (leak_body(tree, tag="bad tag!"), {"tag"}),
        (leak_body(tree, rate_lpm=None), {"rate_lpm"}),
        ({"rate_lpm": 3}, {"location", "found_at"}),
    ]
    for body, fields in cases:
        got = is_problem(api.post("/leaks", json=body), 422)
        assert set(got["errors"]) == fields, (body, got)
        for name in fields:
            assert name in got["detail"]
    assert Leak.select().count() == 0
    assert AuditEntry.select().where(AuditEntry.entity_type == "leak").count() == 0
    # duplicate tag: a database rule, still 422 on "tag"
    assert api.post("/leaks", json=leak_body(tree, tag="4711")).status_code == 201
    got = is_problem(api.post("/leaks", json=leak_body(tree, tag="4711")), 422)
    assert set(got["errors"]) == {"tag"}


def test_leak_patch_partial_with_version_and_conflict(api, actor, tree):
    leak = new_leak(actor, tree["area"], description="alt")
    # no version → 428; stale version → 409 with the current representation
    is_problem(api.patch(f"/leaks/{leak.id}", json={"description": "neu"}), 428)
    resp = api.patch(f"/leaks/{leak.id}", json={"description": "neu", "version": 1})
    assert resp.status_code == 200, resp.data
    assert resp.get_json()["description"] == "neu" and resp.get_json()["version"] == 2
    assert resp.get_json()["rate_lpm"] == 20  # untouched
    # someone else saves (version 2 → 3) …
    leak_service.update_leak(actor, Leak.get_by_id(leak.id), expected_version=2,
                             description="von der Seite")
    # … our client still has version 2
    body = is_problem(api.patch(f"/leaks/{leak.id}", json={"rate_lpm": 30, "version": 2}), 409)
    assert body["current"]["version"] == 3
    assert body["current"]["description"] == "von der Seite"
    assert body["current"]["rate_lpm"] == 20
    assert Leak.get_by_id(leak.id).rate_lpm == D("20")
    is_problem(api.patch(f"/leaks/{leak.id}", json={"rate_lpm": 30},
                         headers={"If-Match": '"2"'}), 409)
    resp = api.patch(f"/leaks/{leak.id}", json={"rate_lpm": 30}, headers={"If-Match": '"3"'})
    assert resp.status_code == 200 and resp.get_json()["rate_lpm"] == 30
    body = is_problem(api.patch(f"/leaks/{leak.id}", json={"rate_lpm": 30},
                                headers={"If-Match": "yes"}), 422)
    assert set(body["errors"]) == {"If-Match"}
    body = is_problem(api.patch(f"/leaks/{leak.id}", json={"status": "verified", "version": 4}),
                      422)
    assert set(body["errors"]) == {"status"}
    body = is_problem(api.patch(f"/leaks/{leak.id}", json={"rate_low_lpm": 50, "version": 4}),
                      422)
    assert set(body["errors"]) == {"rate_low_lpm"}  # low end above the rate
    # clearing an optional value with null
    leak_service.update_leak(actor, Leak.get_by_id(leak.id), expected_version=4,
                             pressure_bar=D("6"))
    resp = api.patch(f"/leaks/{leak.id}", json={"pressure_bar": None, "version": 5})
    assert resp.status_code == 200 and resp.get_json()["pressure_bar"] is None


def test_leak_status_workflow(api, actor, tree):
    leak = new_leak(actor, tree["area"])
    resp = api.post(f"/leaks/{leak.id}/status", json={"status": "repair_planned",
                                                     "due_date": "2024-04-01"})
    assert resp.status_code == 200, resp.data
    assert resp.get_json()["status"] == "repair_planned"
    assert resp.get_json()["due_date"] == "2024-04-01"
    body = is_problem(api.post(f"/leaks/{leak.id}/status", json={"status": "verified"}), 422)
    assert set(body["errors"]) == {"status"}
    resp = api.post(f"/leaks/{leak.id}/status", json={"status": "repaired",
                                                     "repaired_at": "2024-03-20",
                                                     "repair_cost": 35.5, "version": 2})
    assert resp.status_code == 200, resp.data
    assert resp.get_json()["repair_cost"] == 35.5 and resp.get_json()["repaired_at"] == "2024-03-20"
    body = is_problem(api.post(f"/leaks/{leak.id}/status",
                               json={"status": "verified", "version": 2}), 409)
    assert body["current"]["status"] == "repaired"
    assert [h.to_status for h in leak_service.history(actor, leak)] == \
        ["open", "repair_planned", "repaired"]


def test_absurd_ids_are_404_for_every_method(api, actor, tree):
    # 0, beyond 32 bits, beyond 64 bits (SQLite would overflow), not a number
    for raw in ("0", "2147483648", "99999999999999999999999", "abc"):
        for method in ("GET", "PATCH", "DELETE"):
            resp = api.call(method, f"/leaks/{raw}", json_body={"version": 1})
            is_problem(resp, 404)
        is_problem(api.post(f"/leaks/{raw}/status", json={"status": "repaired"}), 404)
        is_problem(api.get(f"/photos/{raw}"), 404)


def test_leak_delete(api, actor, tree):
    leak = new_leak(actor, tree["area"])
    assert api.delete(f"/leaks/{leak.id}").status_code == 204
    assert Leak.select().count() == 0
    is_problem(api.get(f"/leaks/{leak.id}"), 404)


# ---------------------------------------------------------------- list: filters, pages

def test_leak_list_filters_same_as_ui(api, actor, tree, survey):
    a = new_leak(actor, tree["area"], survey=survey.id, component="hose", priority=1,
                 description="Schlauch undicht", found_at=dt.datetime(2024, 3, 1, 9))
    b = new_leak(actor, tree["site2"], component="valve", priority=3,
                 found_at=dt.datetime(2024, 5, 1, 9))
    c = new_leak(actor, tree["hall"], component="hose", found_at=dt.datetime(2024, 4, 1, 9))
    leak_service.change_status(actor, c, "repaired")

    def ids(query):
        resp = api.get("/leaks" + query)
        assert resp.status_code == 200, resp.data
        return {i["id"] for i in resp.get_json()["items"]}

    assert ids("") == {a.id, b.id, c.id}
    assert ids("?status=open") == {a.id, b.id}
    assert ids("?status=open&status=repaired") == {a.id, b.id, c.id}
    assert ids(f"?location={tree['site'].id}") == {a.id, c.id}  # subtree
    assert ids(f"?survey={survey.id}") == {a.id}
    assert ids("?component=hose&priority=1") == {a.id}
    assert ids("?date_from=2024-04-01&date_to=2024-04-30") == {c.id}
    assert ids("?q=Schlauch") == {a.id}
    assert ids("?q=München") == {b.id}  # location name
    assert ids("?q=%27%20OR%201=1--") == set()
    # the UI's parse_filter is what reads the query: the same leaks as the page
    flt = leak_service.parse_filter({"component": "hose"})
    assert ids("?component=hose") == {r.leak.id for r in leak_service.list_leaks(actor, flt).rows}
    resp = api.get("/leaks?sort=rate")
    assert resp.status_code == 200
    for query, field in (("?status=bogus", "status"), ("?priority=9", "priority"),
                         ("?location=abc", "location"), ("?date_from=31.02.2024", "date_from"),
                         ("?sort=password", "sort"), ("?per_page=500", "per_page"),
                         ("?page=0", "page"), ("?colour=red", "colour"),
                         ("?q=" + "x" * 101, "q"), ("?survey=1&survey=2", "survey"),
                         ("?date_to=", "date_to"), ("?date_from=2024-3-1", "date_from"),
                         ("?status=", "status")):
        body = is_problem(api.get("/leaks" + query), 422)
        assert field in body["errors"], (query, body)


def test_leak_list_pagination(api, actor, tree):
    for i in range(7):
        new_leak(actor, tree["area"], found_at=dt.datetime(2024, 1, 1 + i, 9))
    seen = []
    for page in (1, 2, 3):
        body = api.get(f"/leaks?per_page=3&page={page}&sort=found").get_json()
        assert body["total"] == 7 and body["per_page"] == 3 and body["page"] == page
        assert body["pages"] == 3
        seen += [i["tag"] for i in body["items"]]
    assert seen == [str(i) for i in range(1, 8)]
    beyond = api.get("/leaks?per_page=3&page=4").get_json()
    assert beyond["items"] == [] and beyond["total"] == 7 and beyond["page"] == 4
    assert api.get("/leaks?per_page=200").get_json()["per_page"] == 200
    assert len(api.get("/leaks").get_json()["items"]) == 7  # default 50


# ---------------------------------------------------------------- photos, dashboard

def test_photos_upload_list_and_bytes(api, actor, tree):
    leak = new_leak(actor, tree["area"])
    raw = jpeg_with_exif_gps()
    resp = api.call("POST", f"/leaks/{leak.id}/photos", content_type="multipart/form-data",
                    data={"photos": [(io.BytesIO(raw), "kupplung.jpg")]})
    assert resp.status_code == 201, resp.data
    items = resp.get_json()["items"]
    assert len(items) == 1 and items[0]["filename"] == "kupplung.jpg"
    assert resp.headers["Location"] == items[0]["url"] == f"{API}/photos/{items[0]['id']}"
    listed = api.get(f"/leaks/{leak.id}/photos").get_json()
    assert listed["items"] == items
    got = api.get(f"/photos/{items[0]['id']}")
    assert got.status_code == 200 and got.mimetype == "image/jpeg"
    assert got.data[:3] == b"\xff\xd8\xff" and b"SecretCam" not in got.data
    # not an image: 422 naming the file, nothing stored
    resp = api.call("POST", f"/leaks/{leak.id}/photos", content_type="multipart/form-data",
                    data={"photos": [(io.BytesIO(b"<svg/>"), "x.svg")]})
    body = is_problem(resp, 422)
    assert "x.svg" in body["errors"]["photos"]
    is_problem(api.call("POST", f"/leaks/{leak.id}/photos", raw=b"{}"), 415)
    assert Photo.select().count() == 1


def test_dashboard(api, actor, tree):
    new_leak(actor, tree["area"], rate_lpm=D("12.5"))
    body = api.get("/dashboard").get_json()
    assert body["total"] == 1 and body["open"]["count"] == 1
    assert body["open"]["kwh_year"] == 640 and body["open"]["cost_year"] == 121.6
    assert body["by_site"][0]["site"] == tree["site"].id
    assert len(body["trend"]) == 24 and body["currency"] == "EUR"


# ---------------------------------------------------------------- the error hierarchy

class _Busy(Conflict):
    """A feature error: subclasses one of core.errors and carries nothing else."""


@pytest.mark.parametrize("error, status, title, detail, errors", [
    (Invalid({"rate_lpm": "Enter a number.", "": "Check the leak."}), 422, "Unprocessable",
     "rate_lpm: Enter a number.; Check the leak.",
     {"rate_lpm": "Enter a number.", "": "Check the leak."}),
    (_Busy("Another import is running."), 409, "Conflict", "Another import is running.", None),
    (Forbidden("Not in this organization."), 403, "Forbidden", "Not in this organization.",
     None),
    (NotFound("No such report."), 404, "Not found", "No such report.", None),
    (Unavailable("Keycloak did not answer."), 503, "Service unavailable",
     "Keycloak did not answer.", None),
])
def test_a_leakhub_error_in_an_api_view_is_its_problem_document(api, monkeypatch, error,
                                                                   status, title, detail,
                                                                   errors):
    def compute(actor):
        raise error
    monkeypatch.setattr(dashboard_service, "compute", compute)
    body = is_problem(api.get("/dashboard"), status)
    assert body["title"] == title and body["detail"] == detail
    assert body.get("errors") == errors
    # A refusal is a security event like any other 403.
    refused = SecurityEvent.select().where(SecurityEvent.kind == "access_denied").count()
    assert refused == (1 if status == 403 else 0)


# ---------------------------------------------------------------- isolation, roles

def test_other_org_ids_are_404_never_data(api, actor, tree, survey, make_user, other_org):
    leak = new_leak(actor, tree["area"], survey=survey.id, description="GEHEIM-A")
    photo_resp = api.call("POST", f"/leaks/{leak.id}/photos", content_type="multipart/form-data",
                          data={"photos": [(io.BytesIO(jpeg_with_exif_gps()), "a.jpg")]})
    photo_id = photo_resp.get_json()["items"][0]["id"]
    stranger = make_user("admin", organization=other_org)
    calls = [
        ("GET", f"/locations/{tree['site'].id}", None),
        ("PATCH", f"/locations/{tree['site'].id}", {"name": "x", "version": 1}),
        ("DELETE", f"/locations/{tree['site'].id}", None),
        ("GET", f"/surveys/{survey.id}", None),
        ("PATCH", f"/surveys/{survey.id}", {"name": "x", "version": 1}),
        ("DELETE", f"/surveys/{survey.id}", None),
        ("GET", f"/leaks/{leak.id}", None),
        ("PATCH", f"/leaks/{leak.id}", {"description": "x", "version": 1}),
        ("DELETE", f"/leaks/{leak.id}", None),
        ("POST", f"/leaks/{leak.id}/status", {"status": "repaired"}),
        ("GET", f"/leaks/{leak.id}/photos", None),
        ("GET", f"/photos/{photo_id}", None),
    ]
    for method, path, body in calls:
        resp = api.call(method, path, as_=stranger, json_body=body)
        got = is_problem(resp, 404)
        assert "GEHEIM" not in json.dumps(got) and "Werk" not in json.dumps(got)
    resp = api.call("POST", f"/leaks/{leak.id}/photos", as_=stranger,
                    content_type="multipart/form-data",
                    data={"photos": [(io.BytesIO(jpeg_with_exif_gps()), "b.jpg")]})
    is_problem(resp, 404)
    # lists and the dashboard show the stranger's own (empty) organization
    for path in ("/leaks", "/locations", "/surveys", "/dashboard",
                 f"/leaks?location={tree['site'].id}", f"/leaks?survey={survey.id}",
                 "/leaks?q=GEHEIM"):
        resp = api.get(path, as_=stranger)
        assert resp.status_code == 200
        text = resp.get_data(as_text=True)
        assert "GEHEIM" not in text and "Werk" not in text and '"total":1' not in text
    # creating with another org's references is a validation error, not a leak
    body = is_problem(api.post("/leaks", as_=stranger, json=leak_body(tree)), 422)
    assert set(body["errors"]) == {"location"}
    assert Leak.get_by_id(leak.id).description == "GEHEIM-A"
    assert Photo.select().count() == 1


def test_roles_viewer_external_and_mode(api, actor, tree, make_user, org):
    leak = new_leak(actor, tree["area"])
    viewer = make_user("viewer")
    assert api.get(f"/leaks/{leak.id}", as_=viewer).status_code == 200
    assert api.get("/dashboard", as_=viewer).status_code == 200
    is_problem(api.post("/leaks", as_=viewer, json=leak_body(tree)), 403)
    is_problem(api.post("/leaks", as_=viewer, json={}), 403)  # permission before validation
    is_problem(api.patch(f"/leaks/{leak.id}", as_=viewer, json={"version": 1}), 403)
    is_problem(api.delete(f"/leaks/{leak.id}", as_=viewer), 403)
    is_problem(api.post(f"/leaks/{leak.id}/status", as_=viewer, json={"status": "repaired"}),
               403)
    is_problem(api.post("/locations", as_=viewer, json={}), 403)
    editor = make_user("editor")
    assert api.patch(f"/leaks/{leak.id}", as_=editor,
                     json={"description": "ok", "version": 1}).status_code == 200
    # external without grants: sees nothing, and ids are 404 (not 403: existence not leaked)
    external = make_user("external")
    body = api.get("/leaks", as_=external).get_json()
    assert body["total"] == 0 and body["items"] == []
    assert api.get("/locations", as_=external).get_json()["total"] == 0
    is_problem(api.get(f"/leaks/{leak.id}", as_=external), 404)
    is_problem(api.patch(f"/leaks/{leak.id}", as_=external, json={"version": 2}), 404)
    # security mode 3: an editor without grants sees nothing either
    org.security_mode = 3
    org.save()
    assert api.get("/leaks", as_=editor).get_json()["total"] == 0
    is_problem(api.get(f"/leaks/{leak.id}", as_=editor), 404)
    # … until granted
    from leakhub.authz.models import Grant
    Grant.create(organization=org, user=editor, location=tree["site"], level="view")
    assert api.get("/leaks", as_=editor).get_json()["total"] == 1
    is_problem(api.patch(f"/leaks/{leak.id}", as_=editor, json={"version": 2}), 403)


def test_revocation_takes_effect_at_the_next_request(api, actor, tree, make_user):
    leak = new_leak(actor, tree["area"])
    editor = make_user("editor")
    assert api.get(f"/leaks/{leak.id}", as_=editor).status_code == 200
    editor.role = "viewer"
    editor.save()
    is_problem(api.delete(f"/leaks/{leak.id}", as_=editor), 403)
    editor.enabled = False
    editor.save()
    is_problem(api.get(f"/leaks/{leak.id}", as_=editor), 401)


# ---------------------------------------------------------------- the real authenticate

@pytest.fixture
def signing(monkeypatch, config, org):
    """Tokens signed by a local key that the (faked) realm key endpoint publishes."""
    from joserfc import jwt
    from joserfc.jwk import KeySet, RSAKey

    from leakhub.api import auth
    from leakhub.identity.tokens import RealmKeys

    key = RSAKey.generate_key(2048, parameters={"kid": "k1", "use": "sig", "alg": "RS256"})

    class Realm(RealmKeys):
        def metadata(self):
            return {"jwks_uri": "http://unused/certs"}

        def _fetch_keys(self):
            return KeySet([key])

    realms = {}
    monkeypatch.setattr(auth, "realm_keys",
                        lambda cfg, slug: realms.setdefault(slug, Realm("http://unused")))

    def mint(user, *, key_=key, alg="RS256", **claims):
        now = int(time.time())
        body = {"iss": config.issuer_for(user.organization.slug), "aud": "leakhub-api",
                "azp": "leakhub", "sub": user.sub, "iat": now, "exp": now + 300}
        body.update(claims)
        return jwt.encode({"alg": alg, "kid": key_.kid}, body, key_)
    return mint


def test_real_authenticate_with_local_keys(client, signing, actor, tree, make_user, config):
    from joserfc.jwk import RSAKey

    leak = new_leak(actor, tree["area"])
    user = make_user("viewer")

    def get(token, path=f"/leaks/{leak.id}"):
        return client.get(API + path, headers={"Authorization": f"Bearer {token}"})

    assert get(signing(user)).status_code == 200
    now = int(time.time())
    # expired beyond the 30 s leeway; not yet valid; wrong audience; other client
    for token in (signing(user, exp=now - 120, iat=now - 500), signing(user, nbf=now + 600),
                  signing(user, aud="account"), signing(user, azp="admin-cli"),
                  signing(user, sub="nobody"),
                  signing(user, key_=RSAKey.generate_key(2048, parameters={"kid": "k9"}))):
        resp = get(token)
        is_problem(resp, 401)
        assert resp.headers["WWW-Authenticate"].startswith("Bearer")
    # within the leeway
    assert get(signing(user, exp=now - 10)).status_code == 200
    # a pending user is authenticated but may not use the API
    pending = make_user(None)
    is_problem(get(signing(pending)), 403)
    # revoked in Leakhub while the token is still valid
    token = signing(user)
    assert get(token).status_code == 200
    user.enabled = False
    user.save()
    is_problem(get(token), 401)


def test_refused_tokens_are_security_events_and_a_flood_is_summarised(client, signing, actor,
                                                                       tree, make_user):
    from leakhub.api.auth import MAX_REJECTED_PER_MINUTE
    from leakhub.security.models import SecurityEvent

    user = make_user("viewer")
    good = signing(user)
    forged = good[:-6] + ("AAAAAA" if not good.endswith("AAAAAA") else "BBBBBB")

    def get(token, ip="10.1.2.3"):
        return client.get(API + "/locations", headers={"Authorization": f"Bearer {token}"},
                          environ_base={"REMOTE_ADDR": ip})

    def events(kind, ip="10.1.2.3"):
        return SecurityEvent.select().where((SecurityEvent.kind == kind)
                                            & (SecurityEvent.ip == ip)).count()

    is_problem(get(forged), 401)
    [event] = SecurityEvent.select().where(SecurityEvent.kind == "token_rejected")
    assert event.ip == "10.1.2.3" and event.organization_id == user.organization_id
    assert "signature" in event.details.lower() and forged[-20:] not in event.details
    for _ in range(MAX_REJECTED_PER_MINUTE + 20):
        resp = get(forged)
        is_problem(resp, 401)           # clients rely on 401 to fetch a new token
        assert resp.headers["WWW-Authenticate"].startswith("Bearer")
    # the log stays bounded: the flood is one rate_limited event
    assert events("token_rejected") == MAX_REJECTED_PER_MINUTE
    assert events("rate_limited") == 1
    # valid tokens from the same address work; another address is recorded as usual
    assert get(good).status_code == 200
    is_problem(get(forged, ip="10.9.9.9"), 401)
    assert events("token_rejected", "10.9.9.9") == 1


# -------------------------------------------------- calculated rates, deferral (issue 18)

def test_api_records_a_calculated_rate_with_its_inputs(api, actor, tree):
    resp = api.post("/leaks", json=leak_body(tree, method="orifice", pressure_bar=6,
                                             orifice_diameter_mm=1, discharge_coefficient=1))
    assert resp.status_code == 201, resp.data
    lk = resp.get_json()
    assert lk["method"] == "orifice"
    assert lk["rate_lpm"] == float(calc.orifice_rate_lpm(1, 6, 1, 20))  # ≈ 64.8, not 12.5
    assert lk["rate_inputs"] == {"orifice_diameter_mm": "1", "discharge_coefficient": "1",
                                 "temperature_c": "20"}
    assert lk["figures"]["kwh_year"] > 0
    bad = api.post("/leaks", json=leak_body(tree, method="orifice", orifice_diameter_mm=-2))
    assert "orifice_diameter_mm" in is_problem(bad, 422)["errors"]
    none = api.post("/leaks", json=leak_body(tree, method="detector", detector_db=30,
                                             detector_distance_m=1))
    assert "method" in is_problem(none, 422)["errors"]  # no detector table yet
    leak_service.save_detector_table(actor, leak_service.parse_detector_table(
        "6; 1; 10; 3\n6; 1; 50; 60\n"))
    far = api.post("/leaks", json=leak_body(tree, method="detector", pressure_bar=6,
                                            detector_db=30, detector_distance_m=2))
    assert "detector_distance_m" in is_problem(far, 422)["errors"]
    ok = api.post("/leaks", json=leak_body(tree, method="detector", pressure_bar=6,
                                           detector_db=30, detector_distance_m=1))
    assert ok.status_code == 201 and ok.get_json()["rate_lpm"] == 31.5
    doc = api.get("/openapi.json").get_json()
    props = doc["components"]["schemas"]["LeakCreate"]["properties"]
    assert {"orifice_diameter_mm", "detector_db", "detector_distance_m"} <= set(props)


def test_api_deferring_needs_a_reason(api, tree):
    lk = api.post("/leaks", json=leak_body(tree)).get_json()
    resp = api.post(f"/leaks/{lk['id']}/status", json={"status": "deferred"})
    assert "note" in is_problem(resp, 422)["errors"]
    resp = api.post(f"/leaks/{lk['id']}/status", json={"status": "deferred",
                                                       "note": "spare part on order"})
    assert resp.status_code == 200 and resp.get_json()["status"] == "deferred"
