"""Issue 14: every page of the route matrix in Chromium, as a German-speaking administrator
signed in through the real Keycloak, is German and passes axe-core.

The crawl
- signs in (Keycloak's login page, one-time password → new password) an administrator invited
  into the operator organization (so the operator's pages, backups and system, are reached
  too), chooses "Deutsch" on the user's own page (/account/language: Leakhub and the Keycloak
  user's locale), and seeds data with German names: a site/building/area, a survey, leaks in
  several states with a photo, an energy settings row, a security finding, a second user with
  a grant, a device; the import review page is reached by uploading a German CSV;
- visits every GET page of tests/unit/app/test_route_matrix.py's MATRIX that the
  administrator gets with 200, ids from the seeded data (users.access with a leak named).
  Left out, each for a reason: downloads and machine endpoints (NOT_PAGES: static files,
  health, CSV/XLSX/PDF, photos, the JSON API; a route that answers with a file anyway, e.g.
  a JSON export, is listed in the summary as not a page) and /login (for a browser that
  signed in, a redirect through Keycloak, not a page). A new GET route in MATRIX is visited
  automatically; one needing an id the seed does not make fails the test until it is added
  to the seed.

What fails a page
- English on a German page: the visible text (document.body.innerText, the title, and the
  aria-label/title/placeholder/alt attributes a screen reader reads; not what the page marks
  as English with lang="en", the worker's and leakctl's lines on /admin/system) has an English
  catalog text. The English texts are the msgids of a fresh extraction of the source (as
  tests/unit/app/test_catalog.py extracts) that de/LC_MESSAGES/messages.po does not give as
  they are (no German yet, or German that differs), cut at their placeholders (%(name)s,
  %d); a piece counts when it has at least two words of two or more letters (single words
  such as "Status" or "Gas" are German too) and is not part of any German msgstr; it must
  appear as a whole phrase (word boundaries, case-sensitive).
- axe-core (pinned, scripts/fetch-axe) injected into each page: any violation of the rule
  tags wcag2a and wcag2aa fails, whatever its impact. Main pages are checked in English too.
  The results for wcag21a, wcag21aa and best-practice are listed in summary.json only.

Screenshots of the main pages at tablet size (768×1024, full page) go to
$LEAKHUB_TEST_ARTIFACTS/i18n-crawl (default <repo>/var/test-artifacts, ignored by git) with
summary.json: pages visited, wall time, per page the load and check times.
"""
from __future__ import annotations

import importlib.util
import json
import os
import re
import subprocess
import time
import uuid
from pathlib import Path

import pytest
from babel.messages.pofile import read_po
from playwright.sync_api import Error as PlaywrightError
from playwright.sync_api import sync_playwright

from support.browser import first_sign_in, goto, launch
from support.stackctl import REPO, VENV_BIN

pytestmark = pytest.mark.e2e

ARTIFACTS = Path(os.environ.get("LEAKHUB_TEST_ARTIFACTS") or REPO / "var" / "test-artifacts") \
    / "i18n-crawl"
TABLET_PORTRAIT = {"width": 768, "height": 1024}
AXE_TAGS = ["wcag2a", "wcag2aa"]
# Reported in summary.json only (not failing): WCAG 2.1 additions and axe's best practices.
AXE_ADVISORY_TAGS = ["wcag21a", "wcag21aa", "best-practice"]
CATALOG = REPO / "web" / "leakhub" / "translations" / "de" / "LC_MESSAGES" / "messages.po"
MATRIX_FILE = REPO / "tests" / "unit" / "app" / "test_route_matrix.py"
CATALOG_TEST = REPO / "tests" / "unit" / "app" / "test_catalog.py"

# GET routes that are not pages a person reads: files, health, machine interfaces.
NOT_PAGES = {"static", "home.healthz", "home.readyz", "audit.audit_csv",
             "exports.export_csv", "exports.export_xlsx", "photos.show", "photos.thumb",
             "reports.location", "reports.survey", "backups.download", "api.openapi_json"}
# Pages a signed-in browser does not see as such (see the module docstring).
NOT_VISITED = {"identity.login"}
# Pages whose id is made by the browser session: the import review (an upload's key).
BY_UPLOAD = {"imports.review"}
# 422 without a query, a page with one.
WITH_QUERY = {"users.access": "leak"}
# The pages screenshotted (and checked by axe-core in English as well).
MAIN = ["home.index", "dashboard.index", "leaks.index", "leaks.detail", "leaks.new",
        "leaks.edit", "locations.index", "locations.detail", "locations.energy",
        "surveys.index", "surveys.detail", "surveys.compare", "imports.upload",
        "imports.review", "users.index", "users.detail", "users.my_sessions",
        "users.org_settings", "security.index", "audit.audit_log", "devices.index",
        "ops.system", "backups.index"]

