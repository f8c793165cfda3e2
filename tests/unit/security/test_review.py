"""Security review rules: each produces exactly one finding on crafted events, none below
its threshold, and re-running over the same events changes nothing."""
import datetime as dt

import pytest

from leakhub.audit import writer
from leakhub.core.db import utcnow
from leakhub.security import review
from leakhub.security.models import Finding, SecurityEvent, SecurityReviewState
from leakhub.security.review import review_security_events

OFF = {"LEAKHUB_WORK_HOURS": "off"}
NOW = utcnow()


def ev(org, kind, *, minutes_ago=0.0, at=None, user=None, username="", ip="198.51.100.7",
       source="keycloak"):
    return SecurityEvent.create(
        organization=org, kind=kind, at=at or NOW - dt.timedelta(minutes=minutes_ago),
        user=user, username=username or (user.email if user else ""), ip=ip, source=source)


def run(config, env=OFF):
    return review_security_events(config=config, env=env)


def findings(rule=None):
    q = Finding.select().order_by(Finding.id)
    return list(q.where(Finding.rule == rule) if rule else q)


@pytest.mark.parametrize("n,expected", [(4, 0), (5, 1)])
def test_failed_sign_ins_per_user(config, org, make_user, n, expected):
    alice = make_user("editor")
    for i in range(n):
        ev(org, "sign_in_failed", minutes_ago=14 - i * 3, user=alice, ip=f"198.51.100.{i}")
    run(config)
    got = findings("failed_sign_ins_user")
    assert len(got) == expected
    assert len(findings()) == expected  # no other rule fires
    if expected:
        f = got[0]
        assert (f.severity, f.subject, f.count, f.status) == (
            "medium", f"user:{alice.id}", 5, "open")
        assert f.details_dict["label"] == alice.email


def test_failures_spread_over_more_than_the_window_do_not_count(config, org, make_user):
    alice = make_user("editor")
    for i in range(5):
        ev(org, "sign_in_failed", minutes_ago=i * 5, user=alice)  # 20 minutes apart end to end
    run(config)
    assert findings() == []


def test_failed_sign_ins_by_unknown_username(config, org):
    for i in range(5):
        ev(org, "sign_in_failed", minutes_ago=i, username="Mallory" if i % 2 else "mallory",
           ip=f"203.0.113.{i}")
    run(config)
    (f,) = findings()
    assert (f.rule, f.subject, f.count) == ("failed_sign_ins_user", "username:mallory", 5)


@pytest.mark.parametrize("n,expected", [(9, 0), (10, 1)])
def test_failed_sign_ins_per_ip(config, org, n, expected):
    for i in range(n):
        ev(org, "sign_in_failed", minutes_ago=i, username=f"user{i}", ip="203.0.113.50")
    run(config)
    got = findings("failed_sign_ins_ip")
    assert len(got) == expected and len(findings()) == expected
    if expected:
        assert (got[0].severity, got[0].subject, got[0].count) == ("high", "ip:203.0.113.50", 10)


def test_lockout(config, org, make_user):
    alice = make_user("editor")
    ev(org, "lockout", minutes_ago=1, user=alice)
    run(config)
    (f,) = findings()
    assert (f.rule, f.severity, f.subject, f.count) == ("lockout", "medium", f"user:{alice.id}", 1)


def profiling_on(org):
    """The profiling rules are off for new organizations (issue 15); these tests switch them
    on as an organization that wants them does."""
    org.profiling_rules = True
    org.save()


