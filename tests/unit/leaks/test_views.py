"""Leak register pages through the Flask test client (signed in via the session)."""
import datetime as dt
import re
from decimal import Decimal as D

import pytest

from leakhub.audit.models import AuditEntry
from leakhub.authz import Actor
from leakhub.leaks import service
from leakhub.leaks.models import Leak
from leakhub.locations import service as loc
from leakhub.locations.models import EnergySettings, Location
from leakhub.surveys import service as sv
from leakhub.surveys.models import Survey


@pytest.fixture
def admin(make_user):
    return make_user("admin", name="Anna Admin")


@pytest.fixture
def world(org, admin):
    a = Actor(organization=org, kind="user", user=admin)
    site = loc.create_location(a, kind="site", code="BER", name="Werk Berlin")
    hall = loc.create_location(a, kind="building", code="H1", name="Halle 1", parent=site)
    survey = sv.create_survey(a, name="Frühjahr 2024", period_start=dt.date(2024, 3, 1),
                              scope=[site.id])
    return {"actor": a, "site": site, "hall": hall, "survey": survey}


def mk(world, **kw):
    values = dict(location=world["hall"].id, found_at=dt.datetime(2024, 3, 2, 9),
                  rate_lpm=D("20"), survey=world["survey"].id)
    values.update(kw)
    return service.create_leak(world["actor"], **values)


def leak_form(world, **kw):
    data = {"csrf_token": "t", "location": str(world["hall"].id), "survey": str(world["survey"].id),
            "found_at": "2024-03-05T10:15", "method": "device", "rate_lpm": "12,5",
            "pressure_bar": "6,5", "component": "frl_unit", "priority": "1", "gas": "air",
            "description": "Wartungseinheit zischt", "status": "open"}
    data.update(kw)
    return data


def test_create_leak_via_form(world, admin, login):
    c = login(admin)
    resp = c.post("/leaks/new", data=leak_form(world))
    assert resp.status_code == 302
    leak = Leak.get()
    assert resp.headers["Location"].endswith(f"/leaks/{leak.id}")
    assert leak.tag == "1" and leak.rate_lpm == D("12.5") and leak.pressure_bar == D("6.5")
    assert leak.found_at == dt.datetime(2024, 3, 5, 9, 15)  # Berlin CET → UTC
    assert AuditEntry.select().where(AuditEntry.entity_type == "leak").count() == 1
    page = c.get(f"/leaks/{leak.id}").get_data(as_text=True)
    assert "12.5 l/min" in page and "<svg" in page
    # 12.5 l/min × 6.4 × 8000 h = 640 kWh; × 0.19 = 121.60 €
    assert re.search(r'data-testid="kwh">640 kWh', page)
    assert "€121.60" in page


def test_create_leak_errors_rerender_with_422(world, admin, login):
    c = login(admin)
    resp = c.post("/leaks/new", data=leak_form(world, rate_lpm="zwölf", location="",
                                               component="pipe"))
    assert resp.status_code == 422
    page = resp.get_data(as_text=True)
    for name in ("rate_lpm", "location", "component"):
        assert f'data-testid="error-{name}"' in page
    assert 'value="zwölf"' in page  # the user's input is kept
    assert Leak.select().count() == 0


def test_duplicate_preprinted_tag_names_the_field(world, admin, login):
    mk(world, tag="4711")
    resp = login(admin).post("/leaks/new", data=leak_form(world, tag="4711"))
    assert resp.status_code == 422
    assert 'data-testid="error-tag"' in resp.get_data(as_text=True)
    assert Leak.select().count() == 1