PLACEHOLDER = re.compile(r"%\(\w+\)[sdfr]|%[sdfr]|\{\w*\}")
WORD = re.compile(r"[A-Za-z]{2,}")

VISIBLE_TEXT = """() => {
  // Text marked as English (lang="en" inside the German page: the operator's log and status
  // lines on /admin/system, written by the worker and leakctl) is left out.
  const english = [...document.body.querySelectorAll('[lang="en"]')];
  const saved = english.map(el => [el, el.style.display]);
  english.forEach(el => { el.style.display = "none"; });
  const parts = [document.title, document.body.innerText];
  saved.forEach(([el, display]) => { el.style.display = display; });
  for (const el of document.querySelectorAll("[aria-label],[title],[placeholder],[alt]")) {
    if (el.closest('[lang="en"]')) continue;
    for (const a of ["aria-label", "title", "placeholder", "alt"]) {
      const v = el.getAttribute(a);
      if (v) parts.push(v);
    }
  }
  for (const el of document.querySelectorAll("input[type=submit],input[type=button]")) {
    parts.push(el.value);
  }
  return parts.join("\\n");
}"""

AXE_RUN = """async tags => {
  const r = await axe.run(document, {runOnly: {type: "tag", values: tags},
                                     resultTypes: ["violations"]});
  return r.violations.map(v => ({id: v.id, impact: v.impact, help: v.help,
                                 nodes: v.nodes.slice(0, 5).map(n => n.target.join(" "))}));
}"""


# ---------------------------------------------------------------- what is English

def english_phrases(po_path: Path = CATALOG) -> list[str]:
    """The English texts that must not appear on a German page (rule above): of a fresh
    extraction of the source (tests/unit/app/test_catalog.py's), so a new string that has no
    German translation yet counts too."""
    extracted = load_test_module(CATALOG_TEST, "catalog_test_of_the_crawl")._fresh_extraction()
    with po_path.open("rb") as fh:
        catalog = read_po(fh)
    german = [s for msg in catalog if msg.id
              for s in (msg.string if isinstance(msg.string, (list, tuple)) else (msg.string,))
              if s]
    english = set()
    for msg in extracted:
        if not msg.id:
            continue
        ids = msg.id if isinstance(msg.id, (list, tuple)) else (msg.id,)
        known = catalog.get(msg.id, context=msg.context)
        strs = () if known is None else (
            known.string if isinstance(known.string, (list, tuple)) else (known.string,))
        if any(strs) and set(ids) <= set(strs):
            continue                                   # German as it is ("Status", "Gas")
        for text in ids:
            for piece in PLACEHOLDER.split(text):
                piece = " ".join(piece.split()).strip(" .,:;·—–-()[]\"'“”„!?/")
                if len(WORD.findall(piece)) >= 2:
                    english.add(piece)
    german_text = "\n".join(" ".join(s.split()) for s in german)
    return sorted(p for p in english if p not in german_text)


def english_on(text: str, phrases: list[str]) -> list[str]:
    flat = " ".join(text.split())
    return [p for p in phrases
            if p in flat and re.search(r"(?<!\w)" + re.escape(p) + r"(?!\w)", flat)]


def test_the_english_rule_catches_english_and_spares_german():
    phrases = english_phrases()
    assert len(phrases) > 300, len(phrases)
    assert "Leaks found and repaired per month" in phrases
    assert english_on("Übersicht\nLeaks found and repaired per month\n", phrases)
    assert not english_on("Gefundene und reparierte Leckagen pro Monat · Status · Gas", phrases)


# ---------------------------------------------------------------- the matrix's pages

def load_test_module(path: Path, name: str):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def route_matrix() -> dict:
    return load_test_module(MATRIX_FILE, "route_matrix_of_the_crawl").MATRIX


def crawl_endpoints() -> list[str]:
    out = []
    for endpoint, methods in sorted(route_matrix().items()):
        get = methods.get("GET")
        if get is None or endpoint in NOT_PAGES or endpoint in NOT_VISITED \
                or endpoint.startswith("api."):
            continue
        if get["admin"] == "200" or endpoint in WITH_QUERY:
            out.append(endpoint)
    return out


