"""The Devices page (administrators): list with last contact, add with the client secret shown
once (never stored, never logged, not cached), disable/enable with CSRF, audited. Keycloak is
replaced by a recorder: the unit tests never reach a server (the integration test does)."""
import json
import logging

import pytest

from leakhub.audit.models import AuditEntry
from leakhub.devices import service
from leakhub.devices.models import Device

from support.reporting_data import BASE

SECRET = "s3cr3t-Zq8xWv0-never-stored"


class FakeKeycloak:
    def __init__(self):
        self.clients = {}

    def create_service_client(self, realm, client_id, *, description=""):
        self.clients[(realm, client_id)] = True
        return SECRET

    def set_client_enabled(self, realm, client_id, enabled):
        self.clients[(realm, client_id)] = enabled

    def delete_client(self, realm, client_id):
        self.clients.pop((realm, client_id), None)


@pytest.fixture
def kc(monkeypatch):
    fake = FakeKeycloak()
    monkeypatch.setattr(service, "admin_client", lambda config: fake)
    return fake


@pytest.fixture
def admin_client(actor, login):
    return login(actor.user)


def test_list_shows_devices_with_last_contact_and_is_linked_for_admins(admin_client, org):
    Device.create(organization=org, name="LD500 Halle 3", client_id="device-ld500-halle-3",
                  model="CS Instruments LD 500", serial="SN-4711")
    resp = admin_client.get("/devices", base_url=BASE)
    assert resp.status_code == 200
    page = resp.get_data(as_text=True)
    for text in ("LD500 Halle 3", "CS Instruments LD 500", "SN-4711", "device-ld500-halle-3",
                 "never", "/protocol/openid-connect/token", "/api/v1/ingest/findings"):
        assert text in page, text
    assert 'data-testid="nav-devices"' in page


def test_other_roles_get_403_and_no_link(login, make_user):
    for role in ("manager", "editor", "viewer"):
        c = login(make_user(role))
        assert c.get("/devices", base_url=BASE).status_code == 403
        assert 'nav-devices' not in c.get("/", base_url=BASE, follow_redirects=True) \
            .get_data(as_text=True)


def test_add_shows_the_secret_once_and_never_stores_or_logs_it(admin_client, org, kc, caplog):
    caplog.set_level(logging.DEBUG)
    form = admin_client.get("/devices/add", base_url=BASE)
    assert form.status_code == 200 and 'name="csrf_token"' in form.get_data(as_text=True)
    resp = admin_client.post("/devices/add", base_url=BASE, data={
        "csrf_token": "t", "name": "LD500 Halle 3", "model": "CS Instruments LD 500",
        "serial": "SN-4711"})
    assert resp.status_code == 200
    assert resp.headers["Cache-Control"] == "no-store"
    page = resp.get_data(as_text=True)
    assert SECRET in page and "device-ld500-halle-3" in page
    device = Device.get(Device.name == "LD500 Halle 3")
    assert device.model == "CS Instruments LD 500" and device.serial == "SN-4711"
    assert kc.clients == {("acme", "device-ld500-halle-3"): True}
    # Never again: not on the list, not in the database, not in the audit trail, not logged.
    assert SECRET not in admin_client.get("/devices", base_url=BASE).get_data(as_text=True)
    assert SECRET not in json.dumps([list(r) for r in Device.select().tuples()], default=str)
    entry = AuditEntry.get(AuditEntry.entity_type == "device")
    assert entry.action == "create" and SECRET not in entry.changes
    assert SECRET not in caplog.text


def test_add_errors_name_the_field(admin_client, org, kc):
    resp = admin_client.post("/devices/add", base_url=BASE,
                             data={"csrf_token": "t", "name": "../bad", "serial": "x" * 65})
    assert resp.status_code == 422
    page = resp.get_data(as_text=True)
    assert 'data-testid="error-name"' in page and 'data-testid="error-serial"' in page
    admin_client.post("/devices/add", base_url=BASE, data={"csrf_token": "t", "name": "LD1"})
    again = admin_client.post("/devices/add", base_url=BASE,
                              data={"csrf_token": "t", "name": "LD1"})
    assert again.status_code == 422 and "exists already" in again.get_data(as_text=True)
    assert Device.select().count() == 1 and kc.clients.get(("acme", "device-ld1")) is True


def test_add_without_csrf_is_refused(admin_client, kc):
    resp = admin_client.post("/devices/add", base_url=BASE, data={"name": "LD2"})
    assert resp.status_code == 403 and Device.select().count() == 0 and not kc.clients


def test_disable_and_enable(admin_client, org, kc):
    device = Device.create(organization=org, name="LD3", client_id="device-ld3")
    assert admin_client.post(f"/devices/{device.id}/disable", base_url=BASE).status_code == 403
    resp = admin_client.post(f"/devices/{device.id}/disable", base_url=BASE,
                             data={"csrf_token": "t"}, follow_redirects=True)
    assert resp.status_code == 200 and "disabled" in resp.get_data(as_text=True)
    assert not Device.get_by_id(device.id).enabled
    assert kc.clients[("acme", "device-ld3")] is False
    assert AuditEntry.select().where(AuditEntry.action == "device.disabled").count() == 1
    admin_client.post(f"/devices/{device.id}/enable", base_url=BASE, data={"csrf_token": "t"})
    assert Device.get_by_id(device.id).enabled and kc.clients[("acme", "device-ld3")] is True


def test_another_organizations_device_is_404(admin_client, other_org, kc):
    device = Device.create(organization=other_org, name="X", client_id="device-x")
    resp = admin_client.post(f"/devices/{device.id}/disable", base_url=BASE,
                             data={"csrf_token": "t"})
    assert resp.status_code == 404 and Device.get_by_id(device.id).enabled
