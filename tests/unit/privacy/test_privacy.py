"""Data protection (issue 15): lock-out mode and unlock, erasure (GDPR art. 17), export
(art. 15), masking of a test copy, audit IP truncation, the chain's hash version 2 and its
migration. Keycloak is faked at the edge (identity.keycloak.admin_client)."""
import datetime as dt
import json
import uuid

import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

import leakhub.identity.keycloak as keycloak
from leakhub.audit import writer
from leakhub.audit.models import AuditChainHead, AuditEntry
from leakhub.audit.verify import verify_org
from leakhub.authz import Actor
from leakhub.cli import cli
from leakhub.core.db import database, utcnow
from leakhub.core.migrations import m0013_privacy
from leakhub.identity.keycloak_admin import KeycloakError, KeycloakNotFound
from leakhub.identity.models import User, WebSession
from leakhub.leaks.models import Leak, LeakStatusChange
from leakhub.locations.models import Location
from leakhub.orgs.models import Organization
from leakhub.privacy import service
from leakhub.security import retention
from leakhub.security.models import Finding, SecurityEvent
from leakhub.users import service as users_service

from support.reporting_data import make_tree


class FakeKeycloak:
    """Records the admin calls privacy makes; users are {id: representation}."""

    def __init__(self):
        self.calls = []
        self.users = {}
        self.failures = {}
        self.realms = {}
        self.events, self.admin_events = [], []
        self.fail = set()

    def _call(self, name, *args):
        self.calls.append((name, args))
        if name in self.fail:
            raise KeycloakError(f"{name}: Keycloak answered HTTP 500")

    def names(self):
        return [c[0] for c in self.calls]

    def add(self, user, enabled=True):
        self.users[user.sub] = {"id": user.sub, "username": user.email, "email": user.email,
                                "firstName": user.name, "lastName": "", "enabled": enabled}
        self.realms[user.sub] = user.organization.slug

    def delete_user(self, realm, user_id):
        self._call("delete_user", realm, user_id)
        if user_id not in self.users:
            raise KeycloakNotFound("not found", status=404)
        del self.users[user_id]

    def get_login_failures(self, realm, user_id):
        self._call("get_login_failures", realm, user_id)
        return {"numFailures": self.failures.get(user_id, 0),
                "disabled": self.failures.get(user_id, 0) >= 3}

    def clear_login_failures(self, realm, user_id):
        self._call("clear_login_failures", realm, user_id)
        self.failures.pop(user_id, None)

    def get_user(self, realm, user_id):
        self._call("get_user", realm, user_id)
        return dict(self.users[user_id])

    def set_user_enabled(self, realm, user_id, enabled):
        self._call("set_user_enabled", realm, user_id, enabled)
        self.users[user_id]["enabled"] = enabled

    def reset_password(self, realm, user_id, password, temporary=True):
        self._call("reset_password", realm, user_id, temporary)

    def set_brute_force(self, realm, *, permanent, failures=3):
        self._call("set_brute_force", realm, permanent, failures)

    def list_users(self, realm):
        self._call("list_users", realm)
        return [dict(u) for sub, u in self.users.items() if self.realms[sub] == realm]

    def update_user(self, realm, user_id, changes):
        self._call("update_user", realm, user_id, dict(changes))
        self.users[user_id].update(changes)

    def set_edit_username_allowed(self, realm, allowed):
        self._call("set_edit_username_allowed", realm, allowed)

    def get_events(self, realm, **kw):
        self._call("get_events", realm)
        return list(self.events)

    def get_admin_events(self, realm, **kw):
        self._call("get_admin_events", realm)
        return list(self.admin_events)


@pytest.fixture
def kc(monkeypatch):
    fake = FakeKeycloak()
    monkeypatch.setattr(keycloak, "admin_client", lambda config: fake)
    return fake


@pytest.fixture
def admin(make_user):
    return make_user("admin", name="Ada Admin")


