"""Keycloak event sync: mapping, dedup by event id (or a stable hash), cursor across runs."""
import json

import pytest

import leakhub.identity.keycloak as kc
from leakhub.security import keycloak_sync
from leakhub.security.keycloak_sync import SyncError, sync_keycloak_events
from leakhub.security.models import KeycloakEventCursor, SecurityEvent

T0 = 1_700_000_000_000  # epoch ms


class FakeKeycloak:
    """Mimics KeycloakAdmin.get_events/get_admin_events: oldest first, dateFrom inclusive."""

    def __init__(self):
        self.events = {}   # realm -> [event]
        self.admin = {}
        self.calls = []
        self.fail = set()

    def _page(self, items, realm, first, max, date_from):
        if realm in self.fail:
            from leakhub.identity.keycloak_admin import KeycloakUnreachable

            raise KeycloakUnreachable("Keycloak is not reachable at http://kc: connection refused")
        self.calls.append((realm, first, max, date_from))
        rows = sorted(items.get(realm, []), key=lambda e: e["time"])
        if date_from is not None:
            rows = [e for e in rows if e["time"] >= date_from]
        return [dict(e) for e in rows[first:first + max]]

    def get_events(self, realm, *, first=0, max=500, date_from=None):
        return self._page(self.events, realm, first, max, date_from)

    def get_admin_events(self, realm, *, first=0, max=500, date_from=None):
        return self._page(self.admin, realm, first, max, date_from)


@pytest.fixture
def fake(monkeypatch):
    fake = FakeKeycloak()
    monkeypatch.setattr(kc, "admin_client", lambda config: fake)
    return fake


def login_event(i, type_="LOGIN_ERROR", *, user_id="kc-user-1", error="invalid_user_credentials",
                t=None, with_id=True, ip="203.0.113.7", username="alice@acme.test"):
    ev = {"time": t if t is not None else T0 + i * 1000, "type": type_, "realmId": "acme",
          "clientId": "leakhub", "userId": user_id, "sessionId": f"s{i}", "ipAddress": ip,
          "details": {"username": username, "auth_method": "openid-connect",
                      "code_id": "secret-code-id", "redirect_uri": "https://x/cb"}}
    if error and type_.endswith("_ERROR"):
        ev["error"] = error
    if with_id:
        ev["id"] = f"ev-{i}"
    return ev


def test_mapping_of_login_and_admin_events(config, org, make_user, fake):
    alice = make_user("editor")
    alice.sub = "kc-user-1"
    alice.save()
    fake.events["acme"] = [
        login_event(1, "LOGIN", error=None),
        login_event(2),
        login_event(3, error="user_temporarily_disabled"),
        login_event(4, "USER_DISABLED_BY_TEMPORARY_LOCKOUT", error=None),
        login_event(5, "CODE_TO_TOKEN", error=None),       # routine: not stored
        login_event(6, "LOGIN_ERROR", user_id=None, error="user_not_found", username="Mallory"),
    ]
    fake.admin["acme"] = [{
        "id": "adm-1", "time": T0 + 10_000, "realmId": "acme", "operationType": "UPDATE",
        "resourceType": "USER", "resourcePath": "users/kc-user-1/reset-password",
        "representation": '{"type":"password","value":"Sup3rSecret!"}',
        "authDetails": {"realmId": "master", "clientId": "leakhub-service", "userId": "sa-1",
                        "ipAddress": "10.0.0.5"}}]
    msg = sync_keycloak_events(config=config)
    assert "6 login and 1 admin event(s) added" in msg  # ev-3 is two rows
    rows = list(SecurityEvent.select().order_by(SecurityEvent.at, SecurityEvent.id))
    assert [(r.kind, r.external_id) for r in rows] == [
        ("sign_in", "ev-1"), ("sign_in_failed", "ev-2"), ("sign_in_failed", "ev-3"),
        ("lockout", "ev-3:lockout"), ("lockout", "ev-4"), ("sign_in_failed", "ev-6"),
        ("admin_event", "adm-1")]
    assert all(r.source == "keycloak" and r.organization_id == org.id for r in rows)
    assert rows[1].user_id == alice.id and rows[1].ip == "203.0.113.7"
    assert rows[1].username == "alice@acme.test"
    assert json.loads(rows[2].details)["error"] == "user_temporarily_disabled"
    assert rows[5].user_id is None and rows[5].username == "Mallory"
    assert rows[0].at.year == 2023
    admin = rows[6]
    assert json.loads(admin.details) == {"operation": "UPDATE", "resource": "USER",
                                         "path": "users/kc-user-1/reset-password",
                                         "by_client": "leakhub-service", "by_realm": "master"}
    assert admin.ip == "10.0.0.5"
    everything = " ".join(r.details for r in rows)
    assert "Sup3rSecret" not in everything and "secret-code-id" not in everything


def test_second_run_adds_nothing_and_cursor_moves_on(config, org, fake):
    fake.events["acme"] = [login_event(i) for i in range(1, 4)]
    sync_keycloak_events(config=config)
    assert SecurityEvent.select().count() == 3
    cursor = KeycloakEventCursor.get(KeycloakEventCursor.kind == "login")
    assert cursor.last_time == T0 + 3000 and json.loads(cursor.seen_ids) == ["ev-3"]
    assert "0 login" in sync_keycloak_events(config=config)
    assert SecurityEvent.select().count() == 3
    assert fake.calls[-2][3] == T0 + 3000  # re-reads from the cursor (inclusive)
    # Two more events, one at exactly the cursor's millisecond.
    fake.events["acme"] += [login_event(9, t=T0 + 3000), login_event(10)]
    assert "2 login" in sync_keycloak_events(config=config)
    assert SecurityEvent.select().count() == 5
    sync_keycloak_events(config=config)
    assert SecurityEvent.select().count() == 5


def test_events_without_ids_dedup_by_stable_hash(config, org, fake):
    fake.events["acme"] = [login_event(i, with_id=False, t=T0) for i in range(1, 4)]
    sync_keycloak_events(config=config)
    sync_keycloak_events(config=config)
    rows = list(SecurityEvent.select())
    assert len(rows) == 3 and all(r.external_id.startswith("h:") for r in rows)


def test_pages_through_many_events_and_survives_a_restart(config, org, fake, monkeypatch):
    monkeypatch.setattr(keycloak_sync, "PAGE_SIZE", 4)
    monkeypatch.setattr(keycloak_sync, "MAX_PAGES_PER_RUN", 2)
    fake.events["acme"] = [login_event(i, t=T0 + (i // 3) * 1000) for i in range(1, 21)]
    sync_keycloak_events(config=config)
    assert SecurityEvent.select().count() == 8  # two pages, the rest next run
    sync_keycloak_events(config=config)
    sync_keycloak_events(config=config)
    sync_keycloak_events(config=config)
    assert SecurityEvent.select().count() == 20
    assert len({r.external_id for r in SecurityEvent.select()}) == 20


def test_failure_of_one_organization_does_not_stop_the_others(config, org, other_org, fake):
    fake.fail.add("acme")
    fake.events["other"] = [login_event(1)]
    with pytest.raises(SyncError, match="acme .*connection refused"):
        sync_keycloak_events(config=config)
    assert SecurityEvent.get().organization_id == other_org.id


def test_events_are_kept_per_organization(config, org, other_org, fake):
    fake.events["acme"] = [login_event(1)]
    fake.events["other"] = [login_event(1)]  # same Keycloak id in another realm
    sync_keycloak_events(config=config)
    orgs = sorted(e.organization_id for e in SecurityEvent.select())
    assert orgs == sorted([org.id, other_org.id])
