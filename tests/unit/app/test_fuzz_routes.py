"""Fuzzing every state-changing route (issue 12): random form fields — non-ASCII, huge, empty,
numbers, dates, ids — into every POST route of the application (UI: a signed-in
administrator with a valid CSRF token; API: the administrator's bearer token and the same
fields as JSON; PATCH/DELETE too) give a status below 500: a success or a clear 4xx, never an
unhandled exception. The field names are every field the application's parsers read.
Bounded: a few examples per route, the whole test well under 90 s."""
from __future__ import annotations

import collections
import datetime as dt
import io
import re
import time
from decimal import Decimal as D
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from joserfc import jwt

from leakhub.api import auth
from leakhub.authz import Actor
from leakhub.authz.models import Grant
from leakhub.identity import views as identity_views
from leakhub.identity.models import User
from leakhub.imports.views import SESSION_KEY, staging
from leakhub.leaks import service as leaks
from leakhub.locations import service as locations
from leakhub.photos import service as photos
from leakhub.security.models import Finding
from leakhub.surveys import service as surveys

from support.realm import LocalRealm, signing_key
from support.reporting_data import BASE, png_bytes

WEB = Path(__file__).resolve().parents[3] / "web" / "leakhub"
STATE_CHANGING = {"POST", "PUT", "PATCH", "DELETE"}
EXAMPLES_PER_ROUTE = 5


def field_names() -> list[str]:
    """Every field name the parsers and views read (Fields helpers, request.form, JSON)."""
    names = set()
    pattern = re.compile(r'(?:\bf|fields)\.[a-z_]+\("([a-z_0-9]+)"|request\.(?:form|json|files)'
                         r'\.(?:get|getlist)\("([a-z_0-9]+)"|name="([a-z_0-9]+)"')
    for path in list(WEB.rglob("*.py")) + list(WEB.rglob("*.html")):
        for m in pattern.finditer(path.read_text(encoding="utf-8")):
            names.add(next(g for g in m.groups() if g))
    names.discard("csrf_token")
    return sorted(names) + [f"col_{i}" for i in range(4)]


FIELDS = field_names()
value = st.one_of(
    st.text(max_size=40),
    st.text(alphabet=st.characters(min_codepoint=0x80, max_codepoint=0x2FFF), max_size=20),
    st.sampled_from(["", " ", "0", "-1", "1", "2", "99999999999999999999", "1e308", "NaN",
                     "12,5", "1.234,5", "2024-02-30", "31.12.2024", "2024-03-01T09:15",
                     "open", "repaired", "admin", "external", "view", "edit", "site",
                     "building", "area", "EUR", "Europe/Berlin", "commit", "preview", "3",
                     "../../etc/passwd", "<script>x</script>", "\x00", "ä" * 300]),
    st.integers(-2**70, 2**70).map(str),
    st.integers(1, 60).map(lambda n: "x" * (n * 5000)),
)
form = st.dictionaries(st.sampled_from(FIELDS), value, max_size=8)
json_value = st.one_of(value, st.integers(-2**70, 2**70), st.floats(), st.booleans(),
                       st.none(), st.lists(st.integers(-5, 10**6), max_size=3))
json_body = st.dictionaries(st.sampled_from(FIELDS), json_value, max_size=8)