@pytest.fixture
def admin_actor(admin):
    return Actor(organization=admin.organization, kind="user", user=admin, ip="10.0.0.1")


def csrf(data=None):
    return {"csrf_token": "t", **(data or {})}


def invoke(*args):
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


def dump() -> str:
    """Every row of every table, as one lower-case text."""
    out = []
    for table in database.get_tables():
        for row in database.execute_sql(f'SELECT * FROM "{table}"').fetchall():
            out.append(repr(row))
    return "\n".join(out).lower()


def personal_life(org, kc, *, email, name, ip="192.168.77.13"):
    """A user who was invited, signed in, found and repaired leaks, changed things and
    appears in security events and findings: every place Leakhub stores personal data."""
    sub = str(uuid.uuid4())
    system = Actor.system(org, label="leakctl")
    with database.atomic():
        user = writer.create(system, User, sub=sub, email=email, name=name, role="editor")
        writer.event(system, "user.invited", entity=user,
                     details={"email": email, "role": "editor", "delivery": "email"})
    kc.add(user)
    me = Actor(organization=org, kind="user", user=user, ip=ip, request_id="r1")
    location = (Location.select().where((Location.organization == org.id)
                                         & (Location.code == "A1")).first()
                or make_tree(Actor.system(org))["area"])
    leak = writer.create(me, Leak, tag=f"T{uuid.uuid4().hex[:6]}", location=location,
                         found_by_user=user, found_by=name, repaired_by=email, rate_lpm=5)
    LeakStatusChange.create(organization=org, leak=leak, to_status="open", actor_label=email,
                            user=user)
    writer.update(me, leak, {"description": "hissing valve"})
    WebSession.create(id=uuid.uuid4().hex, organization=org, user=user, ip=ip,
                      user_agent="Firefox", expires_at=utcnow() + dt.timedelta(hours=1))
    SecurityEvent.create(organization=org, kind="sign_in", user=user, username=email, ip=ip,
                         details=json.dumps({"username": email, "name": name}))
    SecurityEvent.create(organization=org, kind="sign_in_failed", username=email, ip=ip)
    Finding.create(organization=org, rule="failed_sign_ins", severity="medium",
                   subject=f"username:{email}", first_seen_at=utcnow(), last_seen_at=utcnow(),
                   details=json.dumps({"usernames": [email], "label": name}))
    return user, leak


# ------------------------------------------------------------------------------- erase

def test_erase_removes_personal_data_keeps_pseudonym_and_chain(config, org, kc, admin,
                                                               admin_actor):
    user, leak = personal_life(org, kc, email="bob.meier@acme.test", name="Bob Meier")
    counts = service.erase_user(config, admin_actor, user)
    assert "delete_user" in kc.names() and user.sub not in kc.users
    fresh = User.get_by_id(user.id)
    assert fresh.name == f"former user #{user.id}" and fresh.erased_at is not None
    assert not fresh.enabled and fresh.email.endswith("@erased.invalid")
    leak = Leak.get_by_id(leak.id)
    assert leak.found_by == leak.repaired_by == service.pseudonym(user.id)
    assert leak.found_by_user_id == user.id  # the leak keeps its finder, as a pseudonym
    assert counts["sessions"] == 1 and counts["security_events"] == 2
    text = dump()
    for secret in ("bob.meier@acme.test", "bob meier", user.sub, "192.168.77.13"):
        assert secret not in text, secret
    # the audit trail still has the entries, with the pseudonym, and verifies
    by_user = AuditEntry.select().where((AuditEntry.actor_kind == "user")
                                        & (AuditEntry.actor_id == user.id))
    assert by_user.count() >= 2
    assert {e.actor_label for e in by_user} == {service.pseudonym(user.id)}
    assert verify_org(org).ok, verify_org(org).problem
    (erased,) = AuditEntry.select().where(AuditEntry.action == "user.erased")
    assert erased.actor_id == admin.id and erased.entity_id == user.id
    assert service.user_by_email(admin_actor, admin.email)  # others untouched
    assert user.id not in [u.id for u in users_service.list_users(admin_actor)]


