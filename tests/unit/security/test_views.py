"""/security (admins), /audit and /audit.csv (admins, managers), the Activity partial."""
import csv
import datetime as dt
import io

import pytest

from leakhub.audit import writer
from leakhub.audit.activity import audit_for
from leakhub.audit.models import AuditEntry
from leakhub.audit.views import neutralise
from leakhub.authz import Actor
from leakhub.core.db import utcnow
from leakhub.security.models import Finding, SecurityEvent

from support.session import sign_in


def finding(org, **kw):
    now = utcnow()
    values = dict(organization=org, rule="lockout", severity="medium", subject="user:1",
                  first_seen_at=now, last_seen_at=now, count=1,
                  details='{"label": "alice@acme.test"}')
    values.update(kw)
    return Finding.create(**values)


@pytest.mark.parametrize("role,security,audit", [
    ("admin", 200, 200), ("manager", 403, 200), ("editor", 403, 403), ("viewer", 403, 403),
    ("external", 403, 403), (None, 403, 403),
])
def test_who_may_open_the_pages(client, org, make_user, role, security, audit):
    sign_in(client, make_user(role))
    assert client.get("/security").status_code == security
    assert client.get("/audit").status_code == audit
    assert client.get("/audit.csv").status_code == audit


def test_anonymous_is_sent_to_sign_in(client, org):
    for path in ("/security", "/audit", "/audit.csv"):
        resp = client.get(path)
        assert resp.status_code == 302 and "/login" in resp.headers["Location"]


def test_security_page_shows_open_findings_and_events_of_the_own_org_only(client, org,
                                                                          other_org, make_user):
    sign_in(client, make_user("admin"))
    finding(org, details='{"label": "alice@acme.test"}')
    finding(other_org, details='{"label": "secret@other.test"}')
    SecurityEvent.create(organization=org, kind="sign_in_failed", username="bob@acme.test",
                         ip="203.0.113.9")
    SecurityEvent.create(organization=other_org, kind="sign_in_failed",
                         username="carol@other.test")
    page = client.get("/security").get_data(as_text=True)
    assert "alice@acme.test" in page and "bob@acme.test" in page
    assert "other.test" not in page
    assert 'name="csrf_token"' in page and "<script" not in page and "style=" not in page
    filtered = client.get("/security?kind=sign_in&ip=10.").get_data(as_text=True)
    assert "bob@acme.test" not in filtered
    assert client.get("/security?from=31.12.2024").status_code == 422


def test_acknowledge_needs_a_comment_and_is_audited(client, org, make_user):
    admin = make_user("admin")
    sign_in(client, admin)
    f = finding(org)
    resp = client.post(f"/security/findings/{f.id}/acknowledge",
                       data={"csrf_token": "t", "comment": "  "})
    assert resp.status_code == 303
    assert Finding.get_by_id(f.id).status == "open"
    resp = client.post(f"/security/findings/{f.id}/acknowledge",
                       data={"csrf_token": "t", "comment": "Alice forgot her password",
                             "version": str(f.version)})
    assert resp.status_code == 303
    f = Finding.get_by_id(f.id)
    assert (f.status, f.acknowledged_by_id, f.ack_comment) == (
        "acknowledged", admin.id, "Alice forgot her password")
    entry = AuditEntry.get(AuditEntry.action == "finding.acknowledged")
    assert entry.entity_type == "security_finding" and entry.entity_id == f.id
    assert entry.actor_id == admin.id


def test_acknowledge_without_csrf_token_or_for_another_org_fails(client, org, other_org,
                                                                 make_user):
    sign_in(client, make_user("admin"))
    mine, theirs = finding(org), finding(other_org)
    assert client.post(f"/security/findings/{mine.id}/acknowledge",
                       data={"comment": "x"}).status_code == 403
    assert client.post(f"/security/findings/{theirs.id}/acknowledge",
                       data={"csrf_token": "t", "comment": "x"}).status_code == 404
    assert Finding.select().where(Finding.status == "open").count() == 2


def test_manager_cannot_acknowledge(client, org, make_user):
    sign_in(client, make_user("manager"))
    f = finding(org)
    assert client.post(f"/security/findings/{f.id}/acknowledge",
                       data={"csrf_token": "t", "comment": "x"}).status_code == 403


