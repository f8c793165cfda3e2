"""Departments (issue 15 part 2): group grants through the one scoping mechanism, membership
read per request, directory sync at sign-in, and delegated administration on a subtree
enforced by authz (including hypothesis properties over random trees and grants)."""
from __future__ import annotations

import datetime as dt
import itertools
import json
from decimal import Decimal
from pathlib import Path

import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from werkzeug.exceptions import Forbidden, NotFound

from leakhub import authz
from leakhub.audit.models import AuditEntry
from leakhub.authz import access, grants
from leakhub.authz.models import Grant, UserGroup, UserGroupMember
from leakhub.cli import cli
from leakhub.core.db import database
from leakhub.core.validation import ValidationError
from leakhub.departments import service as departments
from leakhub.identity.models import User
from leakhub.leaks.models import Leak
from leakhub.locations.models import Location
from leakhub.orgs.models import Organization
from leakhub.users import service as users

_n = itertools.count()
BASE = "https://localhost"


@pytest.fixture
def w(app):
    org = Organization.create(slug="acme", name="ACME", oidc_client_secret="x", security_mode=3)
    other = Organization.create(slug="other", name="Other", oidc_client_secret="y")
    a = Location.create(organization=org, kind="site", code="A", name="Plant A")
    a1 = Location.create(organization=org, kind="building", code="A1", name="Hall", parent=a)
    b = Location.create(organization=org, kind="site", code="B", name="Plant B")
    x = Location.create(organization=other, kind="site", code="X", name="Foreign")

    def leak(tag, loc, o=org):
        return Leak.create(organization=o, tag=tag, location=loc, rate_lpm=Decimal("10"))

    leaks = {"a1": leak("1", a1), "b": leak("2", b), "x": leak("9", x, other)}

    def user(role, email, o=org):
        return User.create(organization=o, sub=email, email=email, role=role)

    admin = user("admin", "admin@acme.test")
    return dict(org=org, other=other, a=a, a1=a1, b=b, x=x, leaks=leaks, user=user,
                admin=authz.Actor(organization=org, kind="user", user=admin),
                admin_user=admin)


def act(u):
    return authz.Actor(organization=u.organization, kind="user", user=u)


def tags(a, action="view"):
    return {lk.tag for lk in authz.scope(a, Leak, action)}


def test_group_grant_applies_and_leaving_revokes_at_next_request(w):
    ext = w["user"]("external", "ext@acme.test")
    group = departments.create_group(w["admin"], name="Maintenance")
    grants.add_grant(w["admin"], group=group, location_id=w["a"].id, level="edit")
    assert tags(act(ext)) == set()
    departments.add_member(w["admin"], group, ext)
    assert tags(act(ext)) == {"1"} and tags(act(ext), "edit") == {"1"}
    departments.remove_member(w["admin"], group, ext)
    assert tags(act(ext)) == set()  # the same Actor object would see the same: read per call


def test_effective_access_names_the_group(w, app):
    ext = w["user"]("external", "ext@acme.test")
    group = departments.create_group(w["admin"], name="Maintenance")
    grants.add_grant(w["admin"], group=group, location_id=w["a"].id, level="view")
    departments.add_member(w["admin"], group, ext)
    with app.test_request_context():
        result = access.effective_access(w["admin"], ext, w["leaks"]["a1"])
    view = result.decisions[0]
    assert view.allowed and view.grant.group_id == group.id
    assert "Maintenance" in view.reason
    assert result.grants[0].holder == "group Maintenance"


def test_group_names_are_unique_and_validated(w):
    departments.create_group(w["admin"], name="Maintenance")
    with pytest.raises(ValidationError) as e:
        departments.create_group(w["admin"], name="maintenance")
    assert "name" in e.value.errors
    with pytest.raises(ValidationError) as e:
        departments.create_group(w["admin"], name="Ops", kc_group="Ops")
    assert "kc_group" in e.value.errors
    with pytest.raises(ValidationError) as e:
        departments.create_group(w["admin"], name="")
    assert "name" in e.value.errors