def test_erase_pulls_pending_keycloak_events_first_and_pseudonymises_them(config, org, kc,
                                                                         admin_actor):
    user, _leak = personal_life(org, kc, email="pia.pending@acme.test", name="Pia Pending")
    now_ms = int(utcnow().replace(tzinfo=dt.UTC).timestamp() * 1000)
    kc.events = [{"id": "e1", "time": now_ms, "type": "LOGIN", "userId": user.sub,
                  "ipAddress": "192.168.9.9", "clientId": "leakhub",
                  "details": {"username": "pia.pending@acme.test"}}]
    kc.admin_events = [{"id": "a1", "time": now_ms, "operationType": "UPDATE",
                        "resourceType": "USER", "resourcePath": f"users/{user.sub}",
                        "authDetails": {"userId": "someone", "ipAddress": "10.0.0.1"}}]
    service.erase_user(config, admin_actor, user)
    names = kc.names()
    assert names.index("get_events") < names.index("delete_user")
    pulled = SecurityEvent.select().where(SecurityEvent.source == "keycloak")
    assert pulled.count() == 2
    text = dump()
    for secret in ("pia.pending@acme.test", user.sub, "192.168.9.9"):
        assert secret not in text, secret
    assert verify_org(org).ok


def test_erase_refuses_self_last_admin_twice_and_keycloak_failure(config, org, kc, admin,
                                                                   admin_actor, make_user):
    with pytest.raises(service.PrivacyError, match="yourself"):
        service.erase_user(config, admin_actor, admin)
    other = make_user("editor")
    kc.add(other)
    kc.fail.add("delete_user")
    with pytest.raises(service.PrivacyError, match="nothing was changed"):
        service.erase_user(config, admin_actor, other)
    assert User.get_by_id(other.id).erased_at is None
    kc.fail.clear()
    service.erase_user(config, admin_actor, other)
    with pytest.raises(service.PrivacyError, match="already"):
        service.erase_user(config, admin_actor, User.get_by_id(other.id))


def test_erase_proceeds_when_keycloak_has_no_such_user(config, org, kc, admin_actor, make_user):
    ghost = make_user("viewer")  # never in Keycloak (or deleted by an earlier attempt)
    service.erase_user(config, admin_actor, ghost)
    assert User.get_by_id(ghost.id).erased_at is not None


ALPHABET = st.characters(codec="utf-8", exclude_categories=("Cs", "Cc"),
                         exclude_characters="\x00")


