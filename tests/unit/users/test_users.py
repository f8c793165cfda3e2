"""User administration, grants, effective access, organization settings and sessions.
Keycloak is faked at the edge (identity.keycloak.admin_client) by a recorder."""
import datetime as dt
import json
import re
from decimal import Decimal

import pytest
from click.testing import CliRunner

import leakhub.identity.keycloak as keycloak
from leakhub import authz
from leakhub.audit.models import AuditEntry
from leakhub.authz import access, grants
from leakhub.authz.models import Grant
from leakhub.cli import cli
from leakhub.core.db import utcnow
from leakhub.core.validation import ValidationError
from leakhub.identity import sessions
from leakhub.identity.keycloak_admin import KeycloakConflict, KeycloakError
from leakhub.identity.models import User, WebSession
from leakhub.leaks.models import Leak
from leakhub.locations.models import Location
from leakhub.security.models import SecurityEvent
from leakhub.surveys.models import Survey
from leakhub.users import service


class FakeKeycloak:
    """Records every admin call; behaves like Keycloak for the parts Leakhub relies on."""

    def __init__(self):
        self.calls = []
        self.users = {}
        self.fail = set()

    def _call(self, name, *args, **kw):
        self.calls.append((name, args, kw))
        if name in self.fail:
            raise KeycloakError(f"{name}: Keycloak answered HTTP 500")

    def names(self):
        return [c[0] for c in self.calls]

    def create_user(self, realm, *, email, first_name="", last_name="", temporary_password=None,
                    required_actions=("UPDATE_PASSWORD",), enabled=True):
        self._call("create_user", realm, email=email, first_name=first_name,
                   last_name=last_name, temporary_password=temporary_password,
                   required_actions=list(required_actions), enabled=enabled)
        if any(u["email"] == email.lower() for u in self.users.values()):
            raise KeycloakConflict(f"a user with e-mail {email} already exists", status=409)
        uid = f"kc-{len(self.users) + 1}"
        self.users[uid] = {"email": email.lower(), "enabled": enabled}
        return uid

    def delete_user(self, realm, user_id):
        self._call("delete_user", realm, user_id)
        self.users.pop(user_id, None)

    # Reads of the user page's lock-out state (privacy); not recorded: the tests here follow
    # the writes.
    def get_login_failures(self, realm, user_id):
        return {"numFailures": 0, "disabled": False}

    def get_user(self, realm, user_id):
        return {"id": user_id, **self.users.get(user_id, {"enabled": True})}

    def set_user_enabled(self, realm, user_id, enabled):
        self._call("set_user_enabled", realm, user_id, enabled)

    def logout_user(self, realm, user_id):
        self._call("logout_user", realm, user_id)

    def logout_session(self, realm, session_id):
        self._call("logout_session", realm, session_id)

    def execute_actions_email(self, realm, user_id, actions, **kw):
        self._call("execute_actions_email", realm, user_id, list(actions), **kw)

    def reset_password(self, realm, user_id, password, *, temporary=True):
        self._call("reset_password", realm, user_id, password, temporary=temporary)

    def set_smtp_server(self, realm, smtp):
        self._call("set_smtp_server", realm, dict(smtp))


@pytest.fixture
def kc(monkeypatch):
    fake = FakeKeycloak()
    monkeypatch.setattr(keycloak, "admin_client", lambda config: fake)
    monkeypatch.delenv("LEAKHUB_SMTP_HOST", raising=False)
    return fake


@pytest.fixture
def admin(make_user):
    return make_user("admin", name="Ada Admin")


@pytest.fixture
def admin_client(app, login, admin):
    return login(admin, app.test_client())


def csrf(data=None):
    return {"csrf_token": "t", **(data or {})}


def entries(action):
    return list(AuditEntry.select().where(AuditEntry.action == action).order_by(AuditEntry.seq))


def details(entry):
    return json.loads(entry.changes)


def invoke(*args):
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


# ------------------------------------------------------------------------------- invite

