"""Property: for any set of grants, the dashboard of a reader limited by grants (per-day counts
of whole sites + the leaks of partial grants counted in SQL) equals a straightforward
computation: every leak of the organization, visible when a live grant's location is above
its location or a live grant names its survey, figured on its own (issue 19)."""
import datetime as dt
from collections import Counter, defaultdict
from decimal import Decimal as D

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from leakhub.authz.models import Grant
from leakhub.core.db import utcnow
from leakhub.dashboard import service as dashboard
from leakhub.leaks import calc
from leakhub.leaks import service as leaks
from leakhub.leaks.models import FIXED_STATUSES, OPEN_STATUSES, Leak
from leakhub.locations import service as loc
from leakhub.locations.models import Location
from leakhub.locations.settings import SettingsResolver
from leakhub.surveys.models import Survey

from support.reporting_data import make_tree, new_leak

TODAY = dt.date(2024, 12, 15)


@pytest.fixture
def world(actor):
    tree = make_tree(actor)
    org = actor.organization
    org.security_mode = 3
    org.save()
    common = dict(currency="EUR", specific_power=D("6"), operating_hours=8000,
                  co2_factor=D("0.4"), control_factor=D("0.5"))
    loc.create_settings(actor, valid_from=dt.date(2024, 1, 1), price_per_kwh=D("0.20"), **common)
    loc.create_settings(actor, valid_from=dt.date(2024, 6, 1), price_per_kwh=D("0.30"), **common)
    loc.create_settings(actor, site=tree["site2"], valid_from=dt.date(2024, 3, 15),
                        price_per_kwh=D("0.10"))
    tree["hall2"] = loc.create_location(actor, kind="building", code="H2", name="Halle 2",
                                        parent=tree["site"])
    tree["hall3"] = loc.create_location(actor, kind="building", code="H3", name="Halle 3",
                                        parent=tree["site2"])
    tree["area2"] = loc.create_location(actor, kind="area", code="A2", name="Lager",
                                        parent=tree["hall3"])
    surveys = [Survey.create(organization=org, name=f"S{i}", period_start=dt.date(2024, 1, 1))
               for i in range(2)]
    places = [tree[k] for k in ("site", "hall", "area", "hall2", "site2", "hall3", "area2")]
    statuses = ["open", "repaired", "verified", "to_review", "not_a_leak", "deferred"]
    components = ["hose", "frl_unit", "coupling"]
    for i in range(36):
        found = dt.datetime(2023, 1, 10, 8) + dt.timedelta(days=23 * i, hours=i)
        status = statuses[(i // 2) % len(statuses)]
        extra = {"status": "to_review"} if status == "to_review" else {}
        lk = new_leak(actor, places[i % len(places)], found_at=found,
                      rate_lpm=D(str(1 + (i * 7) % 40)) + D("0.25") * (i % 3),
                      component=components[i % 3],
                      survey=surveys[i % 3].id if i % 3 < 2 else None, **extra)
        if status in ("repaired", "verified"):
            leaks.change_status(actor, lk, "repaired",
                                repaired_at=(found + dt.timedelta(days=40)).date())
            if status == "verified":
                leaks.change_status(actor, lk, "verified")
        elif status not in ("open", "to_review"):
            leaks.change_status(actor, lk, status, note="Stillstand im Werk")
    return {"places": places, "surveys": surveys}


def straightforward(admin, reader):
    """The dashboard's figures from every visible leak on its own (no SQL aggregation)."""
    now = utcnow()
    live = [g for g in Grant.select().where(Grant.user == reader.user)
            if g.level in ("view", "edit") and (g.expires_at is None or g.expires_at > now)]
    paths = [Location.get_by_id(g.location_id).path for g in live if g.location_id]
    surveys = {g.survey_id for g in live if g.survey_id}
    resolver = SettingsResolver(admin)
    months = dashboard._months(TODAY, dashboard.TREND_MONTHS)
    out = {"total": 0, "to_review": 0, "open": [0, D(0), D(0)], "fixed": [0, D(0), D(0)],
           "found": Counter(), "repaired": Counter(), "sites": defaultdict(lambda: [0, D(0)])}
    for lk in Leak.select().where(Leak.organization == admin.organization):
        path = Location.get_by_id(lk.location_id).path
        if not (any(path.startswith(p) for p in paths) or lk.survey_id in surveys):
            continue
        out["total"] += 1
        out["found"][lk.found_at.strftime("%Y-%m")] += 1
        if lk.status == "to_review":
            out["to_review"] += 1
        klass = ("open" if lk.status in OPEN_STATUSES else
                 "fixed" if lk.status in FIXED_STATUSES else None)
        if klass is None:
            continue
        f = calc.figures(lk.rate_lpm, resolver.for_leak(lk))
        acc = out[klass]
        acc[0] += 1
        acc[1] += lk.rate_lpm
        acc[2] += f.cost_year if klass == "open" else f.expected_cost_year
        if klass == "fixed" and lk.repaired_at is not None:
            out["repaired"][lk.repaired_at.strftime("%Y-%m")] += 1
        if klass == "open":
            site = out["sites"][lk.site_id]
            site[0] += 1
            site[1] += f.cost_year
    out["found"] = [out["found"][m] for m in months]
    out["repaired"] = [out["repaired"][m] for m in months]
    return out


# (target index into places + surveys, level, expired)
GRANTS = st.lists(st.tuples(st.integers(0, 8), st.sampled_from(["view", "edit"]),
                            st.booleans()), max_size=5)


@settings(max_examples=25, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(grants=GRANTS)
def test_grant_limited_dashboard_equals_leak_by_leak(actor, world, make_actor, grants):
    org = actor.organization
    reader = make_actor("external")
    targets = world["places"] + world["surveys"]
    now = utcnow()
    for index, level, expired in grants:
        target = targets[index]
        is_loc = isinstance(target, Location)
        Grant.create(organization=org, user=reader.user, level=level,
                     location=target if is_loc else None, survey=None if is_loc else target,
                     expires_at=now - dt.timedelta(days=1) if expired else None)
    d = dashboard.compute(reader, today=TODAY)
    want = straightforward(actor, reader)
    assert d.total == want["total"] and d.to_review == want["to_review"]
    assert [d.open.count, d.open.rate_lpm, d.open.cost_year] == want["open"]
    assert [d.fixed.count, d.fixed.rate_lpm, d.fixed.expected_cost_year] == want["fixed"]
    assert [f for _m, f, _r in d.trend] == want["found"]
    assert [r for _m, _f, r in d.trend] == want["repaired"]
    assert {s.site_id: [s.open.count, s.open.cost_year] for s in d.by_site
            if s.open.count} == dict(want["sites"])