def test_audit_log_filters_and_pagination(client, org, other_org, make_user, make_actor):
    manager = make_user("manager")
    sign_in(client, manager)
    actor = make_actor("admin")
    for i in range(55):
        writer.event(actor, "test.event", details={"i": i})
    writer.event(actor, "user.role_changed", entity=manager,
                 details={"role": ["viewer", "manager"]})
    writer.event(Actor.system(other_org), "test.event", details={"other": "org-b-secret"})
    page1 = client.get("/audit").get_data(as_text=True)
    assert page1.count('data-testid="audit-entry"') == 50 and "page=2" in page1
    assert "org-b-secret" not in page1
    page2 = client.get("/audit?page=2").get_data(as_text=True)
    assert page2.count('data-testid="audit-entry"') == 6
    only = client.get("/audit?action=user.role_changed").get_data(as_text=True)
    assert only.count('data-testid="audit-entry"') == 1 and "manager" in only
    typed = client.get("/audit?entity_type=user").get_data(as_text=True)
    assert typed.count('data-testid="audit-entry"') == 1
    assert client.get("/audit?actor=nobody-like-this").get_data(as_text=True).count(
        'data-testid="audit-entry"') == 0
    tomorrow = (dt.date.today() + dt.timedelta(days=2)).isoformat()
    assert client.get(f"/audit?from={tomorrow}").get_data(as_text=True).count(
        'data-testid="audit-entry"') == 0
    assert client.get("/audit?from=2020-01-01&to=2099-01-01").get_data(as_text=True).count(
        'data-testid="audit-entry"') == 50
    assert client.get("/audit?from=2025-02-01&to=2025-01-01").status_code == 422


@pytest.mark.parametrize("raw,expected", [
    ("=HYPERLINK(\"http://x\")", "'=HYPERLINK(\"http://x\")"), ("+1", "'+1"), ("-1+2", "'-1+2"),
    ("@SUM(A1)", "'@SUM(A1)"), ("\tx", "'\tx"), ("plain", "plain"), (None, ""), (42, "42"),
])
def test_neutralise(raw, expected):
    assert neutralise(raw) == expected


def test_csv_export_neutralises_formulas_and_is_audited(client, org, make_user, make_actor):
    admin = make_user("admin")
    sign_in(client, admin)
    evil = make_actor("editor")
    evil.user.email = "=cmd|' /C calc'!A0"
    evil.user.save()
    evil = Actor(organization=org, kind="user", user=evil.user, ip="10.0.0.1")
    writer.event(evil, "test.event", details={"note": "@SUM(1+1)"})
    resp = client.get("/audit.csv")
    assert resp.status_code == 200 and resp.mimetype == "text/csv"
    assert resp.headers["Content-Type"] == "text/csv; charset=utf-8"
    assert "attachment" in resp.headers["Content-Disposition"]
    rows = list(csv.reader(io.StringIO(resp.get_data(as_text=True))))
    assert rows[0][:3] == ["seq", "time_utc", "time_local"]
    row = next(r for r in rows[1:] if r[7] == "test.event")
    assert row[4] == "'=cmd|' /C calc'!A0"
    assert all(not cell.startswith(("=", "+", "-", "@", "\t")) for r in rows for cell in r)
    assert AuditEntry.get(AuditEntry.action == "audit.exported").actor_id == admin.id
    assert client.get("/audit.csv?from=nonsense").status_code == 400


def test_audit_for_decodes_changes_and_respects_the_organization(app, org, other_org,
                                                                 make_user, make_actor):
    admin = make_actor("admin")
    target = make_user("viewer")
    writer.event(admin, "user.role_changed", entity=target, details={"role": ["viewer", "editor"]})
    writer.event(admin, "user.note", entity=target, details={"note": "hello"})
    items = audit_for(admin, target)
    assert [i.action for i in items] == ["user.note", "user.role_changed"]
    change = items[1].changes[0]
    assert (change.field, change.old, change.new) == ("role", "viewer", "editor")
    assert items[0].details == [("note", "hello")]
    stranger = make_actor("admin", organization=other_org)
    assert audit_for(stranger, target) == []


def test_activity_partial_renders(app, org, make_user, make_actor):
    from flask import render_template_string

    admin = make_actor("admin")
    target = make_user("viewer")
    writer.event(admin, "user.role_changed", entity=target, details={"role": ["viewer", "editor"]})
    with app.test_request_context("/"):
        html = render_template_string(
            '{% from "audit/_activity.html" import activity %}{{ activity(items) }}',
            items=audit_for(admin, target))
    assert 'data-testid="activity-item"' in html and "viewer" in html and "editor" in html


def test_navigation_shows_only_allowed_pages(client, org, make_user):
    sign_in(client, make_user("manager"))
    page = client.get("/audit").get_data(as_text=True)
    assert 'data-testid="nav-audit"' in page and 'data-testid="nav-security"' not in page
