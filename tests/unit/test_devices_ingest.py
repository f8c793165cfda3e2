"""Device ingest: findings become leaks "to review"; replays create nothing; all-or-nothing;
device tokens only."""
import pytest

from leakhub import authz
from leakhub.devices.models import Device
from leakhub.identity.models import User
from leakhub.leaks.models import Leak
from leakhub.locations.models import Location
from leakhub.orgs.models import Organization


@pytest.fixture
def setup(app, monkeypatch):
    org = Organization.create(slug="acme", name="ACME", oidc_client_secret="x")
    Location.create(organization=org, kind="site", code="P1", name="Plant 1")
    device = Device.create(organization=org, name="LD500", client_id="device-ld500", serial="S-1")
    state = {"actor": authz.Actor(organization=org, kind="device", device=device,
                                  label="device LD500")}
    import leakhub.api.auth as auth

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
    assert {lk.status for lk in leaks} == {"to_review"} and {lk.source for lk in leaks} == {"device"}
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