def test_edit_conflict_shows_both_versions(world, admin, make_user, login, app):
    leak = mk(world, description="original")
    c1 = login(admin)
    c2 = login(make_user("editor"), app.test_client())
    base = leak_form(world, version="1", description="")
    r1 = c1.post(f"/leaks/{leak.id}/edit", data={**base, "description": "from A"})
    assert r1.status_code == 302
    r2 = c2.post(f"/leaks/{leak.id}/edit", data={**base, "description": "from B"})
    assert r2.status_code == 409
    page = r2.get_data(as_text=True)
    assert 'data-testid="conflict"' in page and 'data-testid="conflict-description"' in page
    assert "from A" in page and "from B" in page
    assert 'name="version" value="2"' in page  # saving again is a conscious overwrite
    assert Leak.get_by_id(leak.id).description == "from A"
    r3 = c2.post(f"/leaks/{leak.id}/edit", data={**base, "version": "2", "description": "from B"})
    assert r3.status_code == 302 and Leak.get_by_id(leak.id).description == "from B"


def test_status_change_and_illegal_move(world, admin, login):
    leak = mk(world)
    c = login(admin)
    r = c.post(f"/leaks/{leak.id}/status", data={"csrf_token": "t", "version": "1",
                                                  "status": "verified"})
    assert r.status_code == 422
    assert "cannot change the status" in r.get_data(as_text=True)
    r = c.post(f"/leaks/{leak.id}/status", data={"csrf_token": "t", "version": "1",
                                                  "status": "repaired", "repair_cost": "45,50",
                                                  "note": "Dichtung getauscht"})
    assert r.status_code == 302
    leak = Leak.get_by_id(leak.id)
    assert leak.status == "repaired" and leak.repair_cost == D("45.50")
    page = c.get(f"/leaks/{leak.id}").get_data(as_text=True)
    assert "Dichtung getauscht" in page
    # A stale form (version 1) is a conflict, not a silent overwrite.
    r = c.post(f"/leaks/{leak.id}/status", data={"csrf_token": "t", "version": "1",
                                                  "status": "verified"})
    assert r.status_code == 409 and Leak.get_by_id(leak.id).status == "repaired"


def test_list_filter_sort_and_pagination(world, admin, login):
    for i in range(30):
        mk(world, rate_lpm=D(i + 1), component="hose" if i % 3 else "valve")
    c = login(admin)
    page = c.get("/leaks?per_page=25").get_data(as_text=True)
    assert "30 leaks" in page and 'data-testid="pager"' in page
    assert page.count('data-testid="leak-row-') == 25
    page2 = c.get("/leaks?per_page=25&page=2").get_data(as_text=True)
    assert page2.count('data-testid="leak-row-') == 5
    page = c.get("/leaks?component=valve&sort=-rate").get_data(as_text=True)
    assert "10 leaks" in page
    tags = re.findall(r'data-testid="leak-row-(\w+)"', page)
    rates = [Leak.get(Leak.tag == t).rate_lpm for t in tags]
    assert rates == sorted(rates, reverse=True)
    # The filter lives in the URL: sort links keep it.
    assert "component=valve" in re.search(r'href="([^"]*)" data-testid="sort-tag"', page).group(1)
    page = c.get(f"/leaks?location={world['site'].id}&status=open&q=nothing-matches")
    assert "0 leaks" in page.get_data(as_text=True)
    # An unreadable filter value is named at its field and nothing is listed (not every leak).
    resp = c.get("/leaks?date_from=gestern&priority=7&q=" + "x" * 101)
    html = resp.get_data(as_text=True)
    assert resp.status_code == 200 and "0 leaks" in html
    assert 'data-testid="leak-row-' not in html and "At most 100 characters." in html


def test_bulk_status(world, admin, login):
    a, b, d = mk(world), mk(world), mk(world)
    service.change_status(world["actor"], d, "repaired")
    c = login(admin)
    r = c.post("/leaks/bulk-status", data={
        "csrf_token": "t", "ids": [a.id, b.id, d.id], "status": "repair_planned",
        "next": "/leaks?status=open"})
    assert r.status_code == 302 and r.headers["Location"].endswith("/leaks?status=open")
    assert Leak.get_by_id(a.id).status == "open"  # all or nothing
    page = c.get("/leaks").get_data(as_text=True)
    assert d.tag in page and "Cannot change" in page
    r = c.post("/leaks/bulk-status", data={"csrf_token": "t", "ids": [a.id, b.id],
                                           "status": "repair_planned", "next": "//evil.example"})
    assert r.headers["Location"].endswith("/leaks")
    assert {Leak.get_by_id(i).status for i in (a.id, b.id)} == {"repair_planned"}


