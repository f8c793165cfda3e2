"""The deployment log: recording the updater's entries (idempotent, validated, audited),
`leakctl deployments [--json]` / `record`, and the admin System page."""
from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from leakhub.cli import cli
from leakhub.core.config import Config
from leakhub.core.secrets import ensure_all


@pytest.fixture
def config(tmp_path):
    cfg = Config.from_env({
        "LEAKHUB_HOME": str(tmp_path), "LEAKHUB_PUBLIC_URL": "https://leakhub.test",
        "KEYCLOAK_URL": "http://127.0.0.1:9/auth", "LEAKHUB_TESTING": "1",
        "LEAKHUB_ORG_SLUG": "acme"})   # the `org` fixture is the operator organization
    ensure_all(cfg.secrets_dir)
    return cfg


def entry(**over):
    base = {"uid": "0f8c2a54-1111-4c3e-9d7e-000000000001", "started_at": "2030-01-02T03:04:05Z",
            "finished_at": "2030-01-02T03:05:35Z", "who": "root@plant-1", "mode": "native",
            "from_version": "v0.1.0", "to_version": "v0.2.0", "from_schema": 3, "to_schema": 9,
            "components": {"web": "v0.2.0", "worker": "v0.2.0", "migrations": [4, 5, 6]},
            "duration_ms": 90000, "result": "ok", "summary": "updated v0.1.0 -> v0.2.0",
            "log_excerpt": "applying migration 0004\n"}
    base.update(over)
    return base


def test_record_is_idempotent_and_audited(app, org, config):
    from leakhub.audit.models import AuditEntry
    from leakhub.ops.deployments import record
    from leakhub.ops.models import Deployment

    row, created = record(config, entry())
    assert created and row.result == "ok" and row.components_dict["migrations"] == [4, 5, 6]
    assert row.started_at.isoformat() == "2030-01-02T03:04:05"
    again, created = record(config, entry(result="failed"))
    assert not created and again.id == row.id and again.result == "ok"
    assert Deployment.select().count() == 1
    audit = AuditEntry.get(AuditEntry.action == "deployment.recorded")
    assert audit.organization_id == org.id and audit.entity_type == "deployment"
    assert json.loads(audit.changes)["to_version"] == "v0.2.0"
    assert "leakctl update (root@plant-1)" == audit.actor_label


@pytest.mark.parametrize("bad,field", [
    ({"result": "maybe"}, "result"), ({"uid": "x"}, "uid"), ({"started_at": "soon"}, "started_at"),
    ({"components": [1]}, "components"), ({"duration_ms": "9"}, "duration_ms"),
])
def test_record_names_the_bad_field(app, config, bad, field):
    from leakhub.ops.deployments import DeploymentError, record

    with pytest.raises(DeploymentError) as err:
        record(config, entry(**bad))
    assert str(err.value).startswith(field)


def test_long_log_keeps_its_end(app, config):
    from leakhub.ops.deployments import LOG_EXCERPT_MAX, record

    row, _ = record(config, entry(log_excerpt="x" * 20000 + "THE END"))
    assert len(row.log_excerpt) == LOG_EXCERPT_MAX and row.log_excerpt.endswith("THE END")


def test_cli_record_and_list(app, org):
    lines = "\n".join(json.dumps(entry(uid=f"0f8c2a54-1111-4c3e-9d7e-00000000000{i}",
                                       started_at=f"2030-01-0{i}T00:00:00Z",
                                       result="ok" if i != 2 else "rolled_back"))
                      for i in (1, 2, 3))
    result = CliRunner().invoke(cli, ["deployments", "record"], input=lines,
                                catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert "3 deployment(s) recorded, 0 already known" in result.output
    result = CliRunner().invoke(cli, ["deployments", "record"], input=lines)
    assert "0 deployment(s) recorded, 3 already known" in result.output

    result = CliRunner().invoke(cli, ["deployments", "--json"], catch_exceptions=False)
    rows = json.loads(result.output)
    assert [r["started_at"][:10] for r in rows] == ["2030-01-03", "2030-01-02", "2030-01-01"]
    assert rows[1]["result"] == "rolled_back" and rows[0]["to_schema"] == 9
    text = CliRunner().invoke(cli, ["deployments"]).output
    assert "rolled_back" in text and "v0.1.0 -> v0.2.0" in text


def test_cli_record_rejects_garbage(app):
    result = CliRunner().invoke(cli, ["deployments", "record"], input="{nope")
    assert result.exit_code != 0 and "line 1: not JSON" in result.output


def test_system_page_for_operator_admins(app, org, make_user, login, config):
    from leakhub.jobs.models import JobRun
    from leakhub.ops.deployments import record

    record(config, entry(result="rolled_back", summary="migration 0009 failed; rolled back",
                         log_excerpt="RuntimeError: boom"))
    JobRun.create(job="heartbeat", status="ok", duration_ms=3, message="alive")
    JobRun.create(job="backup", status="failed", duration_ms=3, message="disk full")
    client = login(make_user("admin"))
    resp = client.get("/admin/system")
    assert resp.status_code == 200
    html = resp.get_data(as_text=True)
    for needle in ('data-testid="check" data-name="database"', 'data-name="worker"',
                   'data-testid="deployment" data-result="rolled_back"',
                   "migration 0009 failed; rolled back", "RuntimeError: boom",
                   'data-job="heartbeat"', 'data-job="backup"', "disk full",
                   'data-testid="nav-system"'):
        assert needle in html, needle


def test_system_page_needs_manage(app, org, make_user, login):
    client = login(make_user("manager"))
    assert client.get("/admin/system").status_code == 403
    assert 'data-testid="nav-system"' not in client.get("/leaks").get_data(as_text=True)


def test_system_page_does_not_exist_for_other_organizations(app, other_org, make_user, login):
    client = login(make_user("admin", organization=other_org))
    assert client.get("/admin/system").status_code == 404