@settings(max_examples=20, deadline=None, phases=[Phase.explicit, Phase.reuse, Phase.generate],
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(local=st.text(ALPHABET, min_size=3, max_size=20),
       name=st.text(ALPHABET, min_size=3, max_size=40))
def test_property_erasure_leaves_no_personal_string_anywhere(config, org, kc, admin_actor,
                                                              local, name):
    """Whatever the name and e-mail (quotes, backslashes, umlauts, emoji), none of them is
    left anywhere in the database after erasure, and the chain verifies."""
    marker = uuid.uuid4().hex[:8]
    email = f"zq{marker}.{local}@example.test".replace(" ", "_")
    name = f"Zq{marker} {name}"
    user, _leak = personal_life(org, kc, email=email, name=name)
    service.erase_user(config, admin_actor, user)
    text = dump()
    for secret in (email.lower(), name.lower(), user.sub):
        assert secret not in text
        assert json.dumps(secret, ensure_ascii=False)[1:-1] not in text
    assert verify_org(org).ok


# ------------------------------------------------------------------------------- export

def test_export_has_the_users_data_and_is_audited(config, org, kc, admin_actor):
    user, leak = personal_life(org, kc, email="eve@acme.test", name="Eve Export")
    data = service.export_user(admin_actor, user)
    assert data["user"]["email"] == "eve@acme.test"
    assert [lk["tag"] for lk in data["leaks_found"]] == [leak.tag]
    assert data["sessions"][0]["ip"] == "192.168.77.13"
    assert any(e["action"] == "update" for e in data["audit_entries_by_user"])
    assert any(e["action"] == "user.invited" for e in data["audit_entries_about_user"])
    assert {e["kind"] for e in data["security_events"]} == {"sign_in"}
    json.dumps(data)  # JSON-ready
    (ev,) = AuditEntry.select().where(AuditEntry.action == "user.exported")
    assert ev.entity_id == user.id and json.loads(ev.changes) == {"own": False}


def test_web_export_erase_unlock_are_admin_only_and_never_cross_organizations(
        app, config, org, other_org, kc, admin, login, make_user):
    stranger = make_user("editor", organization=other_org)
    kc.add(stranger)
    client = login(admin, app.test_client())
    for method, path in (("get", f"/users/{stranger.id}/export.json"),
                         ("post", f"/users/{stranger.id}/unlock"),
                         ("post", f"/users/{stranger.id}/erase")):
        resp = getattr(client, method)(path, data=csrf({"confirm_email": stranger.email}))
        assert resp.status_code == 404, path
    assert User.get_by_id(stranger.id).erased_at is None
    assert "delete_user" not in kc.names() and "clear_login_failures" not in kc.names()
    # an editor may not export, unlock or erase a colleague
    editor, colleague = make_user("editor"), make_user("viewer")
    kc.add(colleague)
    ed = login(editor, app.test_client())
    assert ed.get(f"/users/{colleague.id}/export.json").status_code == 403
    assert ed.post(f"/users/{colleague.id}/erase",
                   data=csrf({"confirm_email": colleague.email})).status_code == 403
    # but everyone may download their own data
    own = ed.get("/account/export.json")
    assert own.status_code == 200 and own.json["user"]["email"] == editor.email
    assert "no-store" in own.headers["Cache-Control"]


def test_web_erase_needs_the_typed_email_then_erases(app, org, kc, admin, login, make_user):
    victim = make_user("viewer", name="Vic Tim")
    kc.add(victim)
    client = login(admin, app.test_client())
    client.post(f"/users/{victim.id}/erase", data=csrf({"confirm_email": "wrong@x.test"}))
    assert User.get_by_id(victim.id).erased_at is None
    resp = client.post(f"/users/{victim.id}/erase", data=csrf({"confirm_email": victim.email}))
    assert resp.status_code == 302
    assert User.get_by_id(victim.id).erased_at is not None
    page = client.get(f"/users/{victim.id}")
    assert b"Vic Tim" not in page.data


def test_cli_export_and_erase(app, config, org, kc, make_user, tmp_path):
    user = make_user("viewer", name="Carl Cli")
    kc.add(user)
    out = tmp_path / "export.json"
    result = invoke("user", "export", "--org", "acme", "--email", user.email, "-o", str(out))
    assert result.exit_code == 0, result.output
    assert json.loads(out.read_text())["user"]["name"] == "Carl Cli"
    assert out.stat().st_mode & 0o777 == 0o600
    result = CliRunner().invoke(cli, ["user", "erase", "--org", "acme", "--email", user.email],
                                input="n\n")
    assert result.exit_code == 1 and "not confirmed" in result.output
    result = invoke("user", "erase", "--org", "acme", "--email", user.email, "--yes", "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["pseudonym"] == f"former user #{user.id}"
    result = CliRunner().invoke(cli, ["user", "erase", "--org", "other-org", "--email", "x@y.z",
                                      "--yes"])
    assert result.exit_code != 0


# ------------------------------------------------------------------------------- lock-out

def test_unlock_clears_failures_and_reenables_after_permanent_lockout(config, org, kc,
                                                                      admin_actor, make_user):
    user = make_user("editor")
    kc.add(user, enabled=False)  # Keycloak disabled it: permanent lock-out
    kc.failures[user.sub] = 3
    assert service.lock_state(config, admin_actor, user) == {"failures": 3, "locked": True}
    assert service.unlock(config, admin_actor, user) is None
    assert kc.users[user.sub]["enabled"] is True and user.sub not in kc.failures
    (ev,) = AuditEntry.select().where(AuditEntry.action == "user.unlocked")
    assert json.loads(ev.changes)["reenabled"] is True and ev.entity_id == user.id


def test_unlock_never_enables_a_user_disabled_in_leakhub(config, org, kc, admin_actor,
                                                         make_user):
    user = make_user("editor")
    User.update(enabled=False).where(User.id == user.id).execute()
    kc.add(user, enabled=False)
    service.unlock(config, admin_actor, User.get_by_id(user.id))
    assert kc.users[user.sub]["enabled"] is False


def test_cli_unlock_with_password_reset(app, config, org, kc, make_user):
    user = make_user("editor")
    kc.add(user)
    result = invoke("user", "unlock", "--org", "acme", "--email", user.email, "--reset-password")
    assert result.exit_code == 0, result.output
    assert "one-time password" in result.output
    assert ("reset_password", ("acme", user.sub, True)) in kc.calls
    # the password is in no audit entry
    password = result.output.rsplit(":", 1)[1].strip()
    assert password not in dump()


def test_lockout_mode_and_profiling_rules(app, config, org, kc, admin, login, admin_actor):
    assert org.permanent_lockout is False and org.profiling_rules is False
    client = login(admin, app.test_client())
    assert b"privacy-settings" in client.get("/organization/settings").data
    resp = client.post("/organization/privacy", data=csrf({"lockout": "permanent",
                                                           "profiling_rules": "on"}))
    assert resp.status_code == 302
    org = Organization.get_by_id(org.id)
    assert org.permanent_lockout and org.profiling_rules
    assert ("set_brute_force", ("acme", True, 3)) in kc.calls
    (ev,) = AuditEntry.select().where(AuditEntry.action == "settings.changed")
    assert json.loads(ev.changes)["permanent_lockout"] == [False, True]
    # bad input: a clear message, nothing changed
    client.post("/organization/privacy", data=csrf({"lockout": "forever"}))
    assert Organization.get_by_id(org.id).permanent_lockout is True
    # Keycloak down: nothing changed in Leakhub either
    kc.fail.add("set_brute_force")
    result = CliRunner().invoke(cli, ["privacy", "settings", "--org", "acme", "--lockout",
                                      "temporary"])
    assert result.exit_code != 0 and "nothing was changed" in str(result.exception)
    assert Organization.get_by_id(org.id).permanent_lockout is True
    kc.fail.clear()
    result = invoke("privacy", "settings", "--org", "acme", "--lockout", "temporary",
                    "--profiling-rules", "off", "--json")
    assert json.loads(result.output) == {"organization": "acme", "lockout": "temporary",
                                         "profiling_rules": "off"}


# ------------------------------------------------------------------------------- mask

def test_mask_replaces_names_emails_ips_in_leakhub_and_keycloak(app, config, org, other_org,
                                                                 kc, admin):
    kc.add(admin)
    user, leak = personal_life(org, kc, email="mia.mask@acme.test", name="Mia Mask",
                               ip="172.20.1.9")
    result = invoke("privacy", "mask", "--all", "--yes", "--json")
    assert result.exit_code == 0, result.output
    counts = json.loads(result.output)
    assert counts["acme"]["users"] >= 2 and counts["acme"]["keycloak_users"] == 2
    text = dump()
    for secret in ("mia.mask@acme.test", "mia mask", "172.20.1.9", admin.email, "ada admin"):
        assert secret not in text, secret
    assert User.get_by_id(user.id).email == f"user{user.id}@example.invalid"
    assert kc.users[user.sub]["username"] == f"user{user.id}@example.invalid"
    assert kc.names().count("set_edit_username_allowed") == 2  # on, then off again
    assert Leak.get_by_id(leak.id).found_by == f"User {user.id}"  # the same fake everywhere
    assert verify_org(org).ok
    assert AuditEntry.select().where(AuditEntry.action == "privacy.masked").count() == 2


def test_mask_needs_exactly_one_of_org_or_all(app, kc):
    result = CliRunner().invoke(cli, ["privacy", "mask", "--yes"])
    assert result.exit_code == 2 and "--org" in result.output


# ------------------------------------------------------------------------------- retention

def test_retention_truncates_audit_ips_and_the_chain_still_verifies(config, org, admin_actor):
    old = utcnow() - dt.timedelta(days=40)
    frozen = writer.utcnow
    try:
        writer.utcnow = lambda: old  # written 40 days ago (the hash covers `at`)
        writer.event(admin_actor, "leak.exported")
    finally:
        writer.utcnow = frozen
    writer.event(admin_actor, "leak.exported")  # new: keeps its full IP
    retention.apply_retention(config=config, env={})
    entries = list(AuditEntry.select().where(AuditEntry.action == "leak.exported")
                   .order_by(AuditEntry.seq))
    assert (entries[0].ip, entries[0].ip_truncated) == ("10.0.0.0", True)
    assert (entries[1].ip, entries[1].ip_truncated) == ("10.0.0.1", False)
    assert verify_org(org).ok


# ------------------------------------------------------------------------------- migration

def _v1_chain(org, n=3, label="old@acme.test"):
    prev = writer.GENESIS
    for seq in range(1, n + 1):
        row = {"organization": org.id, "seq": seq, "at": dt.datetime(2025, 1, seq, 8, 0, 0, 5),
               "actor_kind": "user", "actor_id": 1, "actor_label": label, "ip": "10.1.1.1",
               "request_id": None, "action": "update", "entity_type": "leak", "entity_id": 7,
               "changes": json.dumps({"found_by": [None, "Old Finder"]}), "prev_hash": prev,
               "hash_version": 1}
        row["hash"] = prev = writer.entry_digest(writer.hashed_fields(row))
        AuditEntry.create(**row)
    AuditChainHead.create(organization=org, seq=n, hash=prev)


def test_migration_rehashes_intact_chains_and_leaves_broken_ones_broken(app, org, other_org):
    _v1_chain(org)
    _v1_chain(other_org)
    assert verify_org(org).ok and verify_org(other_org).ok  # version 1 still verifies
    AuditEntry.update(changes='{"found_by": [null, "Tampered"]}').where(
        (AuditEntry.organization == other_org.id) & (AuditEntry.seq == 2)).execute()
    assert not verify_org(other_org).ok
    m0013_privacy._rehash(database)
    assert {e.hash_version for e in AuditEntry.select().where(
        AuditEntry.organization == org.id)} == {2}
    assert verify_org(org).ok
    assert not verify_org(other_org).ok  # the tampering is not laundered
    # after re-hashing, personal details may be erased without breaking the chain
    AuditEntry.update(actor_label="former user #1", ip=None,
                      changes='{"found_by": [null, "former user #1"]}').where(
        AuditEntry.organization == org.id).execute()
    assert verify_org(org).ok
    # but any other change is still detected
    AuditEntry.update(entity_id=8).where((AuditEntry.organization == org.id)
                                         & (AuditEntry.seq == 2)).execute()
    assert not verify_org(org).ok


def test_user_page_shows_the_lock_state_and_unlocks(app, org, kc, admin, login, make_user):
    user = make_user("editor")
    kc.add(user, enabled=False)
    kc.failures[user.sub] = 3
    client = login(admin, app.test_client())
    page = client.get(f"/users/{user.id}").get_data(as_text=True)
    assert "Locked after 3 failed sign-ins." in page and 'data-testid="unlock"' in page
    assert client.post(f"/users/{user.id}/unlock", data=csrf()).status_code == 302
    assert kc.users[user.sub]["enabled"] is True
    page = client.get(f"/users/{user.id}").get_data(as_text=True)
    assert 'data-testid="lock-state"' not in page
