import os
import stat

import pytest

from leakhub.core import migrations
from leakhub.core.config import Config, ConfigError
from leakhub.core.secrets import GENERATED, ensure_all, read_secret
from leakhub.core.web import safe_next


@pytest.mark.parametrize("target", [
    "//evil.example", "/\\evil.example", "\\\\\\evil.example", "https:evil.example",
    "javascript:alert(1)", "https://evil.example/", "/ok\r\nLocation: x", "", None, "evil",
    "/\t/evil.example",
])
def test_safe_next_never_leaves_origin(target):
    assert safe_next(target) == "/"


@pytest.mark.parametrize("target", ["/", "/leaks?status=open", "/leaks/12#photos"])
def test_safe_next_keeps_local_paths(target):
    assert safe_next(target) == target


def test_secrets_are_generated_once_with_mode_0600(tmp_path):
    created = ensure_all(tmp_path / "s")
    assert set(created) == set(GENERATED)
    for name in GENERATED:
        mode = stat.S_IMODE(os.stat(tmp_path / "s" / name).st_mode)
        assert mode == 0o600, name
    before = read_secret(tmp_path / "s", "session-key")
    assert ensure_all(tmp_path / "s") == []
    assert read_secret(tmp_path / "s", "session-key") == before


def test_config_rejects_bad_values(tmp_path):
    with pytest.raises(ConfigError, match="LEAKHUB_PUBLIC_URL"):
        Config.from_env({"LEAKHUB_HOME": str(tmp_path), "LEAKHUB_PUBLIC_URL": "leakhub.local"})
    with pytest.raises(ConfigError, match="LEAKHUB_SESSION_IDLE_MINUTES"):
        Config.from_env({"LEAKHUB_HOME": str(tmp_path), "LEAKHUB_SESSION_IDLE_MINUTES": "ten"})
    with pytest.raises(ConfigError, match="DATABASE_URL"):
        Config.from_env({"LEAKHUB_HOME": str(tmp_path), "DATABASE_URL": "mysql://x"})


def test_issuer_is_the_public_url(config):
    assert config.issuer_for("acme") == "https://leakhub.test/auth/realms/acme"


def test_migrations_reach_head_and_are_idempotent(app):
    assert migrations.current_version() == migrations.head()
    assert migrations.migrate(app.config["LEAKHUB"].data_dir) == []


def test_healthz(client):
    assert client.get("/healthz").json == {"status": "ok"}


def test_readyz_reports_unreachable_keycloak(client):
    resp = client.get("/readyz")
    assert resp.status_code == 503
    assert resp.json["checks"]["database"] == "ok"
    assert resp.json["checks"]["keycloak"].startswith("error")


def test_anonymous_start_page_redirects_to_login(client):
    resp = client.get("/")
    assert resp.status_code == 302
    assert "/login" in resp.headers["Location"]


def test_post_without_csrf_token_is_refused(client):
    resp = client.post("/logout")
    assert resp.status_code == 403


def test_audit_chain_and_version_conflict(app):
    from leakhub.audit import writer
    from leakhub.audit.models import AuditEntry
    from leakhub.authz import Actor
    from leakhub.orgs.models import Organization

    org = Organization.create(slug="acme", name="ACME", oidc_client_secret="x")
    actor = Actor.system(org)
    writer.event(actor, "test.one", details={"a": 1})
    writer.event(actor, "test.two")
    entries = list(AuditEntry.select().order_by(AuditEntry.seq))
    assert [e.seq for e in entries] == [1, 2]
    assert entries[1].prev_hash == entries[0].hash
    assert entries[0].hash == writer.entry_hash(entries[0])  # by its hash version (0013)