def test_sign_in_from_new_network(config, org, make_user):
    profiling_on(org)
    alice, bob = make_user("editor"), make_user("editor")
    ev(org, "sign_in", minutes_ago=60 * 24 * 10, user=alice, ip="10.20.30.5")
    ev(org, "sign_in", minutes_ago=60 * 24 * 10, user=bob, ip="10.20.30.5")
    ev(org, "sign_in", minutes_ago=5, user=bob, ip="10.20.30.99")  # same /24: fine
    # One sign-in, reported by Keycloak and (a second later) by Leakhub:
    ev(org, "sign_in", minutes_ago=20, user=alice, ip="192.0.2.44", source="keycloak")
    ev(org, "sign_in", minutes_ago=19.98, user=alice, ip="192.0.2.44", source="leakhub")
    run(config)
    (f,) = findings()
    assert (f.rule, f.severity, f.subject) == ("new_network", "low", f"user:{alice.id}")
    assert f.details_dict["networks"] == ["192.0.2.0/24"]
    # Later sign-ins from that network are known now.
    ev(org, "sign_in", minutes_ago=0, user=alice, ip="192.0.2.45", source="leakhub")
    run(config)
    assert len(findings()) == 1 and findings()[0].count == 2


def test_first_sign_in_and_ipv6_same_48_are_not_new(config, org, make_user):
    carol = make_user("editor")
    ev(org, "sign_in", minutes_ago=60 * 24, user=carol, ip="2001:db8:1::10")
    ev(org, "sign_in", minutes_ago=1, user=carol, ip="2001:db8:1:ffff::1")
    run(config)
    assert findings() == []


def test_network_older_than_90_days_is_forgotten(config, org, make_user):
    profiling_on(org)
    dave = make_user("editor")
    ev(org, "sign_in", minutes_ago=60 * 24 * 100, user=dave, ip="10.9.9.9")
    ev(org, "sign_in", minutes_ago=60 * 24 * 30, user=dave, ip="10.1.1.1")
    ev(org, "sign_in", minutes_ago=1, user=dave, ip="10.9.9.8")
    run(config)
    assert [f.rule for f in findings()] == ["new_network"]


@pytest.mark.parametrize("n,expected", [(19, 0), (20, 1)])
def test_access_denied_per_user(config, org, make_user, n, expected):
    eve = make_user("viewer")
    for i in range(n):
        ev(org, "access_denied", minutes_ago=i * 0.45, user=eve, source="leakhub")
    run(config)
    got = findings("access_denied_user")
    assert len(got) == expected and len(findings()) == expected
    if expected:
        assert (got[0].severity, got[0].count) == ("medium", 20)


def test_role_changed_to_admin_and_backup_download(config, org, make_user, make_actor):
    admin = make_actor("admin")
    target, other = make_user("viewer"), make_user("viewer")
    writer.event(admin, "user.role_changed", entity=target, details={"role": ["viewer", "admin"]})
    writer.event(admin, "user.role_changed", entity=other, details={"role": ["viewer", "editor"]})
    writer.event(admin, "backup.downloaded", details={"backup": "2025-01-01.tar.age"})
    run(config)
    role = findings("role_admin")
    assert len(role) == 1 and len(findings()) == 2
    assert (role[0].severity, role[0].subject) == ("high", f"user:{target.id}")
    assert role[0].details_dict["label"] == target.email
    (dl,) = findings("backup_download")
    assert (dl.severity, dl.subject) == ("low", f"user:{admin.user.id}")


def test_activity_outside_working_hours(config, org, make_user, make_actor):
    profiling_on(org)
    fred = make_user("editor")
    winter = dt.datetime(2025, 1, 15)  # Europe/Berlin is UTC+1
    ev(org, "sign_in", at=winter.replace(hour=4, minute=30), user=fred, source="leakhub")  # 05:30
    ev(org, "sign_in", at=winter.replace(hour=5, minute=0), user=fred, source="leakhub")   # 06:00
    ev(org, "sign_in", at=winter.replace(hour=18, minute=59), user=fred, source="leakhub")  # 19:59
    ev(org, "sign_in", at=winter.replace(hour=1), user=fred, source="keycloak")  # twin source
    run(config, env={"LEAKHUB_WORK_HOURS": "06-20"})
    (f,) = findings()
    assert (f.rule, f.severity, f.subject, f.count) == (
        "unusual_hours", "low", f"user:{fred.id}", 1)
    assert f.details_dict["work_hours"] == "06-20"