def test_group_changes_are_audited_and_delete_takes_grants(w):
    ext = w["user"]("external", "ext@acme.test")
    group = departments.create_group(w["admin"], name="Maintenance", kc_group="/Maint")
    departments.update_group(w["admin"], group, name="Instandhaltung")
    grants.add_grant(w["admin"], group=group, location_id=w["a"].id, level="view")
    departments.add_member(w["admin"], group, ext)
    departments.delete_group(w["admin"], group)
    assert not Grant.select().where(Grant.group == group.id).exists()
    assert tags(act(ext)) == set()
    actions = [e.action for e in AuditEntry.select().order_by(AuditEntry.seq)]
    for needed in ("group.member_added", "grant.given"):
        assert needed in actions
    types = {e.entity_type for e in AuditEntry.select()}
    assert {"group", "group_member", "grant"} <= types


def test_groups_are_tenant_scoped(w):
    group = departments.create_group(w["admin"], name="Maintenance")
    foreign_admin = act(w["user"]("admin", "root@other.test", w["other"]))
    with pytest.raises(NotFound):
        departments.get_group(foreign_admin, group.id)
    assert departments.list_groups(foreign_admin) == []
    with pytest.raises(NotFound):
        departments.add_member(w["admin"], group, foreign_admin.user)


def test_directory_sync_adds_and_removes_only_directory_memberships(w):
    ext = w["user"]("external", "ext@acme.test")
    mapped = departments.create_group(w["admin"], name="Maintenance", kc_group="/Maintenance")
    manual = departments.create_group(w["admin"], name="Energy", kc_group="/Energy")
    grants.add_grant(w["admin"], group=mapped, location_id=w["b"].id, level="view")
    departments.add_member(w["admin"], manual, ext)
    assert departments.sync_directory_groups(ext, ["/Maintenance", "/Unknown"]) == (
        ["Maintenance"], [])
    assert tags(act(ext)) == {"2"}
    assert departments.sync_directory_groups(ext, ["Maintenance"]) == ([], [])  # bare name
    assert departments.sync_directory_groups(ext, []) == ([], ["Maintenance"])
    assert tags(act(ext)) == set()
    # the membership given by hand stays although the claim lacks /Energy
    assert UserGroupMember.select().where(UserGroupMember.group == manual).count() == 1
    assert departments.sync_directory_groups(ext, None) == ([], [])  # no claim: unchanged


# ------------------------------------------------------------------ delegated administration

@pytest.fixture
def dept(w):
    """A department administrator (editor) on plant A, a user in A, a user in B."""
    boss = w["user"]("editor", "boss@acme.test")
    grants.add_grant(w["admin"], boss, location_id=w["a"].id, level="admin")
    in_a = w["user"]("viewer", "in-a@acme.test")
    grants.add_grant(w["admin"], in_a, location_id=w["a1"].id, level="view")
    in_b = w["user"]("editor", "in-b@acme.test")
    gb = grants.add_grant(w["admin"], in_b, location_id=w["b"].id, level="edit")
    return dict(boss=act(boss), in_a=in_a, in_b=in_b, grant_b=gb)


def test_department_admin_sees_and_manages_only_his_subtree(w, dept):
    boss = dept["boss"]
    assert authz.delegated_admin(boss) and not authz.org_wide_admin(boss)
    assert tags(boss) == {"1"} and tags(boss, "edit") == {"1"}
    listed = {u.email for u in users.list_users(boss)}
    assert listed == {"in-a@acme.test"}   # not in-b, not the admin, not himself
    with pytest.raises(NotFound):
        users.get_user(boss, dept["in_b"].id)
    assert {g.user.email for g in grants.list_grants(boss)} == {"in-a@acme.test"}
    with pytest.raises(NotFound):
        grants.get_grant(boss, dept["grant_b"].id)
    with pytest.raises((NotFound, Forbidden)):
        grants.revoke_grant(boss, dept["grant_b"])
    g = grants.add_grant(boss, dept["in_a"], location_id=w["a1"].id, level="edit")
    grants.revoke_grant(boss, g)