def test_tag_sheet(world, admin, login):
    mk(world, tag="0815")
    mk(world)
    resp = login(admin).get(f"/surveys/{world['survey'].id}/tags")
    page = resp.get_data(as_text=True)
    assert resp.status_code == 200
    assert 'data-testid="tag-0815"' in page and 'data-testid="tag-816"' in page
    assert page.count('<svg') == 2 and 'class="qr"' in page
    # CSP: no inline styles or scripts; the print button's script is a static file (issue 18).
    assert "style=" not in page
    scripts = re.findall(r"<script[^>]*>", page)
    assert scripts and all(re.fullmatch(r'<script src="/static/[^"]+">', s) for s in scripts)
    assert 'data-print' in page and 'data-testid="print"' in page
    assert 'class="nowrap" data-testid="tag-date"' in page  # dates do not break across lines
    assert "css/tagsheet.css" in page  # the print sheet hides banners and messages


def test_location_survey_and_settings_forms(world, admin, login):
    c = login(admin)
    r = c.post("/locations/new", data={"csrf_token": "t", "kind": "area", "code": "M1",
                                       "name": "Montage", "parent": str(world["hall"].id)})
    assert r.status_code == 302
    area = Location.get(Location.code == "M1")
    assert area.path == world["hall"].path + f"{area.id}/"
    r = c.post("/locations/new", data={"csrf_token": "t", "kind": "area", "code": "X",
                                       "name": "X", "parent": str(world["site"].id)})
    assert r.status_code == 422 and 'data-testid="error-parent"' in r.get_data(as_text=True)
    r = c.post("/surveys/new", data={"csrf_token": "t", "name": "Herbst", "status": "planned",
                                     "period_start": "01.10.2024", "scope": [world["site"].id],
                                     "auditor_company": "Druckluft-Audit GmbH"})
    assert r.status_code == 302
    assert Survey.get(Survey.name == "Herbst").period_start == dt.date(2024, 10, 1)
    r = c.post("/settings/energy", data={"csrf_token": "t", "valid_from": "2024-01-01",
                                         "price_per_kwh": "0,22", "currency": "eur",
                                         "specific_power": "6,4", "operating_hours": "8760",
                                         "co2_factor": "0,38"})
    assert r.status_code == 302
    row = EnergySettings.get()
    assert row.price_per_kwh == D("0.22") and row.currency == "EUR" and row.site_id is None
    r = c.post("/settings/energy", data={"csrf_token": "t", "valid_from": "2024-06-01",
                                         "site": str(world["site"].id), "price_per_m3": "0,02"})
    assert r.status_code == 302
    r = c.post("/settings/energy", data={"csrf_token": "t", "valid_from": "2024-01-01",
                                         "price_per_kwh": "0,22"})
    assert r.status_code == 422
    for url in ("/locations", f"/locations/{world['site'].id}", "/surveys",
                f"/surveys/{world['survey'].id}", f"/surveys/{world['survey'].id}/compare",
                "/settings/energy", f"/locations/{world['site'].id}/edit",
                f"/surveys/{world['survey'].id}/edit", "/leaks/new"):
        assert c.get(url).status_code == 200, url


def test_roles(world, make_user, login, app):
    leak = mk(world)
    viewer = login(make_user("viewer"), app.test_client())
    assert viewer.get("/leaks").status_code == 200
    assert viewer.get(f"/leaks/{leak.id}").status_code == 200
    assert viewer.get("/leaks/new").status_code == 403
    assert viewer.post(f"/leaks/{leak.id}/status",
                       data={"csrf_token": "t", "status": "repaired"}).status_code == 403
    assert viewer.get("/settings/energy").status_code == 403
    manager = login(make_user("manager"), app.test_client())
    assert manager.get("/settings/energy").status_code == 403
    pending = login(make_user(None), app.test_client())
    resp = pending.get("/leaks")
    assert resp.status_code == 403 and b'data-testid="waiting"' in resp.data