def test_unusual_hours_rule_reads_audit_entries(config, org, make_actor, monkeypatch):
    profiling_on(org)
    actor = make_actor("editor")
    monkeypatch.setattr(writer, "utcnow", lambda: dt.datetime(2025, 1, 15, 22, 30))  # 23:30
    writer.event(actor, "leak.exported")
    monkeypatch.undo()
    run(config, env={"LEAKHUB_WORK_HOURS": "06-20"})
    (f,) = findings()
    assert (f.rule, f.subject) == ("unusual_hours", f"user:{actor.user.id}")


def test_rerun_is_idempotent_even_without_the_watermark(config, org, make_user, make_actor):
    alice = make_user("editor")
    for i in range(6):
        ev(org, "sign_in_failed", minutes_ago=i, user=alice, ip="203.0.113.9")
    ev(org, "lockout", minutes_ago=0, user=alice)
    writer.event(make_actor("admin"), "backup.downloaded")
    run(config)
    before = [(f.rule, f.subject, f.count) for f in findings()]
    assert len(before) == 3
    run(config)
    SecurityReviewState.delete().execute()  # watermark lost: everything is re-read
    run(config)
    assert [(f.rule, f.subject, f.count) for f in findings()] == before


def test_new_events_update_the_open_finding_then_open_a_new_one_after_ack(config, org,
                                                                          make_user):
    alice = make_user("editor")
    for i in range(5):
        ev(org, "sign_in_failed", minutes_ago=30 - i, user=alice)
    assert "1 finding(s) opened" in run(config)
    ev(org, "sign_in_failed", minutes_ago=25, user=alice)  # arrives late (Keycloak sync)
    assert "1 updated" in run(config)
    (f,) = findings()
    assert f.count == 6
    Finding.update(status="acknowledged").execute()
    for i in range(5):
        ev(org, "sign_in_failed", minutes_ago=4 - i * 0.5, user=alice)
    run(config)
    open_ = [x for x in findings() if x.status == "open"]
    assert len(findings()) == 2 and len(open_) == 1 and open_[0].count == 5


def test_findings_stay_in_their_organization(config, org, other_org, make_user):
    alice = make_user("editor", organization=other_org)
    for i in range(5):
        ev(other_org, "sign_in_failed", minutes_ago=i, user=alice)
    run(config)
    assert [f.organization_id for f in findings()] == [other_org.id]


# ---------------------------------------------------------------- digest

def test_digest_skipped_without_smtp(config, org):
    assert "LEAKHUB_SMTP_HOST is empty), skipped" in run(config)


class FakeSMTP:
    sent = []
    instances = []

    def __init__(self, host, port, timeout=None):
        self.host, self.port, self.log = host, port, []
        FakeSMTP.instances.append(self)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def ehlo(self):
        self.log.append("ehlo")

    def starttls(self, context=None):
        self.log.append("starttls")

    def login(self, user, password):
        self.log.append(("login", user, password))

    def send_message(self, msg):
        FakeSMTP.sent.append(msg)


def test_daily_digest_to_the_admins(config, org, make_user, monkeypatch):
    FakeSMTP.sent, FakeSMTP.instances = [], []
    monkeypatch.setattr(review.smtplib, "SMTP", FakeSMTP)
    (config.secrets_dir / "smtp-password").write_text("mail-pw\n")
    admin, _viewer = make_user("admin"), make_user("viewer")
    alice = make_user("editor")
    ev(org, "lockout", minutes_ago=1, user=alice)
    env = dict(OFF, LEAKHUB_SMTP_HOST="mail.acme.test", LEAKHUB_SMTP_USER="leakhub",
               LEAKHUB_SMTP_FROM="leakhub@acme.test")
    assert "1 e-mail(s) sent" in run(config, env)
    (msg,) = FakeSMTP.sent
    assert msg["To"] == admin.email and msg["From"] == "leakhub@acme.test"
    assert "ACME GmbH" in msg["Subject"]
    body = msg.get_content()
    assert "Account locked" in body and alice.email in body
    assert "https://leakhub.test/security" in body
    assert FakeSMTP.instances[0].log[:2] == ["ehlo", "starttls"]
    assert ("login", "leakhub", "mail-pw") in FakeSMTP.instances[0].log
    ev(org, "lockout", minutes_ago=0, user=alice)
    assert "0 e-mail(s) sent" in run(config, env)  # at most one a day