def test_department_admin_cannot_grant_outside_or_escalate(w, dept, config):
    boss = dept["boss"]
    with pytest.raises(ValidationError) as e:
        grants.add_grant(boss, dept["in_a"], location_id=w["b"].id, level="view")
    assert "location" in e.value.errors
    with pytest.raises(NotFound):   # a user of another subtree is not his to grant
        grants.add_grant(boss, dept["in_b"], location_id=w["a"].id, level="view")
    with pytest.raises(NotFound):   # nor himself
        grants.add_grant(boss, boss.user, location_id=w["a1"].id, level="admin")
    group = departments.create_group(w["admin"], name="G")
    with pytest.raises((NotFound, Forbidden)):  # groups are the organization admins'
        grants.add_grant(boss, group=group, location_id=w["a"].id, level="view")
    with pytest.raises(Forbidden):
        departments.create_group(boss, name="Mine")
    with pytest.raises((NotFound, Forbidden)):  # roles, settings: "manage" stays with admins
        users.set_role(config, boss, dept["in_a"], "admin")
    with pytest.raises(Forbidden):
        authz.require(boss, "manage")
    with pytest.raises(ValidationError) as e:   # no escalation through an invitation
        users.invite(config, boss, email="new@acme.test", role="admin",
                     location_id=w["a"].id)
    assert "role" in e.value.errors
    with pytest.raises(ValidationError) as e:   # and only into his subtree
        users.invite(config, boss, email="new@acme.test", role="viewer")
    assert "location" in e.value.errors
    with pytest.raises(ValidationError) as e:
        users.invite(config, boss, email="new@acme.test", role="viewer",
                     location_id=w["b"].id)
    assert "location" in e.value.errors


def test_admin_grant_needs_a_delegable_role_and_ends_with_the_grant(w, dept):
    viewer = w["user"]("viewer", "v@acme.test")
    grants.add_grant(w["admin"], viewer, location_id=w["a"].id, level="admin")
    assert not authz.delegated_admin(act(viewer))      # the role caps what a grant gives
    admin_grant = Grant.get((Grant.user == dept["boss"].user) & (Grant.level == "admin"))
    grants.revoke_grant(w["admin"], admin_grant)
    with pytest.raises(Forbidden):
        users.list_users(dept["boss"])


def test_admin_level_only_on_locations(w, dept):
    survey = w["org"]  # any id: the level check names the field first
    with pytest.raises(ValidationError) as e:
        grants.add_grant(w["admin"], dept["in_a"], survey_id=survey.id, level="admin")
    assert "level" in e.value.errors


# ------------------------------------------------------------------ properties

def _build_tree(org, shape):
    """shape: parent index (or None) per node, earlier nodes only."""
    nodes = []
    for i, parent in enumerate(shape):
        p = nodes[parent] if parent is not None and parent < len(nodes) else None
        nodes.append(Location.create(organization=org, kind="site" if p is None else "area",
                                     code=f"L{next(_n)}", name=f"n{i}", parent=p))
    return nodes


def _inside(loc, top) -> bool:
    return loc.path.startswith(top.path)


tree_shapes = st.lists(st.one_of(st.none(), st.integers(0, 6)), min_size=1, max_size=7)
grant_specs = st.lists(st.tuples(st.booleans(), st.integers(0, 6),
                                 st.sampled_from(["view", "edit", "admin"]), st.booleans()),
                       max_size=6)