SEED = r'''
import datetime as dt, io, json, sys
from decimal import Decimal as D
from PIL import Image
from flask import url_for
from leakhub.app import create_app
from leakhub.authz import Actor
from leakhub.authz.models import Grant
from leakhub.core.config import get_config
from leakhub.core.db import utcnow
from leakhub.departments import service as departments
from leakhub.devices.models import Device
from leakhub.exports import jobs as export_jobs
from leakhub.exports import service as exports
from leakhub.identity.models import User
from leakhub.leaks import service as leaks
from leakhub.locations import service as locations
from leakhub.orgs.models import Organization
from leakhub.photos.service import add_photos
from leakhub.plans import service as plans
from leakhub.security.models import Finding
from leakhub.surveys import service as surveys

args = json.loads(sys.argv[1])
app = create_app(migrate=False)
with app.test_request_context():
    org = Organization.get(Organization.slug == args["slug"])
    admin = User.get((User.organization == org) & (User.email == args["email"]))
    a = Actor(organization=org, kind="user", user=admin)
    n = args["run"]
    site = locations.create_location(a, kind="site", code=f"WN{n}", name=f"Werk Nord {n}")
    hall = locations.create_location(a, kind="building", code="H3", name="Halle 3",
                                     parent=site)
    area = locations.create_location(a, kind="area", code="MON", name="Montage", parent=hall)
    first = surveys.create_survey(a, name=f"Herbstbegehung {n}",
                                  period_start=dt.date(2024, 10, 1), scope=[site.id])
    survey = surveys.create_survey(a, name=f"Frühjahrsbegehung {n}",
                                   period_start=dt.date(2025, 3, 1), scope=[site.id])
    made = []
    for i, (loc, comp, status, rate) in enumerate([
            (area, "coupling", "open", "12.5"), (area, "hose", "open", "40"),
            (hall, "frl_unit", "to_review", "8"), (area, "condensate_trap", "repaired", "25"),
            (hall, "quick_disconnect", "deferred", "3.5"), (area, "valve", "verified", "18")]):
        leak = leaks.create_leak(
            a, tag=f"{n}-{i + 1}", location=loc.id, survey=survey.id,
            found_at=utcnow() - dt.timedelta(days=40 * i + 3), rate_lpm=D(rate),
            component=comp, priority=1 + i % 3, pressure_bar=D("6.5"),
            description=f"Leckage an {comp} in der Montage",
            status="to_review" if status == "to_review" else "open")
        if status in ("repaired", "verified"):
            leak = leaks.change_status(a, leak, "repaired",
                                       repaired_at=dt.date.today() - dt.timedelta(days=5),
                                       repaired_by="Instandhaltung", repair_cost=D("45.5"))
        if status == "verified":
            leak = leaks.change_status(a, leak, "verified", verification_note="nachgemessen")
        if status == "deferred":
            leak = leaks.change_status(a, leak, "deferred", note="Stillstand abwarten")
        made.append(leak)
    leaks.create_leak(a, tag=f"{n}-0", location=area.id, survey=first.id,
                      found_at=dt.datetime(2024, 10, 7, 9), rate_lpm=D("30"), component="hose")
    img = Image.new("RGB", (64, 48), (10, 120, 200))
    out = io.BytesIO()
    img.save(out, "PNG")
    photo = add_photos(a, made[0], [("kupplung.png", out.getvalue())])[0]
    settings = locations.create_settings(
        a, valid_from=dt.date(2020, 1, 1) + dt.timedelta(days=n % 1500),
        price_per_kwh=D("0.22"), currency="EUR", specific_power=D("6.4"),
        operating_hours=6000, co2_factor=D("0.38"), note="Strompreis 2024")
    now = utcnow()
    finding = Finding.create(organization=org, rule="lockout", severity="medium",
                             subject=f"user:{admin.id}", first_seen_at=now, last_seen_at=now,
                             count=1, details='{"label": "%s"}' % admin.email)
    target = User.create(organization=org, sub=f"crawl-target-{n}", role="editor",
                         email=f"monteur-{n}@example.com", name="Erika Monteur")
    grant = Grant.create(organization=org, user=target, location=site, level="edit",
                         note="Wartung Halle 3")
    group = departments.create_group(a, name=f"Instandhaltung Nord {n}")
    departments.add_member(a, group, target)
    plan_png = io.BytesIO()
    Image.new("RGB", (400, 300), (235, 235, 235)).save(plan_png, "PNG")
    plans.upload_plan(a, site, "Hallenplan.png", plan_png.getvalue())
    plans.set_pin(a, site, made[0].id, "0.25", "0.5")
    device = Device.create(organization=org, name=f"Leckagedetektor {n}",
                           client_id=f"device-crawl-{n}", model="LD-500", serial=f"SN{n}")
    export = export_jobs.request_export(a, leaks.parse_filter({}), fmt="xlsx",
                                       opts=exports.Options(), total=len(made) + 1)
    export.status = "running"          # written here, not by the worker
    export.save()
    export_jobs.run_job(export)
    values = {"leak_id": made[0].id, "job_id": export.uid, "loc_id": site.id,
              "location_id": site.id,
              "survey_id": survey.id, "photo_id": photo.id, "row_id": settings.id,
              "finding_id": finding.id, "tag": made[0].tag, "user_id": target.id,
              "grant_id": grant.id, "device_id": device.id, "slug": args["slug"],
              "group_id": group.id}
    urls, missing = {}, {}
    for rule in app.url_map.iter_rules():
        if rule.endpoint not in args["endpoints"]:
            continue
        lack = set(rule.arguments) - set(values)
        if lack:
            missing[rule.endpoint] = sorted(lack)
            continue
        urls[rule.endpoint] = url_for(rule.endpoint,
                                      **{k: values[k] for k in rule.arguments})
    print(json.dumps({"urls": urls, "missing": missing, "tag": made[0].tag,
                      "site": f"WN{n}"}))
'''

