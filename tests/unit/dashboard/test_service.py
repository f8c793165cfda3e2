"""Dashboard: SQL aggregates with settings by site and date equal hand-computed sums."""
import datetime as dt
import json
from decimal import Decimal as D

import pytest

from leakhub.dashboard import service as dashboard
from leakhub.leaks import service as leaks
from leakhub.locations import service as loc

from support.reporting_data import BASE, make_tree, new_leak


@pytest.fixture
def data(actor):
    tree = make_tree(actor)
    common = dict(currency="EUR", specific_power=D("6"), operating_hours=8000,
                  co2_factor=D("0.4"), control_factor=D("0.5"))
    loc.create_settings(actor, valid_from=dt.date(2024, 1, 1), price_per_kwh=D("0.20"), **common)
    loc.create_settings(actor, valid_from=dt.date(2024, 6, 1), price_per_kwh=D("0.30"), **common)
    loc.create_settings(actor, site=tree["site2"], valid_from=dt.date(2024, 1, 1),
                        price_per_kwh=D("0.10"))
    at = lambda y, m, d: dt.datetime(y, m, d, 9)  # noqa: E731
    new_leak(actor, tree["area"], found_at=at(2024, 3, 1), rate_lpm=D("10"), component="hose")
    new_leak(actor, tree["hall"], found_at=at(2024, 7, 1), rate_lpm=D("20"),
             component="frl_unit")
    new_leak(actor, tree["site2"], found_at=at(2024, 3, 1), rate_lpm=D("30"), component="hose")
    old = new_leak(actor, tree["area"], found_at=at(2023, 6, 1), rate_lpm=D("50"))
    leaks.change_status(actor, old, "repaired", repaired_at=dt.date(2023, 7, 10))
    ver = new_leak(actor, tree["site2"], found_at=at(2024, 7, 1), rate_lpm=D("40"))
    leaks.change_status(actor, ver, "repaired", repaired_at=dt.date(2024, 7, 5))
    leaks.change_status(actor, ver, "verified")
    new_leak(actor, tree["area"], found_at=at(2024, 8, 1), rate_lpm=D("5"), status="to_review")
    nal = new_leak(actor, tree["area"], found_at=at(2024, 8, 1), rate_lpm=D("7"))
    leaks.change_status(actor, nal, "not_a_leak")
    return tree


def test_figures_equal_hand_computed_sums(actor, data):
    d = dashboard.compute(actor, today=dt.date(2024, 12, 15))
    # Open: 10 l/min @ 0.20 (BER, March), 20 @ 0.30 (BER, July), 30 @ 0.10 (MUC site price).
    # kWh = l/min / 1000 × 6 × 8000 = 48 × l/min.
    assert d.open.count == 3 and d.open.rate_lpm == 60
    assert d.open.kwh_year == D("2880")
    assert d.open.cost_year == D("96") + D("288") + D("144")
    assert d.open.co2_kg_year == D("1152")
    # Repaired 2023 leak: built-in defaults (no settings before 2024): 50 l/min × 6.4 × 8000
    # / 1000 = 2560 kWh × 0.19 = 486.40, control factor 1. Verified MUC leak: 40 l/min →
    # 1920 kWh × 0.10 = 192, expected × 0.5 = 96.
    assert d.fixed.count == 2 and d.fixed.rate_lpm == 90
    assert d.fixed.kwh_year == D("4480")
    assert d.fixed.cost_year == D("678.4")
    assert d.fixed.expected_cost_year == D("582.4")
    assert d.fixed.expected_kwh_year == D("3520")
    assert d.to_review == 1 and d.total == 7
    sites = {s.label.split(" ")[0]: s for s in d.by_site}
    assert sites["BER"].open.count == 2 and sites["BER"].open.cost_year == D("384")
    assert sites["BER"].fixed.expected_cost_year == D("486.4")
    assert sites["MUC"].open.cost_year == D("144") \
        and sites["MUC"].fixed.expected_cost_year == D("96")
    comps = dict(d.by_component)
    assert comps["hose"].count == 2 and comps["hose"].cost_year == D("240")
    assert comps["frl_unit"].cost_year == D("288")
    trend = {m: (f, r) for m, f, r in d.trend}
    assert len(d.trend) == 24 and d.trend[-1][0] == "2024-12"
    assert trend["2024-03"] == (2, 0) and trend["2024-07"] == (2, 1)
    assert trend["2023-06"] == (1, 0) and trend["2023-07"] == (0, 1)
    assert trend["2024-08"] == (2, 0)
    assert d.currency == "EUR"
    # Few groups, not one per leak.
    assert d.groups <= 7


def test_matches_per_leak_calculation(actor, data):
    """The grouped SQL path gives the same total as computing every leak on its own."""
    from leakhub.leaks import calc
    from leakhub.leaks.models import OPEN_STATUSES, Leak
    from leakhub.locations.settings import SettingsResolver

    resolver = SettingsResolver(actor)
    total = D(0)
    for lk in Leak.select().where(Leak.status.in_(OPEN_STATUSES)):
        total += calc.figures(lk.rate_lpm, resolver.for_leak(lk)).cost_year
    assert dashboard.compute(actor).open.cost_year == total


