"""Writes are authorized where they land (issue 12): a property-based test over random
location trees, grants (view/edit, location subtree or survey, expired), roles and security
modes. Every write through the services (record a leak, edit a leak incl. moving it to another
location or survey, change a survey's scope, create a location below a parent) succeeds exactly
when the rules allow it at the row it changes, where the row leaves and where it lands — the
rules written out here independently of authz (ORACLE), and checked against authz.can too.
Afterwards no leak sits in a location where its writer lacks edit unless it was there before,
and a refused write changed nothing."""
from __future__ import annotations

import datetime as dt
import itertools
from decimal import Decimal as D

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from werkzeug.exceptions import Forbidden, NotFound

from leakhub import authz
from leakhub.audit.writer import ConflictError
from leakhub.authz.models import Grant
from leakhub.core.validation import ValidationError
from leakhub.identity.models import User
from leakhub.leaks import service as leaks
from leakhub.leaks.models import Leak
from leakhub.locations import service as locations
from leakhub.locations.models import Location
from leakhub.orgs.models import Organization
from leakhub.surveys import service as surveys
from leakhub.surveys.models import Survey, SurveyScope

ROLES = ("admin", "manager", "editor", "viewer", "external")
REFUSED = (ValidationError, Forbidden, NotFound)

# ---------------------------------------------------------------- the rules, written out

CAPS = {"admin": {"view", "create", "edit"}, "manager": {"view", "create", "edit"},
        "editor": {"view", "create", "edit"}, "viewer": {"view"},
        "external": {"view", "create", "edit"}}


class Oracle:
    """DESIGN §3 and the security modes, from the generated world, without authz: mode 1
    everybody reads and writes all, mode 2 reads all and writes where granted, mode 3 only
    where granted; admins and managers everything, externals only through grants; a role
    caps what grants give; a location grant covers its subtree; an expired grant nothing."""

    def __init__(self, role, mode, grants, parent_of, scopes=()):
        self.role, self.mode, self.grants, self.parent_of = role, mode, grants, parent_of
        self.scopes = scopes

    def _ancestors(self, node):
        out = []
        while node is not None:
            out.append(node)
            node = self.parent_of[node]
        return out

    def _covers(self, action, survey):
        """Issue 18: a location grant inside or above one of a survey's scope locations
        reaches the survey to see it and to record leaks in it (not to edit the survey)."""
        if action not in ("view", "create") or survey >= len(self.scopes):
            return False
        for node in self.scopes[survey]:
            if self._granted(action, "loc", node):
                return True  # the scope location lies in a granted subtree
            for g_kind, g_key, level, expired in self.grants:
                levels = ("view", "edit") if action == "view" else ("edit",)
                if (g_kind == "loc" and not expired and level in levels
                        and node in self._ancestors(g_key)):
                    return True  # the scope location is above a granted location
        return False

    def unrestricted(self, action):
        if self.role in ("admin", "manager"):
            return True
        if self.role == "external":
            return False
        return self.mode == 1 or (self.mode == 2 and action == "view")

    def _granted(self, action, kind, key):
        levels = ("view", "edit") if action == "view" else ("edit",)
        for g_kind, g_key, level, expired in self.grants:
            if expired or level not in levels or g_kind != kind:
                continue
            if kind == "survey" and g_key == key:
                return True
            if kind == "loc":
                node = key
                while node is not None:
                    if node == g_key:
                        return True
                    node = self.parent_of[node]
        return False

    def may(self, action, kind, key):
        """kind: "loc" (key: node index), "survey" (key: survey index), "leak" (key:
        (node, survey or None))."""
        if action not in CAPS[self.role]:
            return False
        if self.unrestricted(action):
            return True
        if kind == "leak":
            node, survey = key
            return self._granted(action, "loc", node) or (
                survey is not None and self._granted(action, "survey", survey))
        if kind == "survey" and self._covers(action, key):
            return True
        return self._granted(action, kind, key)


# ---------------------------------------------------------------- random worlds

