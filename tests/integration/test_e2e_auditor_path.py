"""The external auditor's path end to end (issue 18 part 3) in Chromium on a tablet: an
invited external user whose only grant is "edit" on one site signs in through Keycloak; his
home lists that site's planned survey (and not the survey of a site he has no grant on) with
"Record a leak"; the form opens with the survey chosen, offers himself as "Found by" and only
locations of his site; the leak is saved, found by him, in that survey; the surveys page offers
no "New survey" he could not submit, and the other site's survey is 404 for him."""
from __future__ import annotations

import datetime as dt
import re
import uuid

import pytest
from playwright.sync_api import expect, sync_playwright

from support.browser import TABLET, first_sign_in, launch
from support.kc import new_org
from support.stackctl import sql
from support.tokens import Person, api, invite

pytestmark = pytest.mark.e2e


def _created(resp) -> dict:
    assert resp.status_code == 201, resp.text
    return resp.json()


def test_external_auditor_with_a_site_grant_records_a_leak_from_his_home(stack, tmp_path):
    slug, admin_email, otp = new_org(stack, "aud")
    token = Person(slug, admin_email, otp).token(stack)
    today = dt.date.today().isoformat()
    mine = _created(api(stack, "POST", "/locations", token,
                        json={"kind": "site", "code": "NORD", "name": "Werk Nord"}))
    hall = _created(api(stack, "POST", "/locations", token,
                        json={"kind": "building", "code": "H2", "name": "Halle 2",
                              "parent": mine["id"]}))
    other = _created(api(stack, "POST", "/locations", token,
                         json={"kind": "site", "code": "SUED", "name": "Werk Süd"}))
    survey = _created(api(stack, "POST", "/surveys", token,
                          json={"name": "Begehung Nord 2026", "period_start": today,
                                "status": "planned", "scope": [mine["id"]]}))
    hidden = _created(api(stack, "POST", "/surveys", token,
                          json={"name": "Begehung Süd 2026", "period_start": today,
                                "status": "planned", "scope": [other["id"]]}))

    auditor = invite(stack, slug, "external")
    stack.leakctl("grant", "add", "--org", slug, "--email", auditor.email, "--location", "NORD",
                  "--level", "edit", "--note", "Audit order 4711")
    tag = f"A-{uuid.uuid4().hex[:5]}"

    with sync_playwright() as p:
        ctx = launch(p, stack.ca_dir, tmp_path / "chromium", viewport=TABLET, has_touch=True)
        try:
            page = ctx.new_page()
            page.set_default_timeout(20_000)
            page.goto(f"{stack.public_url}/login/{slug}")
            first_sign_in(page, slug, auditor.email, auditor.password)
            page.wait_for_url(re.compile(r".*/(home)?$"))

            # Home: his site's survey with the next step, the other site's not at all.
            rows = page.get_by_test_id("home-survey")
            expect(rows).to_have_count(1)
            expect(rows.first).to_contain_text("Begehung Nord 2026")
            assert "Begehung Süd" not in page.content()
            rows.first.get_by_test_id("home-record").tap()
            page.wait_for_url(re.compile(r".*/leaks/new\?survey=\d+"))

            # The form: survey chosen, himself as "Found by", only his site's locations.
            assert page.input_value("#f-survey") == str(survey["id"])
            found_by = page.locator("#f-found_by_user")
            me = found_by.locator("option", has_text=auditor.email.split("@")[0])
            expect(me).to_have_count(1)
            locations = page.locator("#f-location option").evaluate_all(
                "os => os.map(o => o.value).filter(v => v)")
            assert sorted(locations) == sorted([str(mine["id"]), str(hall["id"])])
            page.select_option("#f-location", str(hall["id"]))
            found_by.select_option(me.get_attribute("value"))
            page.fill("#f-tag", tag)
            page.fill("#f-rate_lpm", "8,5")
            page.fill("#f-pressure_bar", "6")
            page.get_by_test_id("save").tap()
            page.wait_for_url(re.compile(r".*/leaks/\d+$"))
            expect(page.get_by_test_id("leak-tag")).to_contain_text(tag)

            # No form offered that he cannot submit; the other site's survey is not his.
            page.goto(f"{stack.public_url}/surveys")
            expect(page.get_by_test_id("new-survey")).to_have_count(0)
            resp = page.goto(f"{stack.public_url}/surveys/{hidden['id']}")
            assert resp.status == 404
        finally:
            ctx.close()

    row = sql(stack, 'SELECT u.email, l.survey_id, l.location_id FROM leak l '
                     'JOIN "user" u ON u.id = l.found_by_user_id WHERE l.tag = %s', tag)
    assert row == [(auditor.email, survey["id"], hall["id"])]
