"""record(): the one way security events are stored, from the sign-in/sign-out, CSRF,
permission and session-expiry paths; nothing secret ends up in them."""
import json

import pytest

from leakhub.security import events
from leakhub.security.models import SecurityEvent

from support.session import sign_in


def kinds():
    return [e.kind for e in SecurityEvent.select().order_by(SecurityEvent.id)]


def test_record_fills_request_defaults_and_scrubs_secrets(app, org, make_user):
    user = make_user("viewer")
    with app.test_request_context("/x", environ_base={"REMOTE_ADDR": "10.1.2.3"}):
        from flask import g

        g.request_id = "req-12345678"
        row = events.record("sign_in", user=user, details={
            "id_token": "eyJ.secret", "password": "hunter2", "client_secret": "s",
            "Cookie": "leakhub=abc", "code": "authcode", "reason": "x" * 1000, "ok": 1})
    assert row is not None
    stored = SecurityEvent.get_by_id(row.id)
    assert stored.organization_id == org.id and stored.username == user.email
    assert stored.ip == "10.1.2.3" and stored.request_id == "req-12345678"
    details = json.loads(stored.details)
    assert set(details) == {"reason", "ok"} and len(details["reason"]) == 300
    assert "hunter2" not in stored.details and "eyJ" not in stored.details


def test_record_never_raises(app, monkeypatch):
    monkeypatch.setattr(SecurityEvent, "save", lambda *a, **k: 1 / 0)
    assert events.record("sign_in") is None


def test_sign_out_is_recorded(client, org, make_user):
    user = make_user("editor")
    sign_in(client, user)
    resp = client.post("/logout", data={"csrf_token": "t"})
    assert resp.status_code == 302
    ev = SecurityEvent.get(SecurityEvent.kind == "sign_out")
    assert ev.organization_id == org.id and ev.user_id == user.id and ev.source == "leakhub"


def test_csrf_failure_is_recorded_not_as_access_denied(client, org, make_user):
    user = make_user("editor")
    sign_in(client, user)
    resp = client.post("/logout", data={"csrf_token": "forged-Zq9"})
    assert resp.status_code == 403
    assert kinds() == ["csrf_rejected"]
    ev = SecurityEvent.get()
    assert ev.user_id == user.id and json.loads(ev.details)["path"] == "/logout"
    assert "forged-Zq9" not in ev.details


def test_forbidden_page_is_recorded_as_access_denied(client, org, make_user):
    user = make_user("viewer")
    sign_in(client, user)
    assert client.get("/security").status_code == 403
    assert kinds() == ["access_denied"]
    ev = SecurityEvent.get()
    assert ev.user_id == user.id and json.loads(ev.details)["endpoint"] == "security.index"


def test_state_mismatch_at_callback_is_a_failed_sign_in(client, org):
    resp = client.get(f"/oidc/callback/{org.slug}?code=abc&state=forged")
    assert resp.status_code == 400
    ev = SecurityEvent.get()
    assert (ev.kind, ev.organization_id) == ("sign_in_failed", org.id)
    assert json.loads(ev.details) == {"reason": "state_mismatch"}
    assert "abc" not in ev.details


def test_expired_session_is_recorded_once(client, org, make_user):
    from leakhub.identity.models import WebSession

    user = make_user("editor")
    sign_in(client, user)
    client.get("/healthz")
    WebSession.delete().execute()  # e.g. idle timeout or back-channel logout
    client.set_cookie("leakhub_org", org.slug, domain="localhost")
    client.get("/healthz")
    client.get("/healthz")  # the cookie was dropped: no second event
    assert kinds() == ["session_expired"]
    assert SecurityEvent.get().organization_id == org.id


@pytest.mark.parametrize("ip,net,short", [
    ("192.0.2.77", "192.0.2.0/24", "192.0.2.0"),
    ("2001:db8:abcd:12::1", "2001:db8:abcd::/48", "2001:db8:abcd::"),
    ("::ffff:198.51.100.9", "198.51.100.0/24", "198.51.100.0"),
    ("not-an-ip", None, None),
])
def test_networks_and_truncation(ip, net, short):
    assert events.network_of(ip) == net
    assert events.truncate_ip(ip) == short
