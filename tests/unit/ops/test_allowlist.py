"""The admin pages' IP allow-list (app side of LEAKHUB_ADMIN_ALLOW): 403 and a security event
`ip_denied` outside the list, checked against remote_addr after ProxyFix."""
from __future__ import annotations

import dataclasses
import json

import pytest

from leakhub.core.config import Config, ConfigError, parse_networks
from leakhub.core.secrets import ensure_all
from leakhub.ops.allowlist import ip_allowed, is_admin_path

OUTSIDE = {"REMOTE_ADDR": "127.0.0.2"}


@pytest.fixture
def config(tmp_path):
    cfg = Config.from_env({
        "LEAKHUB_HOME": str(tmp_path), "LEAKHUB_PUBLIC_URL": "https://leakhub.test",
        "KEYCLOAK_URL": "http://127.0.0.1:9/auth", "LEAKHUB_TESTING": "1",
        "LEAKHUB_ORG_SLUG": "acme", "LEAKHUB_ADMIN_ALLOW": "127.0.0.1/32 ::1/128"})
    ensure_all(cfg.secrets_dir)
    return cfg


def events():
    from leakhub.security.models import SecurityEvent

    return list(SecurityEvent.select().where(SecurityEvent.kind == "ip_denied"))


@pytest.mark.parametrize("path", ["/admin/system", "/admin/backups", "/users", "/users/3/edit",
                                  "/security", "/security/findings/1/acknowledge", "/audit",
                                  "/audit.csv", "/settings/energy"])
def test_admin_paths(path):
    assert is_admin_path(path)


@pytest.mark.parametrize("path", ["/", "/leaks", "/administrator", "/securityx", "/healthz",
                                  "/api/v1/leaks", "/auditor"])
def test_other_paths(path):
    assert not is_admin_path(path)


def test_networks_parse_like_caddy():
    nets = parse_networks("10.1.2.0/24, 192.0.2.7 private_ranges", "X")
    assert ip_allowed("10.1.2.99", nets) and ip_allowed("192.0.2.7", nets)
    assert ip_allowed("172.20.0.5", nets) and ip_allowed("::ffff:10.1.2.3", nets)
    assert not ip_allowed("192.0.2.8", nets) and not ip_allowed("2001:db8::1", nets)
    assert not ip_allowed("garbage", nets)
    assert ip_allowed("203.0.113.9", ())            # no list, no restriction
    with pytest.raises(ConfigError, match="LEAKHUB_ADMIN_ALLOW: 'ten.0.0.0/8'"):
        Config.from_env({"LEAKHUB_ADMIN_ALLOW": "ten.0.0.0/8"})


def test_anonymous_request_from_outside_is_refused_and_recorded(app, client):
    resp = client.get("/security", environ_base=OUTSIDE)
    assert resp.status_code == 403
    assert "LEAKHUB_ADMIN_ALLOW" in resp.get_data(as_text=True)
    [event] = events()
    assert event.ip == "127.0.0.2" and event.organization_id is None
    assert json.loads(event.details)["path"] == "/security"
    from leakhub.security.models import SecurityEvent

    assert SecurityEvent.select().count() == 1       # not also an access_denied


def test_signed_in_admin_from_outside_is_refused(app, org, make_user, login):
    admin = make_user("admin")
    client = login(admin)
    assert client.get("/admin/system", environ_base=OUTSIDE).status_code == 403
    assert client.post("/security/findings/1/acknowledge", data={"csrf_token": "t"},
                       environ_base=OUTSIDE).status_code == 403
    recorded = events()
    assert len(recorded) == 2
    assert recorded[0].organization_id == org.id and recorded[0].user_id == admin.id
    # inside the list the same admin gets the page; pages that are not admin pages stay open
    assert client.get("/admin/system").status_code == 200
    assert client.get("/leaks", environ_base=OUTSIDE).status_code == 200
    assert len(events()) == 2


def test_behind_the_proxy_the_forwarded_address_counts(app, client):
    """Caddy connects from 127.0.0.1 and sets X-Forwarded-For to the client (ProxyFix x_for=1)."""
    assert client.get("/audit", headers={"X-Forwarded-For": "127.0.0.2"}).status_code == 403
    assert events()[0].ip == "127.0.0.2"
    assert client.get("/audit", headers={"X-Forwarded-For": "127.0.0.1"}).status_code != 403


def test_no_list_means_no_app_side_restriction(config):
    from leakhub.app import create_app
    from leakhub.core.config import set_config

    app = create_app(dataclasses.replace(config, admin_allow=()))
    try:
        resp = app.test_client().get("/security", environ_base=OUTSIDE)
        assert resp.status_code != 403
    finally:
        set_config(None)


def test_the_refusal_reads_german_for_a_german_browser(app, client):
    resp = client.get("/security", environ_base=OUTSIDE, headers={"Accept-Language": "de"})
    assert resp.status_code == 403
    page = resp.get_data(as_text=True)
    assert "Verwaltungsseiten lassen sich nur" in page and "LEAKHUB_ADMIN_ALLOW" in page