@pytest.fixture
def world(app, org, make_user, monkeypatch):
    key = signing_key("fuzz")
    realm = LocalRealm(key)
    monkeypatch.setattr(auth, "realm_keys", lambda cfg, slug: realm)
    monkeypatch.setattr(identity_views, "realm_keys", lambda cfg, slug: realm)
    admin = make_user("admin")
    a = Actor(organization=org, kind="user", user=admin)
    site = locations.create_location(a, kind="site", code="S1", name="Werk")
    hall = locations.create_location(a, kind="building", code="H1", name="Halle", parent=site)
    survey = surveys.create_survey(a, name="Survey", period_start=dt.date(2024, 3, 1),
                                   scope=[site.id])
    leak = leaks.create_leak(a, location=hall.id, survey=survey.id,
                             found_at=dt.datetime(2024, 3, 2, 9), rate_lpm=D("20"))
    photo = photos.add_photos(a, leak, [("p.png", png_bytes())])[0]
    settings_row = locations.create_settings(
        a, valid_from=dt.date(2001, 1, 1), price_per_kwh=D("0.2"), currency="EUR",
        specific_power=D("6.4"), operating_hours=8000, co2_factor=D("0.4"))
    now = dt.datetime.utcnow()
    finding = Finding.create(organization=org, rule="test", severity="low", subject="user:x",
                             first_seen_at=now, last_seen_at=now, count=1)
    target = User.create(organization=org, sub="sub-target", role="viewer",
                         email="target@acme.test")
    grant = Grant.create(organization=org, user=target, location=site, level="view")
    import_key = staging(org).put(b"tag,location,found_at,rate_lpm\nX1,S1,2024-03-01,5\n")
    ids = {"leak_id": leak.id, "loc_id": site.id, "location_id": hall.id,
           "survey_id": survey.id, "photo_id": photo.id, "row_id": settings_row.id,
           "finding_id": finding.id, "key": import_key, "tag": leak.tag, "user_id": target.id,
           "grant_id": grant.id, "slug": org.slug}
    now_s = int(time.time())
    claims = {"iss": app.config["LEAKHUB"].issuer_for(org.slug), "aud": "leakhub-api",
              "azp": "leakhub", "sub": admin.sub, "iat": now_s, "exp": now_s + 3600}
    token = jwt.encode({"alg": "RS256", "kid": "fuzz"}, claims, key)
    return {"admin": admin, "ids": ids, "import_key": import_key, "org": org,
            "bearer": {"Authorization": "Bearer " + token}}


def routes(app):
    for rule in sorted(app.url_map.iter_rules(), key=lambda r: r.rule):
        for method in sorted(rule.methods & STATE_CHANGING):
            yield rule, method


FUZZ = settings(max_examples=EXAMPLES_PER_ROUTE, deadline=None, database=None,
                suppress_health_check=list(HealthCheck))


def test_random_fields_into_every_state_changing_route(app, world):
    started = time.monotonic()
    seen, failures = [], []
    statuses = {"api": collections.Counter(), "ui": collections.Counter()}

    def fuzz(method, url, api, rule):
        """A bounded number of random bodies into one route (defined outside the loop below so
        that it binds this route, not the loop's variables)."""
        @FUZZ
        @given(fields=json_body if api else form, upload=st.one_of(
            st.none(), st.binary(max_size=2000), st.just(png_bytes())))
        def one(fields, upload):
            client = app.test_client()
            kwargs = {"method": method, "base_url": BASE}
            if api:
                kwargs["headers"] = world["bearer"]
                if method != "DELETE":
                    kwargs["json"] = fields
            else:
                with client.session_transaction(base_url=BASE) as s:
                    s["csrf"] = "t"
                    s["org_id"] = world["org"].id
                    s["_user_id"] = str(world["admin"].id)
                    s["_fresh"] = True
                    s[SESSION_KEY] = {world["import_key"]: {"org": world["org"].id,
                                                            "filename": "x.csv"}}
                data = dict(fields, csrf_token="t")
                if upload is not None:
                    for name in ("file", "photos"):
                        data[name] = (io.BytesIO(upload), "upload.png")
                kwargs["data"] = data
            resp = client.open(url, **kwargs)
            statuses["api" if api else "ui"][resp.status_code] += 1
            if resp.status_code >= 500:
                failures.append((method, rule.rule, resp.status_code, fields))
            assert resp.status_code < 500, (method, rule.rule, resp.status_code, fields)

        one()

    for rule, method in routes(app):
        with app.test_request_context():
            args = {a: world["ids"].get(a, 1) for a in rule.arguments}
            url = app.url_map.bind("leakhub.test").build(rule.endpoint, args, method=method)
        api = rule.rule.startswith("/api/")
        seen.append(f"{method} {rule.rule}")
        fuzz(method, url, api, rule)
    assert len(seen) >= 40 and not failures
    # The callers were signed in and got past CSRF and authentication: the fuzz reached the
    # views (validation errors, successes), not only the doors.
    for kind, counts in statuses.items():
        reached = sum(n for code, n in counts.items() if code not in (401, 403))
        assert reached > sum(counts.values()) / 2, (kind, counts)
    assert time.monotonic() - started < 90