@st.composite
def worlds(draw):
    n = draw(st.integers(2, 6))
    parents = [None]
    for i in range(1, n):
        parents.append(draw(st.one_of(st.none(), st.integers(0, i - 1))))
    n_surveys = 2
    target = st.one_of(st.tuples(st.just("loc"), st.integers(0, n - 1)),
                       st.tuples(st.just("survey"), st.integers(0, n_surveys - 1)))
    # Grant-limited callers are where moves can go wrong: they get more of the examples.
    grants = draw(st.lists(st.tuples(target, st.sampled_from(("view", "edit", "edit")),
                                     st.sampled_from((False, False, True))),
                           min_size=1, max_size=5))
    grants = [(kind, key, level, expired) for (kind, key), level, expired in grants]
    scopes = [draw(st.frozensets(st.integers(0, n - 1), max_size=3)) for _ in range(n_surveys)]
    survey_or_none = st.one_of(st.none(), st.integers(0, n_surveys - 1))
    leak_specs = draw(st.lists(st.tuples(st.integers(0, n - 1), survey_or_none),
                               min_size=1, max_size=3))
    op = draw(st.sampled_from(("create_leak", "update_leak", "scope", "create_location")))
    if op == "create_leak":
        args = (draw(st.integers(0, n - 1)), draw(survey_or_none))
    elif op == "update_leak":
        args = (draw(st.integers(0, len(leak_specs) - 1)),
                draw(st.one_of(st.integers(0, n - 1), st.none())),   # None: location not sent
                draw(st.one_of(st.just("keep"), survey_or_none)))    # "keep": survey not sent
    elif op == "scope":
        args = (draw(st.integers(0, n_surveys - 1)),
                draw(st.frozensets(st.integers(0, n - 1), max_size=4)))
    else:
        args = (draw(st.integers(0, n - 1)),)
    return {"parents": parents, "grants": grants, "scopes": scopes, "leaks": leak_specs,
            "role": draw(st.sampled_from(ROLES + ("external", "editor", "editor"))),
            "mode": draw(st.sampled_from((1, 2, 2, 3, 3))),
            "op": op, "args": args}


_orgs = itertools.count(1)
PAST = dt.datetime(2000, 1, 1)
FUTURE = dt.datetime(2999, 1, 1)


def build(w):
    """The generated world as rows of a fresh organization (written directly, as fixtures)."""
    n = next(_orgs)
    org = Organization.create(slug=f"prop{n}", name=f"Prop {n}", oidc_client_secret="x",
                              security_mode=w["mode"])
    nodes = []
    for i, parent in enumerate(w["parents"]):
        p = nodes[parent] if parent is not None else None
        kind = "site" if p is None else ("building" if p.kind == "site" else "area")
        nodes.append(Location.create(organization=org, kind=kind, code=f"L{i}", name=f"Loc {i}",
                                     parent=p))
    svs = [Survey.create(organization=org, name=f"Survey {j}", period_start=dt.date(2024, 1, 1))
           for j in range(len(w["scopes"]))]
    for j, scope in enumerate(w["scopes"]):
        for i in scope:
            SurveyScope.create(organization=org, survey=svs[j], location=nodes[i])
    lks = [Leak.create(organization=org, tag=str(k + 1), tag_number=k + 1, location=nodes[i],
                       survey=svs[s] if s is not None else None, rate_lpm=D("10"))
           for k, (i, s) in enumerate(w["leaks"])]
    user = User.create(organization=org, sub=f"prop-{n}", email=f"p{n}@prop.test",
                       role=w["role"])
    for kind, key, level, expired in w["grants"]:
        Grant.create(organization=org, user=user, level=level,
                     location=nodes[key] if kind == "loc" else None,
                     survey=svs[key] if kind == "survey" else None,
                     expires_at=PAST if expired else FUTURE)
    actor = authz.Actor(organization=org, kind="user", user=user)
    return org, nodes, svs, lks, actor


def state(org):
    """What a refused write must leave untouched."""
    return (sorted(Leak.select(Leak.id, Leak.location, Leak.survey, Leak.version)
                   .where(Leak.organization == org).tuples()),
            sorted(SurveyScope.select(SurveyScope.survey, SurveyScope.location)
                   .where(SurveyScope.organization == org).tuples()),
            Location.select().where(Location.organization == org).count())


