"""The one decision point: roles × security modes × grants (with inheritance and expiry),
decided from the database on every call."""
import datetime as dt
from decimal import Decimal

import pytest
from werkzeug.exceptions import Forbidden, NotFound

from leakhub import authz
from leakhub.authz.links import known_models
from leakhub.authz.models import Grant
from leakhub.core.db import OrgScoped
from leakhub.identity.models import User
from leakhub.leaks.models import Leak
from leakhub.locations.models import Location
from leakhub.orgs.models import Organization
from leakhub.surveys.models import Survey


@pytest.fixture
def world(app):
    org = Organization.create(slug="acme", name="ACME", oidc_client_secret="x")
    other = Organization.create(slug="other", name="Other", oidc_client_secret="y")
    site_a = Location.create(organization=org, kind="site", code="A", name="Plant A")
    hall = Location.create(organization=org, kind="building", code="H1", name="Hall", parent=site_a)
    area = Location.create(organization=org, kind="area", code="Z", name="Zone", parent=hall)
    site_b = Location.create(organization=org, kind="site", code="B", name="Plant B")
    survey = Survey.create(organization=org, name="Spring", period_start=dt.date(2026, 3, 1))
    other_site = Location.create(organization=other, kind="site", code="X", name="Foreign")

    def leak(tag, loc, org_=org, survey_=None):
        return Leak.create(organization=org_, tag=tag, location=loc, rate_lpm=Decimal("10"),
                           survey=survey_)

    leaks = {"area": leak("1", area), "b": leak("2", site_b),
             "survey": leak("3", site_b, survey_=survey), "foreign": leak("9", other_site, other)}
    users = {r: User.create(organization=org, sub=r, email=f"{r}@acme.test", role=r)
             for r in ("admin", "manager", "editor", "viewer", "external")}
    return dict(org=org, other=other, site_a=site_a, hall=hall, area=area, site_b=site_b,
                survey=survey, leaks=leaks, users=users)


def actor(w, role):
    return authz.Actor(organization=w["org"], kind="user", user=w["users"][role])


def visible(a, action="view"):
    return {lk.tag for lk in authz.scope(a, Leak, action)}


def set_mode(w, mode):
    w["org"].security_mode = mode
    w["org"].save()


@pytest.mark.parametrize("mode,role,view,edit", [
    (1, "admin", {"1", "2", "3"}, {"1", "2", "3"}),
    (1, "editor", {"1", "2", "3"}, {"1", "2", "3"}),
    (1, "viewer", {"1", "2", "3"}, set()),
    (1, "external", set(), set()),
    (2, "editor", {"1", "2", "3"}, set()),
    (2, "viewer", {"1", "2", "3"}, set()),
    (3, "editor", set(), set()),
    (3, "viewer", set(), set()),
    (3, "manager", {"1", "2", "3"}, {"1", "2", "3"}),
])
def test_modes_and_roles_without_grants(world, mode, role, view, edit):
    set_mode(world, mode)
    a = actor(world, role)
    assert visible(a) == view
    assert visible(a, "edit") == edit
    assert "9" not in visible(a)


def test_location_grant_inherits_down_the_tree_and_expires(world):
    set_mode(world, 3)
    ext = actor(world, "external")
    g = Grant.create(organization=world["org"], user=world["users"]["external"],
                     location=world["site_a"], level="view")
    assert visible(ext) == {"1"}
    assert visible(ext, "edit") == set()
    g.level = "edit"
    g.save()
    assert visible(ext, "edit") == {"1"}
    g.expires_at = dt.datetime(2000, 1, 1)
    g.save()
    assert visible(ext) == set()


def test_survey_grant(world):
    ext = actor(world, "external")
    Grant.create(organization=world["org"], user=world["users"]["external"],
                 survey=world["survey"], level="view")
    assert visible(ext) == {"3"}


def test_revocation_is_immediate_and_role_caps_grants(world):
    set_mode(world, 3)
    viewer = actor(world, "viewer")
    g = Grant.create(organization=world["org"], user=world["users"]["viewer"],
                     location=world["site_b"], level="edit")
    assert visible(viewer) == {"2", "3"}
    assert visible(viewer, "edit") == set()  # a viewer never writes, whatever the grant says
    g.delete_instance()
    assert visible(viewer) == set()