def test_other_organization_gets_404(world, other_org, make_user, login):
    leak = mk(world)
    stranger = login(make_user("admin", organization=other_org))
    for url in (f"/leaks/{leak.id}", f"/leaks/{leak.id}/edit", f"/locations/{world['site'].id}",
                f"/surveys/{world['survey'].id}", f"/surveys/{world['survey'].id}/tags",
                f"/surveys/{world['survey'].id}/compare", f"/leaks/tag/{leak.tag}"):
        assert stranger.get(url).status_code == 404, url
    r = stranger.post(f"/leaks/{leak.id}/status", data={"csrf_token": "t", "status": "repaired"})
    assert r.status_code == 404
    r = stranger.post("/leaks/bulk-status", data={"csrf_token": "t", "ids": [leak.id],
                                                  "status": "repaired"})
    assert Leak.get_by_id(leak.id).status == "open"
    assert "0 leaks" in stranger.get(f"/leaks?location={world['site'].id}").get_data(as_text=True)


def test_post_without_csrf_refused(world, admin, login):
    c = login(admin)
    assert c.post("/leaks/new", data={k: v for k, v in leak_form(world).items()
                                      if k != "csrf_token"}).status_code == 403
    assert Leak.select().count() == 0


def test_number_formatting_per_locale(app):
    from flask import g
    from flask_babel import force_locale

    from leakhub.core import templating as pages

    with app.test_request_context():
        for lang, expected in (("en", ("1,234.5", "€1,234.50", "€1,235", "1,234.500")),
                              ("de", ("1.234,5", "1.234,50\xa0€", "1.235\xa0€", "1.234,500"))):
            with force_locale(lang):
                g.pop("_num_symbols", None)
                assert (pages._num(D("1234.50"), 2), pages._money(D("1234.5"), "EUR"),
                        pages._money(D("1234.5"), "EUR", 0),
                        pages._num_fixed(D("1234.5"), 3)) == expected
        assert pages._num(None) == "" and pages._money("", "EUR") == ""


def test_location_survey_and_settings_conflicts(world, admin, make_user, login, app):
    from leakhub.locations import service as loc_service

    c1 = login(admin)
    c2 = login(make_user("admin"), app.test_client())
    site = world["site"]
    form = {"csrf_token": "t", "version": "1", "code": "BER", "name": "Werk Berlin-Spandau"}
    assert c1.post(f"/locations/{site.id}/edit", data=form).status_code == 302
    r = c2.post(f"/locations/{site.id}/edit", data={**form, "name": "Werk Berlin Mitte"})
    assert r.status_code == 409 and b'data-testid="conflict-name"' in r.data
    assert Location.get_by_id(site.id).name == "Werk Berlin-Spandau"

    s = world["survey"]
    sform = {"csrf_token": "t", "version": "1", "name": "A", "period_start": "2024-03-01",
             "status": "completed", "scope": [site.id]}
    assert c1.post(f"/surveys/{s.id}/edit", data=sform).status_code == 302
    r = c2.post(f"/surveys/{s.id}/edit", data={**sform, "name": "B"})
    assert r.status_code == 409 and b'data-testid="conflict-name"' in r.data
    assert Survey.get_by_id(s.id).name == "A"

    row = loc_service.create_settings(world["actor"], valid_from=dt.date(2024, 1, 1),
                                      price_per_kwh=D("0.2"), currency="EUR",
                                      specific_power=D("6.4"), operating_hours=8000,
                                      co2_factor=D("0.38"))
    eform = {"csrf_token": "t", "version": "1", "valid_from": "2024-01-01", "currency": "EUR",
             "price_per_kwh": "0,21", "specific_power": "6,4", "operating_hours": "8000",
             "co2_factor": "0,38"}
    assert c1.post(f"/settings/energy/{row.id}/edit", data=eform).status_code == 302
    r = c2.post(f"/settings/energy/{row.id}/edit", data={**eform, "price_per_kwh": "0,25"})
    assert r.status_code == 409 and b'data-testid="conflict-price_per_kwh"' in r.data
    assert EnergySettings.get_by_id(row.id).price_per_kwh == D("0.21")