def test_invite_creates_user_and_shows_the_one_time_password_once(config, org, kc, admin,
                                                                   admin_client):
    resp = admin_client.post("/users/invite", data=csrf(
        {"email": "Anna.Berg@Example.com", "role": "editor", "name": "Anna Berg"}))
    page = resp.get_data(as_text=True)
    assert resp.status_code == 200, page
    otp = re.search(r'data-testid="one-time-password">([^<]+)<', page).group(1)
    user = User.get(User.email == "anna.berg@example.com")
    assert (user.role, user.sub, user.name, user.enabled) == ("editor", "kc-1", "Anna Berg", True)
    call = next(c for c in kc.calls if c[0] == "create_user")
    assert call[1] == ("acme",)
    assert call[2]["temporary_password"] == otp
    assert call[2]["required_actions"] == ["UPDATE_PASSWORD"]  # no SMTP: no VERIFY_EMAIL
    assert (call[2]["first_name"], call[2]["last_name"]) == ("Anna", "Berg")
    # Audit: the invitation, never the password.
    invited = entries("user.invited")[-1]
    assert details(invited) == {"email": "anna.berg@example.com", "role": "editor",
                                "delivery": "one_time_password"}
    assert not AuditEntry.select().where(AuditEntry.changes.contains(otp)).exists()
    assert not SecurityEvent.select().where(SecurityEvent.details.contains(otp)).exists()
    assert not WebSession.select().where(WebSession.data.contains(otp)).exists()
    # Shown once: no other page carries it.
    for path in ("/users", f"/users/{user.id}"):
        again = admin_client.get(path)
        assert again.status_code == 200 and otp not in again.get_data(as_text=True)


def test_invite_with_smtp_configures_the_realm_and_mails_the_link(config, org, kc, actor,
                                                                  monkeypatch):
    monkeypatch.setenv("LEAKHUB_SMTP_HOST", "mail.example.com")
    monkeypatch.setenv("LEAKHUB_SMTP_USER", "leakhub")
    result = service.invite(config, actor, email="ben@example.com", role="viewer")
    assert result.one_time_password is None and result.delivery == "email"
    smtp = next(c for c in kc.calls if c[0] == "set_smtp_server")
    assert smtp[1][0] == "acme"
    assert smtp[1][1]["host"] == "mail.example.com" and smtp[1][1]["from"] == "leakhub@leakhub.test"
    create = next(c for c in kc.calls if c[0] == "create_user")
    assert create[2]["temporary_password"] is None
    assert create[2]["required_actions"] == ["UPDATE_PASSWORD", "VERIFY_EMAIL"]
    mail = next(c for c in kc.calls if c[0] == "execute_actions_email")
    assert mail[1][2] == ["UPDATE_PASSWORD", "VERIFY_EMAIL"]
    assert kc.names().index("set_smtp_server") < kc.names().index("create_user")


def test_invite_falls_back_to_a_one_time_password_when_mail_fails(config, org, kc, actor,
                                                                  monkeypatch):
    monkeypatch.setenv("LEAKHUB_SMTP_HOST", "mail.example.com")
    kc.fail.add("execute_actions_email")
    result = service.invite(config, actor, email="carl@example.com", role="viewer")
    assert result.delivery == "one_time_password" and result.one_time_password
    assert result.warning
    reset = next(c for c in kc.calls if c[0] == "reset_password")
    assert reset[1][2] == result.one_time_password and reset[2] == {"temporary": True}


def test_duplicate_email_names_the_field(config, org, kc, admin, admin_client, make_user):
    taken = make_user("viewer")
    resp = admin_client.post("/users/invite", data=csrf({"email": taken.email.upper(),
                                                         "role": "viewer"}))
    assert resp.status_code == 422
    assert 'data-testid="error-email"' in resp.get_data(as_text=True)
    assert "create_user" not in kc.names()
    # Known only to Keycloak (e.g. created in its console): the same field error.
    kc.users["kc-x"] = {"email": "dora@example.com", "enabled": True}
    with pytest.raises(ValidationError) as exc:
        service.invite(config, authz.Actor.system(org), email="dora@example.com", role="viewer")
    assert set(exc.value.errors) == {"email"}
    result = invoke("user", "invite", "--org", "acme", "--email", taken.email, "--role", "viewer")
    assert result.exit_code == 1
    assert "--email:" in result.output and "exists already" in result.output