OPERATOR = r'''
from leakhub.core.config import get_config
print(get_config().first_org_slug)
'''


def py(stack, code: str, *args) -> str:
    proc = subprocess.run([str(VENV_BIN / "python"), "-c", code, *map(str, args)],
                          env=stack.env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, f"python snippet failed:\n{proc.stdout}\n{proc.stderr}"
    return proc.stdout.strip().splitlines()[-1]


def axe_source() -> str:
    proc = subprocess.run([str(REPO / "scripts" / "fetch-axe"), "--print-js"],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, f"scripts/fetch-axe failed:\n{proc.stderr}"
    return Path(proc.stdout.strip()).read_text()


def german_import_csv(tag: str, site: str) -> str:
    """A German survey file: German headers, a date dd.mm.yyyy, a decimal comma."""
    return ("Leckage-Nr.;Ortspfad;Gefunden am;Leckrate l/min;Bauteil;Status\r\n"
            f"{tag}-I;{site}/H3/MON;05.03.2025;12,5;Kupplung;offen\r\n")


# ---------------------------------------------------------------- the crawl

def test_every_page_is_german_and_accessible(stack, tmp_path):
    started = time.monotonic()
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    for old in ARTIFACTS.glob("*.png"):
        old.unlink()
    phrases = english_phrases()
    axe = axe_source()
    endpoints = crawl_endpoints()
    assert {"dashboard.index", "leaks.detail", "users.detail", "backups.index"} <= set(endpoints)

    operator = py(stack, OPERATOR)
    run = uuid.uuid4().int % 10**6
    email = f"crawl-{run}@example.com"
    invited = json.loads(stack.leakctl("user", "invite", "--org", operator, "--email", email,
                                       "--role", "admin", "--name", "Kim Krawl",
                                       "--json").stdout)
    otp = invited["one_time_password"]
    base = stack.public_url
    problems: list[str] = []
    timings: dict[str, dict] = {}
    downloads: list[str] = []
    advisory: dict[str, list[str]] = {}

    with sync_playwright() as p:
        # A German user's browser (Accept-Language, navigator.language). Chromium's own
        # widgets (date inputs, the file input) keep its UI language (en-US here).
        ctx = launch(p, stack.ca_dir, tmp_path / "chromium", viewport=TABLET_PORTRAIT,
                     locale="de-DE")
        page = ctx.new_page()
        page.set_default_timeout(60_000)   # a load of 15 on 2 cores once took > 30 s
        goto(page, f"{base}/login/{operator}")
        try:
            first_sign_in(page, operator, email, otp)
            page.wait_for_selector("[data-testid=org-name]")
        except (PlaywrightError, AssertionError):
            page.screenshot(path=str(ARTIFACTS / "sign-in-failed.png"), full_page=True)
            raise

        def choose_language(code: str) -> None:
            goto(page, f"{base}/account/sessions")
            page.select_option("#f-language", code)
            # Wait for the page the save redirects to: wait_for_load_state() alone returned
            # at once on the still-loaded form while the POST was under way (a busy CI run).
            with page.expect_navigation():
                page.get_by_test_id("save-language").click()
            page.wait_for_load_state()
            assert page.evaluate("document.documentElement.lang") == code

        choose_language("de")
        seeded = json.loads(py(stack, SEED, json.dumps({
            "slug": operator, "email": email, "run": run,
            "endpoints": [e for e in endpoints if e not in BY_UPLOAD]})))
        assert not seeded["missing"], (
            "pages of the route matrix with ids the crawl's seed does not make (add them "
            f"to SEED): {seeded['missing']}")
        urls = dict(seeded["urls"])
        urls["users.access"] += f"?leak={seeded['tag']}"

        # The import review page: reached by uploading a German file (session-bound key).
        goto(page, base + urls["imports.upload"])
        page.set_input_files("input[type=file]", files=[{
            "name": "begehung.csv", "mimeType": "text/csv",
            "buffer": german_import_csv(seeded["tag"], seeded["site"]).encode("utf-8")}])
        page.locator("form[enctype='multipart/form-data'] [type=submit]").first.click()
        page.wait_for_url(re.compile(r".*/leaks/import/[^/?#]+$"))
        urls["imports.review"] = page.url[len(base):]

        def check(endpoint: str, language: str) -> None:
            t0 = time.monotonic()
            try:
                resp = goto(page, base + urls[endpoint], wait_until="load")
            except PlaywrightError as exc:
                if "Download is starting" not in str(exc):
                    raise
                downloads.append(endpoint)     # a file, not a page (e.g. a JSON export)
                return
            status = resp.status if resp else None
            kind = (resp.headers.get("content-type") or "") if resp else ""
            if status == 200 and "text/html" not in kind:
                downloads.append(endpoint)
                return
            if status != 200:
                problems.append(f"{endpoint} ({language}): HTTP {status} {kind}")
                return
            loaded = time.monotonic() - t0
            if language == "de":
                assert page.evaluate("document.documentElement.lang") == "de", endpoint
                found = english_on(page.evaluate(VISIBLE_TEXT), phrases)
                if found:
                    problems.append(f"{endpoint}: English on the German page: {found[:8]}")
                if endpoint == "dashboard.index":   # the charts' month labels (canvas text)
                    months = page.evaluate("JSON.parse(document.getElementById("
                                           "'dashboard-data').textContent).trend.months")
                    if any(re.fullmatch(r"\d{4}-\d\d", m) for m in months) \
                            or not any(m.startswith("Dez.") for m in months):
                        problems.append(f"dashboard: chart months not German: {months}")
            page.evaluate(axe)
            for v in page.evaluate(AXE_RUN, AXE_TAGS):
                problems.append(f"{endpoint} ({language}): axe {v['id']} ({v['impact']}): "
                                f"{v['help']} at {v['nodes']}")
            for v in page.evaluate(AXE_RUN, AXE_ADVISORY_TAGS):
                advisory.setdefault(f"{v['id']} ({v['impact']})", []).append(
                    f"{language} {endpoint}")
            if endpoint in MAIN:
                page.screenshot(path=str(ARTIFACTS / f"{language}-{endpoint}.png"),
                                full_page=True)
            timings[f"{language} {endpoint}"] = {"load_s": round(loaded, 3),
                                                 "total_s": round(time.monotonic() - t0, 3)}

        # axe-core really runs: an image without a text alternative is reported.
        goto(page, base + urls["home.index"])
        page.evaluate(axe)
        page.evaluate("document.querySelector('main, body').insertAdjacentHTML("
                      "'beforeend', '<img src=\"/static/none.png\">')")
        assert "image-alt" in [v["id"] for v in page.evaluate(AXE_RUN, AXE_TAGS)]

        for endpoint in endpoints:
            check(endpoint, "de")
        german_pages = len(timings)
        choose_language("en")
        for endpoint in MAIN:
            if endpoint in urls:
                check(endpoint, "en")
        ctx.close()

    wall = time.monotonic() - started
    summary = {"pages_de": german_pages, "pages_en": len(timings) - german_pages,
               "wall_s": round(wall, 1), "load_average": os.getloadavg(),
               "axe_tags": AXE_TAGS, "english_phrases": len(phrases), "pages": timings,
               "not_pages": downloads, "axe_advisory_tags": AXE_ADVISORY_TAGS,
               "axe_advisory": advisory,
               "problems": problems}
    (ARTIFACTS / "summary.json").write_text(json.dumps(summary, indent=1))
    print(f"\ni18n crawl: {german_pages} German pages + {len(timings) - german_pages} English "
          f"(axe only), {wall:.1f} s wall, load average {os.getloadavg()[0]:.2f}; "
          f"files, not pages: {downloads}; "
          f"screenshots in {ARTIFACTS}")
    assert not problems, "\n".join(problems)