def test_page_renders_with_json_and_no_inline_script(actor, data, login):
    c = login(actor.user)
    resp = c.get("/dashboard", base_url=BASE)
    assert resp.status_code == 200
    html = resp.data.decode()
    assert 'id="dashboard-data"' in html and "vendor/chartjs/chart.umd.min.js" in html
    start = html.index('<script type="application/json" id="dashboard-data">') + len(
        '<script type="application/json" id="dashboard-data">')
    payload = json.loads(html[start:html.index("</script>", start)])
    assert payload["trend"]["months"][-1] and payload["sites"]["labels"]
    import re
    for tag in re.findall(r"<script[^>]*>", html):
        assert "src=" in tag or 'type="application/json"' in tag, tag


def test_other_org_sees_its_own_empty_dashboard(actor, data, make_actor, other_org):
    stranger = make_actor("admin", organization=other_org)
    d = dashboard.compute(stranger)
    assert d.total == 0 and d.open.count == 0 and d.by_site == []


def test_grant_limited_reader_gets_the_same_figures_from_both_sources(actor, data, make_actor):
    """An admin's dashboard comes from leak_daily alone. A reader limited by grants reads the
    per-day counts of the sites granted as a whole (MUC) and counts the leaks of partial
    grants (the hall of BER, which holds all of BER's leaks) one by one: together the same
    figures, to the cent."""
    from leakhub.authz.models import Grant

    assert dashboard.counts_every_leak(actor)
    actor.organization.security_mode = 3
    actor.organization.save()
    reader = make_actor("viewer")
    for place in (data["site2"], data["hall"]):
        Grant.create(organization=actor.organization, user=reader.user, location=place,
                     level="view")
    assert not dashboard.counts_every_leak(reader)
    sources = [what for what, _q in dashboard.queries(reader, [], ["2024-12"])]
    assert sources == ["grouped", "found", "repaired", "leaks", "leaks repaired"]
    today = dt.date(2024, 12, 15)
    mine, theirs = dashboard.compute(actor, today=today), dashboard.compute(reader, today=today)
    assert theirs.total == mine.total == 7
    for name in ("open", "fixed"):
        assert getattr(theirs, name) == getattr(mine, name), name
    assert theirs.by_component == mine.by_component and theirs.trend == mine.trend
    # (by site id: the reader does not see BER's name, only its hall)
    assert [(s.site_id, s.open, s.fixed) for s in theirs.by_site] == [
        (s.site_id, s.open, s.fixed) for s in mine.by_site]
    # Without the hall: MUC's 2 leaks only, from its per-day counts.
    Grant.delete().where(Grant.location == data["hall"]).execute()
    assert not dashboard.counts_leaks_one_by_one(reader)  # whole sites only
    only_muc = dashboard.compute(reader, today=today)
    assert only_muc.total == 2 and [s.label.split(" ")[0] for s in only_muc.by_site] == ["MUC"]
    assert sum(f for _m, f, _r in only_muc.trend) == 2
    # With the area only (part of the hall): its 4 leaks, counted one by one.
    Grant.delete().where(Grant.location == data["site2"]).execute()
    Grant.create(organization=actor.organization, user=reader.user, location=data["area"],
                 level="view")
    assert dashboard.compute(reader, today=today).total == 4


def test_survey_grants_are_counted_one_by_one(actor, data, make_actor):
    from leakhub.authz.models import Grant
    from leakhub.surveys.models import Survey

    actor.organization.security_mode = 3
    actor.organization.save()
    survey = Survey.create(organization=actor.organization, name="Herbst",
                           period_start=dt.date(2024, 7, 1))
    from leakhub.leaks.models import Leak
    Leak.update(survey=survey).where(Leak.rate_lpm.in_([D("20"), D("40")])).execute()
    reader = make_actor("viewer")
    assert not dashboard.counts_leaks_one_by_one(reader) and dashboard.compute(reader).total == 0
    Grant.create(organization=actor.organization, user=reader.user, survey=survey, level="view")
    assert dashboard.counts_leaks_one_by_one(reader)
    d = dashboard.compute(reader, today=dt.date(2024, 12, 15))
    assert d.total == 2 and d.open.rate_lpm == 20 and d.fixed.rate_lpm == 40
    # The MUC leak of the survey is counted once when MUC is granted as a whole too.
    Grant.create(organization=actor.organization, user=reader.user, location=data["site2"],
                 level="view")
    d = dashboard.compute(reader, today=dt.date(2024, 12, 15))
    assert d.total == 3 and d.open.rate_lpm == 50 and d.fixed.rate_lpm == 40


def test_a_site_granted_in_part_is_named_as_not_shared(actor, data, make_actor, login):
    from leakhub.authz.models import Grant

    actor.organization.security_mode = 3
    actor.organization.save()
    reader = make_actor("viewer")
    Grant.create(organization=actor.organization, user=reader.user, location=data["hall"],
                 level="view")
    Grant.create(organization=actor.organization, user=reader.user, location=data["site2"],
                 level="view")
    html = login(reader.user).get("/dashboard", base_url=BASE).get_data(as_text=True)
    table = html[html.index('data-testid="by-site"'):]
    table = table[:table.index("</table>")]
    assert "Site not shared with you" in table and "MUC · Werk München" in table
    assert "Werk Berlin" not in html  # the name of the site the reader sees only part of