def test_invalid_input_is_named(config, org, kc, actor):
    with pytest.raises(ValidationError) as exc:
        service.invite(config, actor, email="not-an-address", role="boss")
    assert set(exc.value.errors) == {"email", "role"}


def test_database_failure_removes_the_keycloak_user_again(config, org, kc, actor, monkeypatch):
    from leakhub.audit import writer

    def boom(*a, **k):
        raise RuntimeError("disk full")

    monkeypatch.setattr(writer, "event", boom)
    with pytest.raises(RuntimeError):
        service.invite(config, actor, email="eve@example.com", role="viewer")
    assert "delete_user" in kc.names() and not kc.users
    assert not User.select().where(User.email == "eve@example.com").exists()


def test_cli_invite_prints_the_password_once_as_json(config, org, kc):
    result = invoke("user", "invite", "--org", "acme", "--email", "fay@example.com",
                    "--role", "external", "--json")
    assert result.exit_code == 0, result.output
    out = json.loads(result.output)
    assert out["one_time_password"] and out["role"] == "external"
    assert out["login_url"] == "https://leakhub.test/login/acme"
    listed = invoke("user", "list", "--org", "acme", "--json")
    assert out["one_time_password"] not in listed.output
    assert [u["email"] for u in json.loads(listed.output)] == ["fay@example.com"]


def test_non_admins_cannot_administer_users(app, org, kc, login, make_user):
    manager = login(make_user("manager"), app.test_client())
    for path in ("/users", "/users/invite", "/organization/settings"):
        assert manager.get(path).status_code == 403
    assert manager.post("/users/invite", data=csrf({"email": "x@example.com",
                                                    "role": "admin"})).status_code == 403
    assert not User.select().where(User.email == "x@example.com").exists()


def test_forms_need_the_csrf_token(app, org, kc, admin_client, make_user):
    target = make_user("viewer")
    resp = admin_client.post(f"/users/{target.id}/disable", data={})
    assert resp.status_code == 403
    assert User.get_by_id(target.id).enabled


# ------------------------------------------------------------------------------- list, roles

def test_list_shows_roles_state_last_sign_in_and_pending_users(app, org, kc, admin,
                                                               admin_client, make_user):
    signed = make_user("viewer")
    signed.last_login_at = dt.datetime(2026, 3, 2, 8, 30)
    signed.save()
    pending = make_user(None)
    page = admin_client.get("/users").get_data(as_text=True)
    assert "2026-03-02 09:30" in page  # shown in the organization's time zone
    assert f'data-testid="pending-{pending.id}"' in page
    assert f'data-testid="user-{signed.id}"' in page
    resp = admin_client.post(f"/users/{pending.id}/role",
                             data=csrf({"role": "editor", "from": "list"}))
    assert resp.status_code == 302 and resp.headers["Location"].endswith("/users")
    assert User.get_by_id(pending.id).role == "editor"
    assert details(entries("user.role_changed")[-1]) == {
        "email": pending.email, "from": None, "to": "editor", "approved": True}


def test_role_change_audit_event_has_from_and_to(app, org, kc, admin, admin_client, make_user):
    target = make_user("viewer")
    resp = admin_client.post(f"/users/{target.id}/role", data=csrf({"role": "manager"}))
    assert resp.status_code == 302
    assert User.get_by_id(target.id).role == "manager"
    event = entries("user.role_changed")[-1]
    assert details(event) == {"email": target.email, "from": "viewer", "to": "manager"}
    assert (event.entity_type, event.entity_id, event.actor_id) == ("user", target.id, admin.id)
    assert details(entries("update")[-1]) == {"role": ["viewer", "manager"]}
    result = invoke("user", "set-role", "--org", "acme", "--email", target.email,
                    "--role", "editor")
    assert result.exit_code == 0, result.output
    assert details(entries("user.role_changed")[-1])["to"] == "editor"
    assert entries("user.role_changed")[-1].actor_label == "leakctl"