def test_require_404_for_foreign_or_invisible_and_403_for_visible(world):
    set_mode(world, 2)
    viewer = actor(world, "viewer")
    with pytest.raises(NotFound):
        authz.require(viewer, "view", world["leaks"]["foreign"])
    with pytest.raises(Forbidden):
        authz.require(viewer, "edit", world["leaks"]["area"])
    with pytest.raises(NotFound):
        authz.get_or_404(viewer, Leak, world["leaks"]["foreign"].id)
    set_mode(world, 3)
    with pytest.raises(NotFound):
        authz.get_or_404(viewer, Leak, world["leaks"]["area"].id)


def test_disabled_user_loses_everything_at_once(world):
    admin = actor(world, "admin")
    assert visible(admin)
    world["users"]["admin"].enabled = False
    world["users"]["admin"].save()
    assert visible(admin) == set()


def test_every_org_scoped_model_has_an_authz_link():
    def subclasses(cls):
        for sub in cls.__subclasses__():
            yield sub
            yield from subclasses(sub)

    import leakhub.app  # noqa: F401  (imports every feature's models)

    missing = {m.__name__ for m in subclasses(OrgScoped)} - {m.__name__ for m in known_models()}
    assert not missing, f"add these models to authz/links.py: {sorted(missing)}"


def test_survey_grant_opens_the_leak_page_with_its_location_and_cost(world, client):
    from leakhub.locations.models import EnergySettings

    EnergySettings.create(organization=world["org"], site=world["site_b"],
                          valid_from=dt.date(2020, 1, 1), price_per_kwh=Decimal("0.30"))
    ext = world["users"]["external"]
    Grant.create(organization=world["org"], user=ext, survey=world["survey"], level="view")
    a = actor(world, "external")
    assert authz.scope(a, EnergySettings).count() == 1  # reference data, readable by members
    assert authz.scope(a, EnergySettings, "edit").count() == 0
    with client.session_transaction() as s:
        s["org_id"], s["_user_id"], s["_fresh"] = world["org"].id, str(ext.id), True
    page = client.get(f"/leaks/{world['leaks']['survey'].id}")
    assert page.status_code == 200
    assert "Plant B" in page.get_data(as_text=True)
    assert client.get(f"/leaks/{world['leaks']['b'].id}").status_code == 404


def test_location_grant_is_a_path_subtree_not_a_string_prefix(world):
    """'/7001/' is a string prefix of '/70012/' but not its ancestor: the range condition in
    front of the LIKE (an index range per grant) must not widen the subtree."""
    set_mode(world, 3)
    org = world["org"]
    near = Location.create(id=7001, organization=org, kind="site", code="N", name="Near")
    far = Location.create(id=70012, organization=org, kind="site", code="F", name="Far")
    below = Location.create(organization=org, kind="building", code="B1", name="Below",
                            parent=near)
    for tag, loc in (("71", near), ("72", far), ("73", below)):
        Leak.create(organization=org, tag=tag, location=loc, rate_lpm=Decimal("1"))
    Grant.create(organization=org, user=world["users"]["external"], location=near,
                 level="view")
    ext = actor(world, "external")
    assert visible(ext) == {"71", "73"}
    assert {loc.id for loc in authz.scope(ext, Location)} == {near.id, below.id}


def test_grant_subqueries_are_compiled_once_and_still_evaluated_per_statement(
        world, monkeypatch):
    """authz._compiled keeps a grant-limited actor's subqueries as SQL text (issue 19): built
    once per actor and second, while the database evaluates them at every statement — a
    revoked grant is gone at the next statement, and a grant expiring a moment later stops
    when the clock passes it (the text is recompiled with the new time)."""
    set_mode(world, 3)
    ext = actor(world, "external")
    g = Grant.create(organization=world["org"], user=world["users"]["external"],
                     location=world["site_a"], level="view",
                     expires_at=authz.utcnow() + dt.timedelta(seconds=30))
    built = []
    real = authz._granted_location_ids
    monkeypatch.setattr(authz, "_granted_location_ids",
                        lambda a, action: built.append(action) or real(a, action))
    now = authz.utcnow().replace(microsecond=0)
    monkeypatch.setattr(authz, "utcnow", lambda: now)
    assert visible(ext) == {"1"} and visible(ext) == {"1"}
    assert built == ["view"]  # the second statement reused the compiled text
    other = Grant.create(organization=world["org"], user=world["users"]["external"],
                         location=world["site_b"], level="view")
    assert visible(ext) == {"1", "2", "3"}  # a new grant counts at the next statement
    other.delete_instance()
    assert visible(ext) == {"1"} and built == ["view"]
    later = now + dt.timedelta(seconds=31)
    monkeypatch.setattr(authz, "utcnow", lambda: later)
    assert visible(ext) == set()  # expired: compiled again with the later time
    assert built == ["view", "view"]
    g.delete_instance()