def test_bad_smtp_settings_name_the_variable(config, org):
    from leakhub.core.config import ConfigError

    with pytest.raises(ConfigError, match="LEAKHUB_SMTP_FROM"):
        run(config, dict(OFF, LEAKHUB_SMTP_HOST="mail.acme.test", LEAKHUB_SMTP_FROM="nobody"))
    with pytest.raises(ConfigError, match="LEAKHUB_SMTP_PORT"):
        run(config, dict(OFF, LEAKHUB_SMTP_HOST="mail.acme.test", LEAKHUB_SMTP_PORT="smtp"))
    with pytest.raises(ConfigError, match="LEAKHUB_WORK_HOURS"):
        run(config, {"LEAKHUB_WORK_HOURS": "9 to 5"})


def test_profiling_rules_are_off_for_a_new_organization(config, org, make_user, make_actor,
                                                      monkeypatch):
    """New organizations start without "new network" and "unusual hours" (works councils);
    the other rules still run."""
    assert org.profiling_rules is False
    gus = make_user("editor")
    ev(org, "sign_in", minutes_ago=60 * 24 * 10, user=gus, ip="10.20.30.5")
    ev(org, "sign_in", minutes_ago=5, user=gus, ip="172.16.0.1")
    ev(org, "sign_in", at=dt.datetime(2025, 1, 15, 1, 0), user=gus, source="leakhub")
    actor = make_actor("editor")
    monkeypatch.setattr(writer, "utcnow", lambda: dt.datetime(2025, 1, 15, 22, 30))
    writer.event(actor, "leak.exported")
    monkeypatch.undo()
    run(config, env={"LEAKHUB_WORK_HOURS": "06-20"})
    rules = {f.rule for f in findings()}
    assert not rules & {"new_network", "unusual_hours"}
    profiling_on(org)
    SecurityReviewState.delete().execute()
    run(config, env={"LEAKHUB_WORK_HOURS": "06-20"})
    assert {f.rule for f in findings()} >= {"new_network", "unusual_hours"}  # the same events


def test_audit_rules_read_the_trail_in_batches_and_only_entries_a_rule_counts(
        config, org, make_user, make_actor, monkeypatch):
    """A large trail (every leak recorded is an entry) is read in batches from the database
    and, without work hours, only the two actions a rule counts: the findings are those of a
    whole read, across batch boundaries."""
    from leakhub.core import db
    admin = make_actor("admin")
    target = make_user("viewer")
    for i in range(7):
        writer.event(admin, "leak.created", details={"tag": f"L-{i}"})
    writer.event(admin, "user.role_changed", entity=target, details={"role": ["viewer", "admin"]})
    for i in range(5):
        writer.event(admin, "leak.updated", details={"tag": f"L-{i}"})
    writer.event(admin, "backup.downloaded", details={"backup": "b.tar.age"})
    read = []
    real = db.iterate

    def small_batches(query, size=2000):
        for row in real(query, 2):
            read.append(row)
            yield row

    monkeypatch.setattr(review, "iterate", small_batches)
    rows = list(review._audit_entries(org, None, utcnow(), hours=None))
    assert [r.action for r in rows] == ["user.role_changed", "backup.downloaded"]
    assert isinstance(rows[0].at, dt.datetime) and '"admin"' in rows[0].changes
    assert rows[1].changes == "{}"                 # changes only where a rule reads them
    with_hours = list(review._audit_entries(org, None, utcnow(), hours=(6, 20)))
    # every user entry, through batches of 2
    assert len(with_hours) == 14 and read[-14:] == with_hours
    assert [r.id for r in with_hours] == sorted(r.id for r in with_hours)
    run(config)
    assert sorted(f.rule for f in findings()) == ["backup_download", "role_admin"]