def test_the_last_enabled_admin_cannot_be_removed(config, app, org, kc, admin, admin_client,
                                                  make_user):
    resp = admin_client.post(f"/users/{admin.id}/role", data=csrf({"role": "editor"}))
    assert resp.status_code == 422
    assert 'data-testid="error-role"' in resp.get_data(as_text=True)
    assert "last enabled administrator" in resp.get_data(as_text=True)
    system = authz.Actor.system(org)
    with pytest.raises(service.UserError, match="last enabled administrator"):
        service.set_enabled(config, system, admin, False)
    result = invoke("user", "disable", "--org", "acme", "--email", admin.email)
    assert result.exit_code == 1 and "last enabled administrator" in result.output
    assert User.get_by_id(admin.id).role == "admin" and User.get_by_id(admin.id).enabled
    # A disabled admin does not count; a second enabled admin does.
    second = make_user("admin")
    service.set_enabled(config, system, second, False)
    with pytest.raises(ValidationError):
        service.set_role(config, system, admin, "viewer")
    service.set_enabled(config, system, second, True)
    service.set_role(config, system, admin, "viewer")
    assert User.get_by_id(admin.id).role == "viewer"


# ------------------------------------------------------------------------------- disable

def test_disable_ends_sessions_at_once(app, org, kc, admin, admin_client, login, make_user):
    target = make_user("editor")
    victim = login(target, app.test_client())
    assert victim.get("/leaks").status_code == 200
    login(target, app.test_client())  # a second device
    assert WebSession.select().where(WebSession.user == target).count() == 2
    resp = admin_client.post(f"/users/{target.id}/disable", data=csrf())
    assert resp.status_code == 302
    assert not User.get_by_id(target.id).enabled
    assert WebSession.select().where(WebSession.user == target).count() == 0
    assert ("set_user_enabled", ("acme", target.sub, False), {}) in kc.calls
    # The very next request with the old cookie goes to the sign-in.
    nxt = victim.get("/leaks")
    assert nxt.status_code == 302 and "/login" in nxt.headers["Location"]
    event = entries("user.disabled")[-1]
    assert details(event) == {"email": target.email, "sessions_ended": 2}
    # Enable again (Keycloak too).
    admin_client.post(f"/users/{target.id}/enable", data=csrf())
    assert User.get_by_id(target.id).enabled
    assert ("set_user_enabled", ("acme", target.sub, True), {}) in kc.calls
    assert entries("user.enabled")


def test_keycloak_failure_on_disable_still_disables_in_leakhub(config, org, kc, actor,
                                                               make_user):
    target = make_user("editor")
    kc.fail.add("set_user_enabled")
    with pytest.raises(service.UserError, match="sign-in service was not updated"):
        service.set_enabled(config, actor, target, False)
    assert not User.get_by_id(target.id).enabled


# ------------------------------------------------------------------------------- grants

@pytest.fixture
def tree(org):
    site = Location.create(organization=org, kind="site", code="BER", name="Berlin")
    hall = Location.create(organization=org, kind="building", code="H1", name="Hall 1",
                           parent=site)
    area = Location.create(organization=org, kind="area", code="A1", name="Press shop",
                           parent=hall)
    other = Location.create(organization=org, kind="site", code="MUC", name="Munich")
    survey = Survey.create(organization=org, name="Spring", period_start=dt.date(2026, 3, 1))

    def leak(tag, loc, survey_=None):
        return Leak.create(organization=org, tag=tag, location=loc, rate_lpm=Decimal("10"),
                           survey=survey_)

    return {"site": site, "hall": hall, "area": area, "other": other, "survey": survey,
            "leak": leak("101", area), "munich": leak("102", other),
            "surveyed": leak("103", other, survey)}