@settings(max_examples=100, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(shape=tree_shapes, specs=grant_specs, member=st.booleans(),
       mode=st.sampled_from([2, 3]), action=st.sampled_from(["view", "edit"]),
       role=st.sampled_from(["editor", "viewer", "external"]))
def test_no_grant_path_exposes_a_leak_outside_the_granted_subtrees(w, shape, specs, member,
                                                                     mode, action, role):
    with database.atomic() as txn:
        org = Organization.create(slug=f"p{next(_n)}", name="P", oidc_client_secret="z",
                                  security_mode=mode)
        nodes = _build_tree(org, shape)
        leaks = [Leak.create(organization=org, tag=str(i), location=n, rate_lpm=Decimal("1"))
                 for i, n in enumerate(nodes)]
        u = User.create(organization=org, sub=f"s{next(_n)}", email="e@p.test", role=role)
        stranger = User.create(organization=org, sub=f"s{next(_n)}", email="s@p.test",
                               role="editor")
        group = UserGroup.create(organization=org, name="G")
        if member:
            UserGroupMember.create(organization=org, group=group, user=u)
        reaching = []
        for to_group, idx, level, expired in specs:
            loc = nodes[idx % len(nodes)]
            Grant.create(organization=org, user=None if to_group else u,
                         group=group if to_group else None, location=loc, level=level,
                         expires_at=dt.datetime(2000, 1, 1) if expired else None)
            if not expired and (not to_group or member) and (
                    action == "view" or level in ("edit", "admin")):
                reaching.append(loc)
        # a grant to someone else never counts
        Grant.create(organization=org, user=stranger, location=nodes[0], level="edit")
        a = authz.Actor(organization=org, kind="user", user=u)
        seen = {lk.tag for lk in authz.scope(a, Leak, action)}
        if role == "viewer" and action == "edit":
            expected = set()  # the role caps every grant, own or a group's
        elif mode == 2 and action == "view" and role != "external":
            expected = {lk.tag for lk in leaks}
        else:
            expected = {lk.tag for lk in leaks
                        if any(_inside(Location.get_by_id(lk.location_id), top)
                               for top in reaching)}
        assert seen == expected
        for lk in leaks:
            assert authz.can(a, action, lk) == (lk.tag in expected)
        txn.rollback()


@settings(max_examples=100, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(shape=tree_shapes, admin_at=st.lists(st.integers(0, 6), min_size=1, max_size=2),
       target=st.integers(0, 6), via_group=st.booleans(),
       level=st.sampled_from(["view", "edit", "admin"]))
def test_a_department_admin_never_creates_a_grant_outside_his_subtree(
        w, shape, admin_at, target, via_group, level):
    with database.atomic() as txn:
        org = Organization.create(slug=f"q{next(_n)}", name="Q", oidc_client_secret="z",
                                  security_mode=3)
        nodes = _build_tree(org, shape)
        boss = User.create(organization=org, sub=f"s{next(_n)}", email="b@q.test",
                           role="editor")
        subject = User.create(organization=org, sub=f"s{next(_n)}", email="u@q.test",
                              role="viewer")
        group = UserGroup.create(organization=org, name="Heads")
        if via_group:
            UserGroupMember.create(organization=org, group=group, user=boss)
        tops = [nodes[i % len(nodes)] for i in admin_at]
        for top in tops:
            Grant.create(organization=org, user=None if via_group else boss,
                         group=group if via_group else None, location=top, level="admin")
        a = authz.Actor(organization=org, kind="user", user=boss)
        loc = nodes[target % len(nodes)]
        allowed = any(_inside(loc, top) for top in tops)
        try:
            g = grants.add_grant(a, subject, location_id=loc.id, level=level)
        except ValidationError as exc:
            assert not allowed and "location" in exc.errors
        else:
            assert allowed and g.location_id == loc.id
        # whatever he managed to give, every grant he can see lies inside his subtrees
        for g in authz.scope(a, Grant, "manage_users"):
            assert any(_inside(Location.get_by_id(g.location_id), t) for t in tops)
        txn.rollback()


# ------------------------------------------------------------------ leakctl group

def test_leakctl_group_commands(w):
    def run(*args, ok=True):
        result = CliRunner().invoke(cli, ["group", *args, "--org", "acme"],
                                    catch_exceptions=False)
        assert (result.exit_code == 0) == ok, result.output
        return result.output

    ext = w["user"]("external", "ext@acme.test")
    run("create", "--name", "Maintenance", "--kc-group", "/Maintenance")
    assert "Maintenance" in run("list")
    run("add-member", "--name", "Maintenance", "--email", ext.email)
    run("grant", "--name", "Maintenance", "--location", "A", "--level", "edit")
    assert tags(act(ext), "edit") == {"1"}
    assert "ext@acme.test" in run("members", "--name", "Maintenance")
    assert "location A" in run("grants", "--name", "Maintenance")
    out = run("grant", "--name", "Maintenance", "--location", "NOPE", "--level", "view", ok=False)
    assert "--location" in out
    run("revoke", "--name", "Maintenance", "--location", "A")
    assert tags(act(ext)) == set()
    run("rename", "--name", "Maintenance", "--to", "Instandhaltung")
    run("remove-member", "--name", "Instandhaltung", "--email", ext.email)
    run("delete", "--name", "Instandhaltung", "--yes")
    assert "no groups" in run("list")


# ------------------------------------------------------------------ pages

def test_group_pages_and_a_department_admin_on_the_users_pages(w, dept, login, app):
    admin = login(w["admin_user"], app.test_client())
    resp = admin.post("/groups", data={"csrf_token": "t", "name": ""}, base_url=BASE)
    assert resp.status_code == 422 and b'aria-invalid="true"' in resp.data
    resp = admin.post("/groups", data={"csrf_token": "t", "name": "Maintenance",
                                       "kc_group": "/Maintenance"}, base_url=BASE)
    assert resp.status_code == 302
    group = UserGroup.get(UserGroup.name == "Maintenance")
    url = f"/groups/{group.id}"
    assert admin.post(f"{url}/members", data={"csrf_token": "t", "user": dept["in_b"].id},
                      base_url=BASE).status_code == 302
    resp = admin.post(f"{url}/grants", data={"csrf_token": "t", "target": "location",
                                             "location": w["b"].id, "level": "view"},
                      base_url=BASE)
    assert resp.status_code == 302
    page = admin.get(url, base_url=BASE).data.decode()
    assert "in-b@acme.test" in page and "Plant B" in page
    # the user page lists the membership
    assert "Maintenance" in admin.get(f"/users/{dept['in_b'].id}", base_url=BASE).data.decode()

    boss = login(dept["boss"].user, app.test_client())
    assert boss.get("/groups", base_url=BASE).status_code == 403
    listing = boss.get("/users", base_url=BASE)
    assert listing.status_code == 200
    assert "in-a@acme.test" in listing.data.decode()
    assert "in-b@acme.test" not in listing.data.decode()
    assert boss.get(f"/users/{dept['in_b'].id}", base_url=BASE).status_code == 404
    resp = boss.get(f"/users/{dept['in_a'].id}", base_url=BASE)
    assert resp.status_code == 200
    detail = resp.data.decode()
    assert 'data-testid="save-role"' not in detail       # roles stay with the admins
    assert "Plant B" not in detail                       # only his subtree is offered
    resp = boss.post(f"/users/{dept['in_a'].id}/grants",
                     data={"csrf_token": "t", "target": "location", "location": w["b"].id,
                           "level": "edit"}, base_url=BASE)
    assert resp.status_code == 422
    assert boss.post(f"/users/{dept['in_a'].id}/role", data={"csrf_token": "t", "role": "admin"},
                     base_url=BASE).status_code in (403, 404)
    assert boss.get("/organization/settings", base_url=BASE).status_code == 403


def test_the_realm_template_sends_the_groups_claim():
    """New realms, and existing ones through setup's update_app_client, get the mapper that
    puts the user's Keycloak groups (full paths) into the ID token and userinfo."""
    template = json.loads((Path(__file__).resolve().parents[3] / "compose"
                           / "realm-template.json").read_text())
    client = next(c for c in template["clients"] if c["clientId"] == "leakhub")
    mapper = next(m for m in client["protocolMappers"]
                  if m["protocolMapper"] == "oidc-group-membership-mapper")
    assert mapper["config"]["claim.name"] == "groups"
    assert mapper["config"]["full.path"] == "true"
    assert mapper["config"]["id.token.claim"] == "true"