def run(w, nodes, svs, lks, actor):
    """The write through the services; returns what the rules expect."""
    oracle = Oracle(w["role"], w["mode"], w["grants"], w["parents"], w["scopes"])
    node_of = {loc.id: i for i, loc in enumerate(nodes)}
    survey_of = {s.id: j for j, s in enumerate(svs)}
    op, args = w["op"], w["args"]
    if op == "create_leak":
        i, j = args
        expected = (oracle.may("create", "loc", i)
                    and (j is None or oracle.may("create", "survey", j)))

        def write():
            leaks.create_leak(actor, location=nodes[i].id,
                              survey=svs[j].id if j is not None else None,
                              found_at=dt.datetime(2024, 3, 1, 9), rate_lpm=D("5"))
    elif op == "update_leak":
        k, i, j = args
        leak = lks[k]
        old_i, old_j = node_of[leak.location_id], survey_of.get(leak.survey_id)
        new_i = old_i if i is None else i
        new_j = old_j if j == "keep" else j
        expected = oracle.may("edit", "leak", (old_i, old_j))
        if new_i != old_i:
            expected = (expected and oracle.may("edit", "loc", old_i)
                        and oracle.may("edit", "loc", new_i))
        if new_j != old_j:
            expected = (expected and (old_j is None or oracle.may("edit", "survey", old_j))
                        and (new_j is None or oracle.may("edit", "survey", new_j)))
        values = {"description": "edited"}
        if i is not None:
            values["location"] = nodes[i].id
        if j != "keep":
            values["survey"] = svs[j].id if j is not None else None

        def write():
            leaks.update_leak(actor, leak, expected_version=leak.version, **values)
    elif op == "scope":
        j, wanted = args
        existing = set(w["scopes"][j])
        added = wanted - existing
        removed = {i for i in existing - wanted if oracle.may("view", "loc", i)}
        expected = (oracle.may("edit", "survey", j)
                    and all(oracle.may("edit", "loc", i) for i in added | removed))
        survey = svs[j]

        def write():
            surveys.update_survey(actor, survey, expected_version=survey.version,
                                  name=survey.name, period_start=survey.period_start,
                                  scope=[nodes[i].id for i in sorted(wanted)])
        w["expected_scope"] = (existing - removed) | added
    else:
        (i,) = args
        parent = nodes[i]
        expected = oracle.may("create", "loc", i)

        def write():
            locations.create_location(actor, kind="building" if parent.kind == "site"
                                      else "area", code="NEW", name="New", parent=parent)
    return expected, write