def test_grant_add_and_revoke_with_audit(app, org, kc, admin, admin_client, make_user, tree,
                                         login):
    ext = make_user("external")
    ext_client = login(ext, app.test_client())
    assert ext_client.get(f"/leaks/{tree['leak'].id}").status_code == 404
    resp = admin_client.post(f"/users/{ext.id}/grants", data=csrf(
        {"target": "location", "location": tree["site"].id, "level": "view",
         "expires": "2099-12-31", "note": "audit 17"}))
    assert resp.status_code == 302, resp.get_data(as_text=True)
    grant = Grant.get(Grant.user == ext)
    assert (grant.location_id, grant.level, grant.note) == (tree["site"].id, "view", "audit 17")
    # Valid through 31.12.2099 in Europe/Berlin: ends at local midnight (23:00 UTC).
    assert grant.expires_at == dt.datetime(2099, 12, 31, 23, 0)
    given = entries("grant.given")[-1]
    assert details(given)["user"] == ext.email and details(given)["location"] == "BER"
    assert entries("create")[-1].entity_type == "grant"
    assert ext_client.get(f"/leaks/{tree['leak'].id}").status_code == 200
    page = admin_client.get(f"/users/{ext.id}").get_data(as_text=True)
    assert "2099-12-31" in page and f'data-testid="grant-{grant.id}"' in page

    resp = admin_client.post(f"/users/{ext.id}/grants/{grant.id}/revoke", data=csrf())
    assert resp.status_code == 302
    assert not Grant.select().exists()
    revoked = entries("grant.revoked")[-1]
    assert details(revoked)["location"] == "BER" and revoked.entity_id == grant.id
    assert entries("delete")[-1].entity_type == "grant"
    assert ext_client.get(f"/leaks/{tree['leak'].id}").status_code == 404


def test_grant_validation_names_fields(org, kc, actor, make_user, tree):
    ext = make_user("external")
    with pytest.raises(ValidationError) as exc:
        grants.add_grant(actor, ext, level="view")
    assert set(exc.value.errors) == {"location"}
    with pytest.raises(ValidationError) as exc:
        grants.add_grant(actor, ext, location_id=tree["site"].id, level="own",
                          expires="2001-01-01")
    assert set(exc.value.errors) == {"level", "expires"}
    with pytest.raises(ValidationError) as exc:
        grants.add_grant(actor, ext, location_id=tree["site"].id, survey_id=tree["survey"].id)
    assert set(exc.value.errors) == {"survey"}
    grants.add_grant(actor, ext, survey_id=tree["survey"].id, level="edit")
    with pytest.raises(ValidationError) as exc:
        grants.add_grant(actor, ext, survey_id=tree["survey"].id, level="edit")
    assert set(exc.value.errors) == {"survey"}


def test_grant_cli(config, org, kc, make_user, tree):
    ext = make_user("external")
    out = invoke("grant", "add", "--org", "acme", "--email", ext.email, "--location", "H1",
                 "--level", "edit", "--expires", "2099-01-31", "--json")
    assert out.exit_code == 0, out.output
    given = json.loads(out.output)
    assert given["location"] == "H1" and given["valid_through"] == "2099-01-31"
    out = invoke("grant", "add", "--org", "acme", "--email", ext.email, "--survey",
                 str(tree["survey"].id), "--level", "view")
    assert out.exit_code == 0, out.output
    listed = json.loads(invoke("grant", "list", "--org", "acme", "--email", ext.email,
                               "--json").output)
    assert len(listed) == 2
    bad = invoke("grant", "add", "--org", "acme", "--email", ext.email, "--location", "NOPE",
                 "--level", "view")
    assert bad.exit_code == 1 and "--location:" in bad.output and "NOPE" in bad.output
    out = invoke("grant", "revoke", "--org", "acme", "--email", ext.email, "--location", "H1")
    assert out.exit_code == 0 and "1 grant(s) revoked" in out.output
    out = invoke("grant", "revoke", "--org", "acme", "--id", str(listed[1]["id"]))
    assert out.exit_code == 0
    assert not Grant.select().exists()
    assert len(entries("grant.revoked")) == 2


