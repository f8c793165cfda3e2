"""`leakctl security review|sync|retention` run the worker's job functions and record runs."""
import json

from click.testing import CliRunner

import leakhub.identity.keycloak as kc
from leakhub.cli import cli
from leakhub.jobs.models import JobRun
from leakhub.security.models import SecurityEvent


def invoke(*args):
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


def test_retention_with_frozen_now(app, org):
    import datetime as dt

    SecurityEvent.create(organization=org, kind="sign_in", at=dt.datetime(2029, 1, 1))
    SecurityEvent.create(organization=org, kind="sign_in", at=dt.datetime(2030, 5, 1))
    result = invoke("security", "retention", "--now", "2030-06-01T05:00:00+02:00", "--json")
    assert result.exit_code == 0, result.output
    out = json.loads(result.output)
    assert out["status"] == "ok" and "removed 1 security event(s)" in out["message"]
    assert JobRun.get(JobRun.job == "retention").status == "ok"


def test_review_prints_the_result(app, org):
    result = invoke("security", "review")
    assert result.exit_code == 0, result.output
    assert result.output.startswith("security-review: 1 organization(s) reviewed")


def test_bad_now_is_named(app):
    result = CliRunner().invoke(cli, ["security", "review", "--now", "yesterday"])
    assert result.exit_code == 2 and "--now" in result.output


def test_failed_sync_exits_non_zero(app, org, monkeypatch):
    class Down:
        def get_events(self, *a, **k):
            raise OSError("connection refused")

        get_admin_events = get_events

    monkeypatch.setattr(kc, "admin_client", lambda config: Down())
    result = CliRunner().invoke(cli, ["security", "sync"])
    assert result.exit_code == 1
    assert "keycloak-event-sync failed" in result.output and "connection refused" in result.output