@settings(max_examples=150, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(w=worlds())
def test_writes_succeed_exactly_where_the_rules_allow_at_both_ends(app, w):
    org, nodes, svs, lks, actor = build(w)
    oracle = Oracle(w["role"], w["mode"], w["grants"], w["parents"], w["scopes"])
    # The decision point agrees with the rules written out here, row by row.
    for i, loc in enumerate(nodes):
        for action in ("view", "create", "edit"):
            assert authz.can(actor, action, loc) == oracle.may(action, "loc", i), (action, i)
    for j, s in enumerate(svs):
        for action in ("view", "create", "edit"):
            assert authz.can(actor, action, s) == oracle.may(action, "survey", j), (action, j)
    where_before = {lk.id: lk.location_id for lk in lks}
    expected, write = run(w, nodes, svs, lks, actor)
    before = state(org)
    try:
        write()
        ok = True
    except REFUSED:
        ok = False
    except ConflictError:  # pragma: no cover - nothing else writes here
        raise
    assert ok == expected, (w["op"], w["args"], w["role"], w["mode"], w["grants"])
    if not ok:
        assert state(org) == before, "a refused write changed something"
        return
    # No leak sits where its writer lacks edit, unless it was there before.
    for leak in Leak.select().where(Leak.organization == org):
        if where_before.get(leak.id) != leak.location_id:
            assert authz.can(actor, "edit", leak.location), (leak.tag, leak.location.code)
            assert oracle.may("edit", "loc", nodes.index(leak.location))
    if w["op"] == "scope":
        j = w["args"][0]
        assert surveys.scope_ids(svs[j]) == {nodes[i].id for i in w["expected_scope"]}
    if w["op"] == "update_leak":
        k, i, j = w["args"]
        leak = Leak.get_by_id(lks[k].id)
        if j == "keep":  # not sent: kept, also when the actor may not see it
            assert leak.survey_id == lks[k].survey_id
        if i is None:
            assert leak.location_id == lks[k].location_id


# ---------------------------------------------------------------- examples from the issue

@pytest.fixture
def plant(org, make_user):
    w02 = Location.create(organization=org, kind="site", code="W02", name="Werk 2")
    w03 = Location.create(organization=org, kind="site", code="W03", name="Werk 3")
    a3 = Location.create(organization=org, kind="building", code="H", name="Halle", parent=w03)
    survey = Survey.create(organization=org, name="Spring", period_start=dt.date(2024, 3, 1))
    leak = Leak.create(organization=org, tag="1", tag_number=1, location=w02, survey=survey,
                       rate_lpm=D("10"))
    return {"w02": w02, "w03": w03, "a3": a3, "survey": survey, "leak": leak}


def _actor(user):
    return authz.Actor(organization=user.organization, kind="user", user=user)


def test_external_with_view_on_the_target_cannot_move_a_leak_there(org, make_user, plant):
    ext = make_user("external")
    Grant.create(organization=org, user=ext, location=plant["w02"], level="edit")
    Grant.create(organization=org, user=ext, location=plant["w03"], level="view")
    a = _actor(ext)
    leak = plant["leak"]
    with pytest.raises(authz.TargetForbidden) as exc:
        leaks.update_leak(a, leak, expected_version=leak.version, location=plant["a3"].id)
    assert exc.value.field == "location" and exc.value.code == 403
    assert Leak.get_by_id(leak.id).location_id == plant["w02"].id
    # not even seen: answered like an id that does not exist
    Grant.delete().where(Grant.location == plant["w03"]).execute()
    with pytest.raises(ValidationError) as exc:
        leaks.update_leak(a, leak, expected_version=leak.version, location=plant["a3"].id)
    assert "location" in exc.value.errors
    # recording a new leak there is refused the same way
    Grant.create(organization=org, user=ext, location=plant["w03"], level="view")
    with pytest.raises(authz.TargetForbidden):
        leaks.create_leak(a, location=plant["a3"].id, found_at=dt.datetime(2024, 3, 1),
                          rate_lpm=D("1"))


def test_mode_2_editor_cannot_move_a_leak_into_an_ungranted_location(org, make_user, plant):
    org.security_mode = 2
    org.save()
    ed = make_user("editor")
    Grant.create(organization=org, user=ed, location=plant["w02"], level="edit")
    leak = plant["leak"]
    leak.survey = None
    leak.save()
    with pytest.raises(authz.TargetForbidden):
        leaks.update_leak(_actor(ed), leak, expected_version=leak.version,
                          location=plant["w03"].id)
    assert Leak.get_by_id(leak.id).location_id == plant["w02"].id


def test_a_survey_the_editor_cannot_see_is_kept_on_edit(org, make_user, plant):
    """Mode 3, a site grant without the survey: the leak's survey stays, whatever is edited;
    changing it is refused (the current survey is not shared)."""
    org.security_mode = 3
    org.save()
    ed = make_user("editor")
    Grant.create(organization=org, user=ed, location=plant["w02"], level="edit")
    a = _actor(ed)
    leak = plant["leak"]
    assert not authz.can(a, "view", plant["survey"])
    leak = leaks.update_leak(a, leak, expected_version=leak.version, description="new",
                             survey=plant["survey"].id)  # the same id: no change
    assert Leak.get_by_id(leak.id).survey_id == plant["survey"].id
    with pytest.raises(authz.TargetForbidden) as exc:
        leaks.update_leak(a, leak, expected_version=leak.version, survey=None)
    assert exc.value.field == "survey"
    assert Leak.get_by_id(leak.id).survey_id == plant["survey"].id