# ------------------------------------------------------------------------------- effective access

def explain(actor, user, leak):
    result = access.effective_access(actor, user, leak)
    assert all(d.consistent for d in result.decisions)
    return {d.action: d for d in result.decisions}, result


def test_effective_access_admin_by_role(org, kc, actor, tree):
    org.security_mode = 3
    org.save()
    d, _ = explain(actor, actor.user, tree["leak"])
    assert d["view"].allowed and d["edit"].allowed
    assert "Role Administrator" in d["view"].reason and d["view"].grant is None


def test_effective_access_mode_1_editor(org, kc, actor, make_user, tree):
    editor = make_user("editor")
    d, _ = explain(actor, editor, tree["leak"])
    assert d["view"].allowed and d["edit"].allowed
    assert "Security mode 1" in d["edit"].reason and "every leak" in d["edit"].reason


def test_effective_access_mode_3_viewer_without_grant(org, kc, actor, make_user, tree):
    org.security_mode = 3
    org.save()
    viewer = make_user("viewer")
    d, result = explain(actor, viewer, tree["leak"])
    assert not d["view"].allowed and not d["edit"].allowed
    assert "Security mode 3" in d["view"].reason and "No active grant" in d["view"].reason
    assert "never allows" in d["edit"].reason
    assert result.grants == []


def test_effective_access_external_with_inherited_location_grant(org, kc, actor, make_user,
                                                                 tree, app, admin_client):
    ext = make_user("external")
    grant = grants.add_grant(actor, ext, location_id=tree["site"].id, level="view")
    d, result = explain(actor, ext, tree["leak"])
    assert d["view"].allowed and d["view"].grant.id == grant.id
    assert "reaches leaks only through grants" in d["view"].reason
    assert "BER" in d["view"].reason  # the ancestor the grant is on
    assert not d["edit"].allowed and "No active grant" in d["edit"].reason
    assert [line.gives for line in result.grants] == [["view"]]
    # Not covered: a leak in another site.
    d2, _ = explain(actor, ext, tree["munich"])
    assert not d2["view"].allowed
    # The page shows the same.
    page = admin_client.get(f"/users/{ext.id}/access?leak=101").get_data(as_text=True)
    assert 'data-testid="access-view"' in page and "Can see" in page and "Cannot edit" in page


def test_effective_access_expired_grant(org, kc, actor, make_user, tree):
    ext = make_user("external")
    Grant.create(organization=org, user=ext, location=tree["hall"], level="edit",
                 expires_at=utcnow() - dt.timedelta(days=1))
    d, result = explain(actor, ext, tree["leak"])
    assert not d["view"].allowed and not d["edit"].allowed
    assert "No active grant" in d["view"].reason
    [line] = result.grants
    assert not line.active and line.gives == []
    # (in the organization's calendar, as shown: between 23:00 and 24:00 UTC Berlin's date is
    # already the next one)
    from leakhub.core.validation import utc_to_local
    assert line.valid_through < utc_to_local(utcnow(), org.timezone).date()
    page_reason = d["edit"].reason
    assert "view and edit" in page_reason  # the level that would have been needed


def test_effective_access_survey_grant_and_disabled_and_pending(org, kc, actor, make_user,
                                                                tree):
    ext = make_user("external")
    grants.add_grant(actor, ext, survey_id=tree["survey"].id, level="edit")
    d, _ = explain(actor, ext, tree["surveyed"])
    assert d["edit"].allowed and "survey Spring" in d["edit"].reason
    ext.enabled = False
    ext.save()
    d, _ = explain(actor, ext, tree["surveyed"])
    assert not d["view"].allowed and "disabled" in d["view"].reason
    pending = make_user(None)
    d, _ = explain(actor, pending, tree["leak"])
    assert not d["view"].allowed and "waiting for access" in d["view"].reason


