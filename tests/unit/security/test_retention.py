"""Retention with a frozen clock: exactly the records older than their period go, IPs are
shortened, audit pruning keeps the chain verifiable, and the run is itself audited."""
import datetime as dt
import json

import pytest

from leakhub.audit import writer
from leakhub.audit.models import AuditEntry
from leakhub.audit.verify import verify_org
from leakhub.authz import Actor
from leakhub.core.config import ConfigError
from leakhub.identity.models import WebSession
from leakhub.jobs.models import JobRun
from leakhub.security.models import Finding, SecurityEvent
from leakhub.security.retention import apply_retention

NOW = dt.datetime(2030, 6, 1, 3, 0)


def days_ago(n, extra=dt.timedelta()):
    return NOW - dt.timedelta(days=n) + extra


def test_deletes_exactly_what_is_older_than_the_periods(config, org, other_org, monkeypatch):
    just = dt.timedelta(seconds=1)
    for o in (org, other_org):
        SecurityEvent.create(organization=o, kind="sign_in", at=days_ago(180, -just), ip="10.0.0.1")
        SecurityEvent.create(organization=o, kind="sign_in", at=days_ago(180, just), ip="10.0.0.2")
    SecurityEvent.create(organization=None, kind="access_denied", at=days_ago(181))
    for at in (days_ago(365, -just), days_ago(365, just)):
        Finding.create(organization=org, rule="lockout", severity="medium", subject="user:1",
                       first_seen_at=at, last_seen_at=at, count=1)
    for at in (days_ago(90, -just), days_ago(90, just)):
        JobRun.create(job="heartbeat", started_at=at, finished_at=at, status="ok")

    result = apply_retention(now=NOW, config=config, env={})

    assert "removed 3 security event(s), 1 finding(s)" in result
    assert "removed 1 job run(s)" in result
    assert sorted(e.ip for e in SecurityEvent.select()) == ["10.0.0.0", "10.0.0.0"]  # truncated
    assert [f.last_seen_at for f in Finding.select()] == [days_ago(365, just)]
    assert [r.started_at for r in JobRun.select().where(JobRun.job == "heartbeat")] == [
        days_ago(90, just)]
    # One audit event per organization says what went.
    entry = AuditEntry.get((AuditEntry.organization == org)
                           & (AuditEntry.action == "retention.run"))
    details = json.loads(entry.changes)
    assert (details["security_events"], details["findings"], details["ips_truncated"]) == (1, 1, 1)
    assert details["periods_days"]["security_events"] == 180
    assert entry.actor_kind == "system" and entry.actor_label == "retention"
    other = AuditEntry.get((AuditEntry.organization == other_org)
                           & (AuditEntry.action == "retention.run"))
    assert json.loads(other.changes)["findings"] == 0


def test_periods_come_from_the_environment(config, org):
    SecurityEvent.create(organization=org, kind="sign_in", at=days_ago(11))
    SecurityEvent.create(organization=org, kind="sign_in", at=days_ago(9))
    apply_retention(now=NOW, config=config,
                    env={"LEAKHUB_RETENTION_SECURITY_EVENTS_DAYS": "10"})
    assert SecurityEvent.select().count() == 1


@pytest.mark.parametrize("name,value", [
    ("LEAKHUB_RETENTION_SECURITY_EVENTS_DAYS", "ten"),
    ("LEAKHUB_RETENTION_AUDIT_DAYS", "0"),
    ("LEAKHUB_RETENTION_IP_TRUNCATE_DAYS", "-1"),
])
def test_bad_periods_name_the_variable(config, org, name, value):
    with pytest.raises(ConfigError, match=name):
        apply_retention(now=NOW, config=config, env={name: value})


def test_ip_truncation_after_30_days(config, org):
    old4 = SecurityEvent.create(organization=org, kind="sign_in", at=days_ago(31), ip="192.0.2.77")
    old6 = SecurityEvent.create(organization=org, kind="sign_in", at=days_ago(31),
                                ip="2001:db8:abcd:12::1")
    recent = SecurityEvent.create(organization=org, kind="sign_in", at=days_ago(29),
                                  ip="192.0.2.78")
    apply_retention(now=NOW, config=config, env={})
    assert SecurityEvent.get_by_id(old4.id).ip == "192.0.2.0"
    assert SecurityEvent.get_by_id(old6.id).ip == "2001:db8:abcd::"
    assert SecurityEvent.get_by_id(recent.id).ip == "192.0.2.78"
    assert SecurityEvent.get_by_id(old4.id).ip_truncated
    # A second run does not count them again.
    entries_before = AuditEntry.select().count()
    apply_retention(now=NOW, config=config, env={})
    last = AuditEntry.select().order_by(AuditEntry.id.desc()).get()
    assert AuditEntry.select().count() == entries_before + 1
    assert json.loads(last.changes)["ips_truncated"] == 0


def test_audit_pruning_keeps_the_chain_verifiable(config, org, monkeypatch):
    actor = Actor.system(org)
    monkeypatch.setattr(writer, "utcnow", lambda: days_ago(3651))
    for i in range(3):
        writer.event(actor, "old.event", details={"i": i})
    monkeypatch.setattr(writer, "utcnow", lambda: days_ago(3649))
    for i in range(2):
        writer.event(actor, "kept.event", details={"i": i})
    monkeypatch.undo()
    assert verify_org(org).ok
    apply_retention(now=NOW, config=config, env={})
    actions = [e.action for e in AuditEntry.select().order_by(AuditEntry.seq)]
    assert actions == ["kept.event", "kept.event", "retention.run"]
    report = verify_org(org)
    assert report.ok and report.entries == 3
    run = AuditEntry.get(AuditEntry.action == "retention.run")
    assert json.loads(run.changes)["audit_entries"] == 3


def test_expired_sessions_are_purged(config, org):
    now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    WebSession.create(id="a" * 64, organization=org, expires_at=now - dt.timedelta(minutes=1),
                      last_seen_at=now)
    WebSession.create(id="b" * 64, organization=org, expires_at=now + dt.timedelta(hours=1),
                      last_seen_at=now)
    assert "1 expired session(s)" in apply_retention(now=NOW, config=config, env={})
    assert [s.id for s in WebSession.select()] == ["b" * 64]