def test_location_options_follow_the_location_tree(world, org, make_user):
    """The list's and the form's location options (plain tuples) are the tree order and
    labels of locations.flat_tree, for everybody and for a user who sees a subtree only."""
    from leakhub.authz.models import Grant

    a = world["actor"]
    other = loc.create_location(a, kind="site", code="", name="aachen")
    loc.create_location(a, kind="building", code="h0", name="Zeta", parent=world["site"])
    loc.create_location(a, kind="area", code="Z2", name="Zone", parent=world["hall"])
    loc.create_location(a, kind="area", code="z1", name="Zone", parent=world["hall"])
    loc.create_location(a, kind="building", code="", name="Lager", parent=other)
    ext = make_user("external")
    Grant.create(organization=org, user=ext, location=world["hall"], level="view")
    for actor in (a, Actor(organization=org, kind="user", user=ext)):
        expected = [(x.id, ("— " * x.depth) + x.label) for x in loc.flat_tree(actor)]
        assert loc.tree_options(actor) == expected
    assert len(loc.tree_options(Actor(organization=org, kind="user", user=ext))) == 3


def test_deep_page_keeps_the_order(world, admin, login):
    """The page's ids are chosen first, then read with their locations: same order and
    rows as sorting all leaks, for every sort."""
    for i in range(7):
        mk(world, rate_lpm=D(10 + i % 3), found_at=dt.datetime(2024, 3, 2 + i % 2, 9),
           priority=1 + i % 3)
    a = world["actor"]
    for sort in service.SORTS:
        for key in (sort, "-" + sort):
            every = [r.leak.id for r in service.list_leaks(
                a, service.parse_filter({"sort": key, "per_page": "100"})).rows]
            paged = []
            for page in (1, 2, 3):
                flt = service.LeakFilter(sort=key, page=page, per_page=25)
                flt.per_page = 3  # smaller than the offered sizes, to have pages
                paged += [r.leak.id for r in service.list_leaks(a, flt).rows]
            assert paged == every, key


def test_location_survey_and_user_pages_show_their_activity(world, admin, login, make_user,
                                                            config):
    from leakhub.users import service as users

    a = world["actor"]
    loc.update_location(a, world["hall"], expected_version=world["hall"].version, code="H1",
                        name="Halle Eins")
    sv.update_survey(a, world["survey"], expected_version=world["survey"].version,
                     name="Frühjahr 2024 (Nachmessung)", period_start=dt.date(2024, 3, 1),
                     scope=[world["site"].id])
    viewer = make_user("viewer", name="Viola Viewer")
    users.set_role(config, a, viewer, "editor")
    c = login(admin)
    for path, old, new in [
            (f"/locations/{world['hall'].id}", "Halle 1", "Halle Eins"),
            (f"/surveys/{world['survey'].id}", "Frühjahr 2024", "Frühjahr 2024 (Nachmessung)"),
            (f"/users/{viewer.id}", "viewer", "editor")]:
        html = c.get(path, base_url="https://localhost").get_data(as_text=True)
        section = html[html.index('data-testid="activity"'):]
        assert f'class="old">{old}</td>' in section and f'class="new">{new}</td>' in section, \
            path
    # a viewer reads the location's activity too; a user who cannot see it gets no page
    assert 'data-testid="activity"' in login(viewer).get(
        f"/locations/{world['hall'].id}", base_url="https://localhost").get_data(as_text=True)