def test_effective_access_cli_and_unknown_leak(config, org, kc, make_user, tree):
    viewer = make_user("viewer")
    out = invoke("user", "access", "--org", "acme", "--email", viewer.email, "--leak", "101",
                 "--json")
    assert out.exit_code == 0, out.output
    data = json.loads(out.output)
    assert [(d["action"], d["allowed"]) for d in data["decisions"]] == [("view", True),
                                                                        ("edit", False)]
    bad = invoke("user", "access", "--org", "acme", "--email", viewer.email, "--leak", "999")
    assert bad.exit_code == 1 and "--leak:" in bad.output


# ------------------------------------------------------------------------------- settings

def test_org_settings_update_through_the_writer(app, org, kc, admin_client):
    page = admin_client.get("/organization/settings").get_data(as_text=True)
    assert "reads and writes only where granted" in page
    resp = admin_client.post("/organization/settings", data=csrf(
        {"security_mode": "3", "timezone": "Europe/Vienna", "language": "de"}))
    assert resp.status_code == 302
    org = org.__class__.get_by_id(org.id)
    assert (org.security_mode, org.timezone, org.language) == (3, "Europe/Vienna", "de")
    entry = entries("settings.changed")[-1]
    assert details(entry) == {"security_mode": [1, 3], "timezone": ["Europe/Berlin",
                                                                      "Europe/Vienna"],
                              "language": ["en", "de"]}
    bad = admin_client.post("/organization/settings", data=csrf(
        {"security_mode": "7", "timezone": "Mars/Olympus", "language": "de"}))
    assert bad.status_code == 422
    text = bad.get_data(as_text=True)
    assert 'data-testid="error-security_mode"' in text and 'data-testid="error-timezone"' in text


# ------------------------------------------------------------------------------- sessions

def _row_of(client, app):
    from leakhub.identity.sessions import _digest

    cookie = client.get_cookie("__Host-leakhub") or client.get_cookie("leakhub")
    return WebSession.get_by_id(_digest(cookie.value))


def test_idle_timeout(app, org, login, make_user):
    user = make_user("viewer")
    c = login(user, app.test_client())
    assert c.get("/leaks").status_code == 200
    row = _row_of(c, app)
    WebSession.update(last_seen_at=utcnow() - dt.timedelta(minutes=29)).where(
        WebSession.id == row.id).execute()
    assert c.get("/leaks").status_code == 200  # 29 minutes idle: still fine
    WebSession.update(last_seen_at=utcnow() - dt.timedelta(minutes=30, seconds=1)).where(
        WebSession.id == row.id).execute()
    resp = c.get("/leaks")
    assert resp.status_code == 302 and "/login" in resp.headers["Location"]
    assert WebSession.get_or_none(WebSession.id == row.id) is None


def test_absolute_lifetime(app, org, login, make_user):
    user = make_user("viewer")
    c = login(user, app.test_client())
    row = _row_of(c, app)
    # Created almost 12 hours ago and active all the time: ends at the lifetime regardless.
    assert row.expires_at - row.created_at == dt.timedelta(hours=12)
    WebSession.update(created_at=utcnow() - dt.timedelta(hours=12),
                      expires_at=utcnow() + dt.timedelta(seconds=30),
                      last_seen_at=utcnow()).where(WebSession.id == row.id).execute()
    assert c.get("/leaks").status_code == 200
    WebSession.update(expires_at=utcnow() - dt.timedelta(seconds=1),
                      last_seen_at=utcnow()).where(WebSession.id == row.id).execute()
    resp = c.get("/leaks")
    assert resp.status_code == 302 and "/login" in resp.headers["Location"]
    assert WebSession.get_or_none(WebSession.id == row.id) is None


def test_my_sessions_lists_and_ends_one_session(app, org, kc, login, make_user):
    user = make_user("viewer")
    me = login(user, app.test_client())
    other = login(user, app.test_client())
    WebSession.update(kc_sid="sid-other", user_agent="Mozilla/5.0 (X11; Linux x86_64; rv:128.0) "
                      "Gecko/20100101 Firefox/128.0", ip="192.0.2.7").where(
        WebSession.id == _row_of(other, app).id).execute()
    page = me.get("/account/sessions").get_data(as_text=True)
    assert page.count('data-testid="session"') == 2
    assert page.count('data-testid="current-session"') == 1
    assert "Firefox on Linux" in page and "192.0.2.7" in page
    assert _row_of(other, app).id not in page  # the database key is not exposed
    ref = sessions.session_ref(_row_of(other, app))
    resp = me.post("/account/sessions/end", data=csrf({"session": ref}))
    assert resp.status_code == 302
    assert ("logout_session", ("acme", "sid-other"), {}) in kc.calls
    assert other.get("/leaks").status_code == 302
    assert me.get("/leaks").status_code == 200
    # Someone else's session reference does nothing.
    stranger = login(make_user("viewer"), app.test_client())
    ref = sessions.session_ref(_row_of(stranger, app))
    me.post("/account/sessions/end", data=csrf({"session": ref}))
    assert stranger.get("/leaks").status_code == 200


def test_pending_users_see_my_sessions_too(app, org, kc, login, make_user):
    c = login(make_user(None), app.test_client())
    assert c.get("/").status_code == 403  # waiting page
    page = c.get("/account/sessions")
    assert page.status_code == 200 and 'data-testid="current-session"' in page.get_data(
        as_text=True)


def test_sign_out_everywhere(app, org, kc, login, make_user):
    user = make_user("editor")
    me = login(user, app.test_client())
    phone = login(user, app.test_client())
    bystander = login(make_user("editor"), app.test_client())
    resp = me.post("/account/sessions/end-all", data=csrf())
    assert resp.status_code == 302 and resp.headers["Location"].endswith("/signed-out")
    assert WebSession.select().where(WebSession.user == user).count() == 0
    assert ("logout_user", ("acme", user.sub), {}) in kc.calls
    for c in (me, phone):
        r = c.get("/leaks")
        assert r.status_code == 302 and "/login" in r.headers["Location"]
    assert bystander.get("/leaks").status_code == 200
    ev = SecurityEvent.select().where(SecurityEvent.kind == "sign_out").order_by(
        SecurityEvent.id.desc()).first()
    assert json.loads(ev.details)["via"] == "everywhere"


def test_admin_signs_out_all_sessions_of_a_user(app, org, kc, admin_client, login, make_user):
    user = make_user("editor")
    victim = login(user, app.test_client())
    resp = admin_client.post(f"/users/{user.id}/sign-out", data=csrf())
    assert resp.status_code == 302
    assert victim.get("/leaks").status_code == 302
    assert ("logout_user", ("acme", user.sub), {}) in kc.calls
    assert details(entries("user.signed_out")[-1]) == {"email": user.email, "sessions_ended": 1}
    assert User.get_by_id(user.id).enabled  # may sign in again


def test_nav_links(app, org, kc, admin_client, login, make_user):
    page = admin_client.get("/leaks").get_data(as_text=True)
    for testid in ("nav-users", "nav-org-settings", "nav-sessions"):
        assert f'data-testid="{testid}"' in page
    viewer = login(make_user("viewer"), app.test_client())
    page = viewer.get("/leaks").get_data(as_text=True)
    assert 'data-testid="nav-sessions"' in page and 'data-testid="nav-users"' not in page


def test_sign_out_everywhere_when_keycloak_fails(app, org, kc, login, make_user):
    user = make_user("editor")
    me = login(user, app.test_client())
    kc.fail.add("logout_user")
    resp = me.post("/account/sessions/end-all", data=csrf())
    assert resp.status_code == 302 and "/account/signed-out?keycloak=failed" in \
        resp.headers["Location"]
    assert WebSession.select().where(WebSession.user == user).count() == 0
    page = me.get(resp.headers["Location"]).get_data(as_text=True)
    assert 'data-testid="keycloak-failed"' in page
