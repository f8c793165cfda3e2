"""Every route of the application (UI and API) × every kind of caller → the declared outcome.

MATRIX below says, per endpoint and method, what each caller gets:

    admin manager editor viewer external pending anon other

- the six roles of organization A (external: without grants; pending: signed in, role None),
- anon: nobody signed in (UI: no session; API: no bearer token),
- other: the administrator of ANOTHER organization (B). Everything a URL names by id is
  created in organization A, so for every id-bearing route "other" must get 404 — never 403
  (which would confirm the id exists) and never data: the marker written into A's records
  must not appear in any response to B.

Outcomes: a status code ("200", "403", …), "3xx" (a redirect other than to sign-in) or
"login" (redirect to the sign-in page). UI callers are signed in through the session (the
test client's session_transaction) and POST with a valid CSRF token and no other fields; API
callers send a bearer token signed by a local key that the faked realm key endpoint publishes
(the real api.auth.authenticate runs) and an empty JSON object as body. Each case starts with fresh
records, and gets new ones after any state-changing call that succeeded, so a delete in one
case cannot change another.

A route missing from MATRIX fails test_every_route_is_in_the_matrix: add it here.
"""
from __future__ import annotations

import datetime as dt
import itertools
import re
import shutil
import tempfile
import time
import uuid
from decimal import Decimal as D
from pathlib import Path

import pytest

from leakhub.authz import Actor as _Actor
from leakhub.authz.models import UserGroup
from leakhub.devices.models import Device
from leakhub.exports import jobs as export_jobs
from leakhub.exports.models import ExportJob
from leakhub.imports.models import ImportPreset
from leakhub.leaks.models import Leak as _Leak
from leakhub.plans import service as _plans
from leakhub.surveys import service as _surveys
from leakhub.surveys.models import Survey as _Survey

ROLES = ("admin", "manager", "editor", "viewer", "external", "pending", "anon", "other")
STATE_CHANGING = ("POST", "PUT", "PATCH", "DELETE")

# Route arguments that name organization data (the other-organization rule applies).
ID_ARGUMENTS = re.compile(r"(_id|^key|^tag)$")
# Route arguments that are public by nature: an organization's sign-in slug, a static file.
PUBLIC_ARGUMENTS = {"slug", "filename"}
# Secure cookies: the test client must speak https.
BASE = "https://localhost"


def row(text: str) -> dict:
    values = text.split()
    assert len(values) == len(ROLES), text
    return dict(zip(ROLES, values, strict=False))


MEMBER_READ = "200 200 200 200 200 403 login 200"      # lists/pages every member sees
ID_READ = "200 200 200 200 404 403 login 404"          # one record of org A
CREATE_FORM = "200 200 200 403 200 403 login 200"      # model-level "create" allowed?
ADMIN_ONLY = "200 403 403 403 403 403 login 200"       # "manage"
AUDIT_ONLY = "200 200 403 403 403 403 login 200"       # "audit"
API_LIST = "200 200 200 200 200 403 401 200"
API_ID_READ = "200 200 200 200 404 403 401 404"

MATRIX: dict[str, dict[str, dict]] = {
    # ---------------------------------------------------------------- public / plumbing
    "home.healthz": {"GET": row("200 200 200 200 200 200 200 200")},
    "home.readyz": {"GET": row("503 503 503 503 503 503 503 503")},  # Keycloak unreachable
    "static": {"GET": row("200 200 200 200 200 200 200 200")},
    "identity.login": {"GET": row("200 200 200 200 200 200 200 200")},  # choose organization
    "identity.login_org": {"GET": row("3xx 3xx 3xx 3xx 3xx 3xx 3xx 3xx")},  # → Keycloak
    "identity.callback": {"GET": row("400 400 400 400 400 400 400 400")},  # no state
    "identity.backchannel_logout": {"POST": row("400 400 400 400 400 400 400 400")},
    "identity.logout": {"POST": row("3xx 3xx 3xx 3xx 3xx 3xx 3xx 3xx")},
    "identity.signed_out": {"GET": row("200 200 200 200 200 200 200 200")},
    "capture.service_worker": {"GET": row("200 200 200 200 200 200 200 200")},
    "capture.manifest": {"GET": row("200 200 200 200 200 200 200 200")},
    # ---------------------------------------------------------------- pages
    "home.index": {"GET": row(MEMBER_READ)},
    "capture.index": {"GET": row(CREATE_FORM)},
    "dashboard.index": {"GET": row(MEMBER_READ)},
    "audit.audit_log": {"GET": row(AUDIT_ONLY)},
    "audit.audit_csv": {"GET": row(AUDIT_ONLY)},
    "security.index": {"GET": row(ADMIN_ONLY)},
    "security.acknowledge": {"POST": row("3xx 403 403 403 403 403 login 404")},  # no comment
    # ---------------------------------------------------------------- locations
    "locations.index": {"GET": row(MEMBER_READ)},
    "locations.new": {"GET": row(CREATE_FORM), "POST": row("422 422 422 403 422 403 login 422")},
    "locations.detail": {"GET": row(ID_READ)},
    "locations.edit": {"GET": row("200 200 200 403 404 403 login 404"),
                       "POST": row("422 422 422 403 404 403 login 404")},
    "locations.delete": {"POST": row("3xx 3xx 3xx 403 404 403 login 404")},  # has children
    "locations.energy": {"GET": row(ADMIN_ONLY), "POST": row("422 403 403 403 403 403 login 422")},
    "locations.energy_edit": {"GET": row("200 403 403 403 403 403 login 404"),
                              "POST": row("422 403 403 403 403 403 login 404")},
    "reports.location": {"GET": row(ID_READ)},
    # Floor plans (issue 18): the world's site has one; POSTs carry no file/leak.
    "plans.show": {"GET": row(ID_READ)},
    "plans.image": {"GET": row(ID_READ)},
    "plans.upload": {"POST": row("422 422 422 403 404 403 login 404")},
    "plans.delete": {"POST": row("3xx 3xx 3xx 403 404 403 login 404")},
    "plans.pin": {"POST": row("422 422 422 422 404 403 login 404")},
    # ---------------------------------------------------------------- surveys
    "surveys.index": {"GET": row(MEMBER_READ)},
    # A new survey is reached by no grant: only roles that create everywhere (issue 18).
    "surveys.new": {"GET": row("200 200 200 403 403 403 login 200"),
                    "POST": row("422 422 422 403 403 403 login 422")},
    "surveys.detail": {"GET": row(ID_READ)},
    "surveys.edit": {"GET": row("200 200 200 403 404 403 login 404"),
                     "POST": row("422 422 422 403 404 403 login 404")},
    "surveys.delete": {"POST": row("3xx 3xx 3xx 403 404 403 login 404")},  # has leaks
    "surveys.compare": {"GET": row(ID_READ)},
    "surveys.tags": {"GET": row(ID_READ)},
    "reports.survey": {"GET": row(ID_READ)},
    # ---------------------------------------------------------------- leaks
    "leaks.index": {"GET": row(MEMBER_READ)},
    "leaks.new": {"GET": row(CREATE_FORM), "POST": row("422 422 422 403 422 403 login 422")},
    "leaks.detector_table": {"GET": row(ADMIN_ONLY),
                             "POST": row("3xx 403 403 403 403 403 login 3xx")},
    "leaks.detail": {"GET": row(ID_READ)},
    "leaks.by_tag": {"GET": row("3xx 3xx 3xx 3xx 404 403 login 404")},
    "leaks.edit": {"GET": row("200 200 200 403 404 403 login 404"),
                   "POST": row("422 422 422 403 404 403 login 404")},
    "leaks.status": {"POST": row("422 422 422 403 404 403 login 404")},
    "leaks.delete": {"POST": row("3xx 3xx 3xx 403 404 403 login 404")},
    "leaks.bulk_status": {"POST": row("3xx 3xx 3xx 403 3xx 403 login 3xx")},  # nothing chosen
    "exports.export_csv": {"GET": row(MEMBER_READ)},
    "exports.export_xlsx": {"GET": row(MEMBER_READ)},
    # A large export written by the worker: only the user who asked (A's admin) sees it.
    "exports.job": {"GET": row("200 404 404 404 404 403 login 404")},
    "exports.download": {"GET": row("200 404 404 404 404 403 login 404")},
    "imports.upload": {"GET": row(CREATE_FORM), "POST": row("422 422 422 403 422 403 login 422")},
    # A saved mapping preset (issue 18): who saved it (nobody here) or an administrator deletes.
    "imports.delete_preset": {"POST": row("3xx 403 403 403 403 403 login 404")},
    "imports.review": {"GET": row("200 200 200 403 200 403 login 404"),
                       "POST": row("200 200 200 403 200 403 login 404")},
    # ---------------------------------------------------------------- photos
    "photos.upload": {"POST": row("422 422 422 403 404 403 login 404")},  # no file
    "photos.show": {"GET": row(ID_READ)},
    "photos.thumb": {"GET": row(ID_READ)},
    "photos.delete": {"POST": row("3xx 3xx 3xx 403 404 403 login 404")},
    # ---------------------------------------------------------------- users, grants, settings
    "users.index": {"GET": row(ADMIN_ONLY)},
    "users.invite": {"GET": row(ADMIN_ONLY), "POST": row("422 403 403 403 403 403 login 422")},
    "users.detail": {"GET": row("200 403 403 403 403 403 login 404")},
    "users.set_role": {"POST": row("422 403 403 403 403 403 login 404")},  # no role sent
    "users.disable": {"POST": row("3xx 403 403 403 403 403 login 404")},
    "users.enable": {"POST": row("3xx 403 403 403 403 403 login 404")},
    "users.sign_out_user": {"POST": row("3xx 403 403 403 403 403 login 404")},
    "users.add_grant": {"POST": row("422 403 403 403 403 403 login 404")},  # nothing chosen
    "users.revoke_grant": {"POST": row("3xx 403 403 403 403 403 login 404")},
    "users.access": {"GET": row("422 403 403 403 403 403 login 404")},  # no leak named
    "users.org_settings": {"GET": row(ADMIN_ONLY),
                           "POST": row("422 403 403 403 403 403 login 422")},
    # one's own sessions: every signed-in user, pending ones too
    "users.my_sessions": {"GET": row("200 200 200 200 200 200 login 200")},
    # Departments (issue 15): the organization's administrators only; POSTs carry no values.
    "departments.index": {"GET": row(ADMIN_ONLY), "POST": row("422 403 403 403 403 403 login 422")},
    "departments.detail": {"GET": row("200 403 403 403 403 403 login 404"),
                           "POST": row("422 403 403 403 403 403 login 404")},
    "departments.delete": {"POST": row("3xx 403 403 403 403 403 login 404")},
    "departments.add_member": {"POST": row("422 403 403 403 403 403 login 404")},
    # the target user is no member; the world's grant belongs to a user, not the group
    "departments.remove_member": {"POST": row("404 403 403 403 403 403 login 404")},
    "departments.add_grant": {"POST": row("422 403 403 403 403 403 login 404")},
    "departments.revoke_grant": {"POST": row("404 403 403 403 403 403 login 404")},
    "users.end_session": {"POST": row("3xx 3xx 3xx 3xx 3xx 3xx login 3xx")},
    "users.end_all_sessions": {"POST": row("3xx 3xx 3xx 3xx 3xx 3xx login 3xx")},
    "users.my_language": {"POST": row("3xx 3xx 3xx 3xx 3xx 3xx login 3xx")},
    "users.signed_out_everywhere": {"GET": row("200 200 200 200 200 200 200 200")},
    # data protection (issue 15); Keycloak is unreachable here: unlock reports it (3xx)
    "privacy.unlock": {"POST": row("3xx 403 403 403 403 403 login 404")},
    "privacy.erase": {"POST": row("3xx 403 403 403 403 403 login 404")},  # not confirmed
    "privacy.export": {"GET": row("200 403 403 403 403 403 login 404")},
    "privacy.my_export": {"GET": row("200 200 200 200 200 200 login 200")},
    "privacy.org_privacy": {"POST": row("3xx 403 403 403 403 403 login 3xx")},  # nothing chosen
    # token settings (issue 15 part 7): an empty form is refused before Keycloak is asked,
    # the settings page comes back with the errors at the fields
    "users.org_tokens": {"POST": row("422 403 403 403 403 403 login 422")},
    # company directory: Keycloak is unreachable in unit tests, the page says so; an empty
    # form is refused before Keycloak is asked
    "directory.index": {"GET": row(ADMIN_ONLY)},
    "directory.save_ldap": {"POST": row("422 403 403 403 403 403 login 422")},
    "directory.test_ldap": {"POST": row("3xx 403 403 403 403 403 login 3xx")},
    "directory.remove_ldap": {"POST": row("3xx 403 403 403 403 403 login 3xx")},
    "directory.save_oidc": {"POST": row("422 403 403 403 403 403 login 422")},
    "directory.remove_oidc": {"POST": row("3xx 403 403 403 403 403 login 3xx")},
    "devices.index": {"GET": row(ADMIN_ONLY)},
    "devices.add": {"GET": row(ADMIN_ONLY), "POST": row("422 403 403 403 403 403 login 422")},
    # Keycloak is unreachable in unit tests: the change is rolled back, the page says so.
    "devices.disable": {"POST": row("3xx 403 403 403 403 403 login 404")},
    "devices.enable": {"POST": row("3xx 403 403 403 403 403 login 404")},
    # ---------------------------------------------------------------- backups (operator org A)
    # Administrators of the operator organization only; for everybody else these URLs do
    # not exist (404), so another organization's admin learns nothing about them.
    "backups.index": {"GET": row("200 403 403 403 403 403 login 404")},
    "backups.create": {"POST": row("3xx 403 403 403 403 403 login 404")},
    "backups.download": {"GET": row("200 403 403 403 403 403 login 404")},
    "ops.system": {"GET": row("200 403 403 403 403 403 login 404")},
    # ---------------------------------------------------------------- API (bearer tokens)
    "api.openapi_json": {"GET": row("200 200 200 200 200 200 200 200")},
    "api.list_locations": {"GET": row(API_LIST)},
    "api.create_location": {"POST": row("422 422 422 403 422 403 401 422")},
    "api.get_location": {"GET": row(API_ID_READ)},
    "api.patch_location": {"PATCH": row("428 428 428 403 404 403 401 404")},
    "api.delete_location": {"DELETE": row("409 409 409 403 404 403 401 404")},
    "api.list_surveys": {"GET": row(API_LIST)},
    "api.create_survey": {"POST": row("422 422 422 403 422 403 401 422")},
    "api.get_survey": {"GET": row(API_ID_READ)},
    "api.patch_survey": {"PATCH": row("428 428 428 403 404 403 401 404")},
    "api.delete_survey": {"DELETE": row("409 409 409 403 404 403 401 404")},
    "api.list_leaks": {"GET": row(API_LIST)},
    "api.create_leak": {"POST": row("422 422 422 403 422 403 401 422")},
    "api.get_leak": {"GET": row(API_ID_READ)},
    "api.patch_leak": {"PATCH": row("428 428 428 403 404 403 401 404")},
    "api.delete_leak": {"DELETE": row("204 204 204 403 404 403 401 404")},
    "api.change_status": {"POST": row("422 422 422 403 404 403 401 404")},
    "api.list_photos": {"GET": row(API_ID_READ)},
    "api.upload_photos": {"POST": row("415 415 415 403 404 403 401 404")},
    "api.get_photo": {"GET": row(API_ID_READ)},
    "api.get_dashboard": {"GET": row(API_LIST)},
    # device tokens only: every user token is refused
    "devices_api.ingest_findings": {"POST": row("403 403 403 403 403 403 401 403")},
    "api.capture_data": {"GET": row("200 200 200 403 200 403 401 200")},  # may create
}


# ---------------------------------------------------------------- the application

@pytest.fixture(scope="module")
def env(tmp_path_factory):
    """One app for the module (creating it per case would dominate the run time), with the
    realms' key endpoints faked: API tokens are signed by a local key."""
    from leakhub.core.config import Config, set_config
    from leakhub.core.secrets import ensure_all

    from support.realm import LocalRealm, signing_key

    # The database and uploads on tmpfs when there is one: ~800 requests, each committing.
    shm = Path("/dev/shm")
    home = Path(tempfile.mkdtemp(prefix="leakhub-matrix-", dir=shm)) if shm.is_dir() \
        else tmp_path_factory.mktemp("matrix")
    config = Config.from_env({"LEAKHUB_HOME": str(home),
                              "LEAKHUB_PUBLIC_URL": "https://leakhub.test",
                              "KEYCLOAK_URL": "http://127.0.0.1:9/auth",
                              "LEAKHUB_TESTING": "1", "LEAKHUB_ORG_SLUG": "acme"})
    ensure_all(config.secrets_dir)
    key = signing_key("matrix")
    realm = LocalRealm(key)
    mp = pytest.MonkeyPatch()
    from leakhub.api import auth
    from leakhub.identity import views as identity_views

    mp.setattr(auth, "realm_keys", lambda cfg, slug: realm)
    mp.setattr(identity_views, "realm_keys", lambda cfg, slug: realm)
    from leakhub.app import create_app

    app = create_app(config)
    yield {"app": app, "config": config, "key": key}
    mp.undo()
    set_config(None)
    shutil.rmtree(home, ignore_errors=True)


@pytest.fixture(scope="module")
def people(env):
    from leakhub.identity.models import User
    from leakhub.orgs.models import Organization

    org_a = Organization.create(slug="acme", name="ACME GmbH", oidc_client_secret="sa",
                                timezone="Europe/Berlin")
    org_b = Organization.create(slug="other", name="Other AG", oidc_client_secret="sb")
    roles = {"admin": "admin", "manager": "manager", "editor": "editor", "viewer": "viewer",
             "external": "external", "pending": None}
    users = {name: User.create(organization=org_a, sub=f"sub-{name}", email=f"{name}@a.test",
                               role=role) for name, role in roles.items()}
    users["other"] = User.create(organization=org_b, sub="sub-other", email="admin@b.test",
                                 role="admin")
    # A backup archive on disk (appliance-wide, shown to the operator organization's admins).
    from leakhub.backups import archive
    from leakhub.backups import inventory as backups
    from leakhub.backups.models import BackupRecord

    config = env["config"]
    name = archive.archive_name(dt.datetime(2024, 1, 2, 3, 4, 5), "manual")
    config.backup_dir.mkdir(parents=True, exist_ok=True)
    (config.backup_dir / name).write_bytes(b"not really an archive")
    backups.reconcile(config)
    backup = BackupRecord.get(BackupRecord.file_name == name)
    return {"a": org_a, "b": org_b, "users": users, "backup": backup}


_counter = itertools.count(1)


def make_world(people) -> dict:
    """Fresh records in organization A, each carrying a unique marker."""
    from leakhub.authz import Actor
    from leakhub.imports.views import staging
    from leakhub.leaks import service as leaks
    from leakhub.locations import service as locations
    from leakhub.photos import service as photos
    from leakhub.security.models import Finding
    from leakhub.surveys import service as surveys

    from support.reporting_data import png_bytes

    n = next(_counter)
    mark = f"MARK{uuid.uuid4().hex[:12]}"
    a = Actor(organization=people["a"], kind="user", user=people["users"]["admin"])
    site = locations.create_location(a, kind="site", code=f"S{n}", name=f"Werk {mark}")
    hall = locations.create_location(a, kind="building", code="H1", name=f"Halle {mark}",
                                     parent=site)
    survey = surveys.create_survey(a, name=f"Survey {mark}", period_start=dt.date(2024, 3, 1),
                                   scope=[site.id])
    leak = leaks.create_leak(a, location=hall.id, survey=survey.id,
                             found_at=dt.datetime(2024, 3, 2, 9), rate_lpm=D("20"),
                             description=f"Leak {mark}")
    photo = photos.add_photos(a, leak, [(f"{mark}.png", png_bytes())])[0]
    _plans.upload_plan(a, site, f"{mark}.png", png_bytes())
    settings = locations.create_settings(
        a, valid_from=dt.date(2000, 1, 1) + dt.timedelta(days=n), price_per_kwh=D("0.2"),
        currency="EUR", specific_power=D("6.4"), operating_hours=8000, co2_factor=D("0.4"),
        note=mark[:40])
    now = dt.datetime.utcnow()
    finding = Finding.create(organization=people["a"], rule="test", severity="low",
                             subject=f"user:{mark}", first_seen_at=now, last_seen_at=now,
                             count=1)
    from leakhub.authz.models import Grant
    from leakhub.identity.models import User

    target = User.create(organization=people["a"], sub=f"sub-target-{n}", role="viewer",
                         email=f"target-{n}@a.test", name=f"Target {mark}")
    grant = Grant.create(organization=people["a"], user=target, location=site, level="view",
                         note=mark[:40])
    group = UserGroup.create(organization=people["a"], name=f"Group {mark}")
    device = Device.create(organization=people["a"], name=f"D{n}", client_id=f"device-d{n}",
                           model=mark[:100])
    csv = f"tag,location,found_at,rate_lpm\nX{n},{mark},2024-03-01,5\n".encode()
    key = staging(people["a"]).put(csv)
    preset = ImportPreset.create(organization=people["a"], name=f"P {mark}",
                                 mapping='{"Tag": "tag"}')
    export = ExportJob.create(uid=uuid.uuid4().hex, organization=people["a"],
                              user=people["users"]["admin"], fmt="csv", status="done",
                              rows_done=1, rows_total=1, file_name=f"{n}-{mark}.csv")
    (export_jobs.exports_dir() / export.file_name).write_text(f"tag\n{mark}\n")
    return {"export": export, "mark": mark, "site": site, "hall": hall, "survey": survey,
            "leak": leak, "photo": photo, "settings": settings, "finding": finding,
            "import_key": key, "target": target, "grant": grant, "backup": people["backup"],
            "device": device, "group": group, "preset": preset}


def url_arguments(world, rule) -> dict:
    values = {"leak_id": world["leak"].id, "loc_id": world["site"].id,
              "location_id": world["site"].id, "survey_id": world["survey"].id,
              "photo_id": world["photo"].id, "row_id": world["settings"].id,
              "finding_id": world["finding"].id, "key": world["import_key"],
              "tag": world["leak"].tag, "user_id": world["target"].id,
              "grant_id": world["grant"].id, "backup_id": world["backup"].id,
              "device_id": world["device"].id, "job_id": world["export"].uid, "slug": "acme",
              "group_id": world["group"].id,
              "filename": "css/leakhub.css", "preset_id": world["preset"].id}
    missing = set(rule.arguments) - set(values)
    assert not missing, f"{rule.endpoint}: no test value for {missing}: add one in url_arguments"
    return {name: values[name] for name in rule.arguments}


def bearer(env, user) -> dict:
    from joserfc import jwt

    now = int(time.time())
    claims = {"iss": env["config"].issuer_for(user.organization.slug), "aud": "leakhub-api",
              "azp": "leakhub", "sub": user.sub, "iat": now, "exp": now + 300}
    return {"Authorization": "Bearer " + jwt.encode({"alg": "RS256", "kid": "matrix"}, claims,
                                                    env["key"])}


def call(env, people, world, rule, method, role) -> Response:  # noqa: F821
    from leakhub.imports.views import SESSION_KEY

    app = env["app"]
    with app.test_request_context():
        from flask import url_for
        url = url_for(rule.endpoint, **url_arguments(world, rule))
    client = app.test_client()
    user = people["users"].get(role)
    api = rule.rule.startswith("/api/")
    kwargs: dict = {"method": method, "base_url": BASE}
    if api:
        kwargs["headers"] = bearer(env, user) if user is not None else {}
        if method in STATE_CHANGING and method != "DELETE":
            kwargs["json"] = {}
    else:
        with client.session_transaction(base_url=BASE) as s:
            s["csrf"] = "t"
            if user is not None:
                s["org_id"] = user.organization_id
                s["_user_id"] = str(user.id)
                s["_fresh"] = True
                s[SESSION_KEY] = {world["import_key"]: {"org": people["a"].id,
                                                        "filename": "x.csv"}}
        if method in STATE_CHANGING:
            kwargs["data"] = {"csrf_token": "t"}
    return client.open(url, **kwargs)


def outcome(resp) -> str:
    code = resp.status_code
    if 300 <= code < 400 and code != 304:
        location = resp.headers.get("Location", "")
        if re.search(r"^(https?://[^/]+)?/login(\?|$)", location):
            return "login"
        return "3xx"
    return str(code)


def cases():
    for endpoint in sorted(MATRIX):
        for method in sorted(MATRIX[endpoint]):
            yield pytest.param(endpoint, method, id=f"{endpoint}-{method}")


# ---------------------------------------------------------------- tests

def test_every_route_is_in_the_matrix(env):
    app = env["app"]
    missing, methods_missing = [], []
    for rule in app.url_map.iter_rules():
        if rule.endpoint not in MATRIX:
            missing.append(f"{rule.endpoint} {rule.rule}")
            continue
        for method in rule.methods - {"HEAD", "OPTIONS"}:
            if method not in MATRIX[rule.endpoint]:
                methods_missing.append(f"{method} {rule.endpoint} {rule.rule}")
    assert not missing, "routes not in the access matrix (add them to MATRIX in " \
        "tests/unit/app/test_route_matrix.py): " + ", ".join(sorted(missing))
    assert not methods_missing, "methods not in the access matrix: " + ", ".join(methods_missing)
    endpoints = {r.endpoint for r in app.url_map.iter_rules()}
    stale = set(MATRIX) - endpoints
    assert not stale, f"MATRIX lists routes that no longer exist: {sorted(stale)}"


def test_matrix_declares_404_for_other_org_on_every_id_route(env):
    for rule in env["app"].url_map.iter_rules():
        ids = [a for a in rule.arguments if ID_ARGUMENTS.search(a)]
        others = set(rule.arguments) - set(ids) - PUBLIC_ARGUMENTS
        assert not others, f"{rule.endpoint}: classify the argument(s) {others}"
        if not ids or rule.endpoint not in MATRIX:
            continue
        for method, expected in MATRIX[rule.endpoint].items():
            assert expected["other"] == "404", (rule.endpoint, method)
            # and the 404 is about the organization: someone in A gets something else
            assert any(expected[r] != "404" for r in ("admin", "manager", "editor")), \
                (rule.endpoint, method)


@pytest.mark.parametrize("endpoint,method", list(cases()))
def test_route_matrix(env, people, endpoint, method):
    app = env["app"]
    rules = [r for r in app.url_map.iter_rules() if r.endpoint == endpoint]
    if not rules:
        pytest.fail(f"{endpoint} is in MATRIX but not a route any more")
    rule = rules[0]
    expected = MATRIX[endpoint][method]
    wrong = []
    world = None
    for role in ROLES:
        # Fresh records whenever the previous call may have changed them (a refused call
        # must not have changed anything).
        world = world or make_world(people)
        resp = call(env, people, world, rule, method, role)
        body = resp.get_data()  # consume streamed bodies inside this case
        resp.close()
        got = outcome(resp)
        if got != expected[role]:
            wrong.append(f"{role}: expected {expected[role]}, got {got}")
        if role == "other":
            assert world["mark"].encode() not in body, \
                f"{method} {endpoint}: organization A's data in a response to organization B"
        assert resp.status_code < 500 or endpoint == "home.readyz", \
            f"{method} {endpoint} as {role}: {resp.status_code}"
        if method in STATE_CHANGING and resp.status_code < 400:
            world = None
    assert not wrong, f"{method} {rule.rule} ({endpoint}): " + "; ".join(wrong)


def test_matrix_size(env):
    """Reported by the suite: routes × callers actually exercised."""
    cells = sum(len(methods) for methods in MATRIX.values()) * len(ROLES)
    rules = len(list(env["app"].url_map.iter_rules()))
    print(f"\nroute matrix: {rules} rules, {sum(len(m) for m in MATRIX.values())} "
          f"(route, method) pairs × {len(ROLES)} callers = {cells} cases")
    assert cells >= 8 * 60


def test_absurd_ids_never_give_a_server_error(env, people):
    """A 20-digit id on every id-bearing route, as organization A's admin: 404, never 500."""
    app = env["app"]
    world = make_world(people)
    errors = []
    for rule in app.url_map.iter_rules():
        if not any(a.endswith("_id") for a in rule.arguments):
            continue
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
            args = url_arguments(world, rule)
            path = rule.rule
            for name, value in args.items():
                huge = "99999999999999999999" if name.endswith("_id") else value
                path = re.sub(r"<(?:[^:>]+:)?" + name + ">", str(huge), path)
            client = app.test_client()
            user = people["users"]["admin"]
            with client.session_transaction(base_url=BASE) as s:
                s.update({"csrf": "t", "org_id": user.organization_id,
                          "_user_id": str(user.id), "_fresh": True})
            kwargs = {"method": method, "base_url": BASE}
            if rule.rule.startswith("/api/"):
                kwargs["headers"] = bearer(env, user)
                if method in STATE_CHANGING and method != "DELETE":
                    kwargs["json"] = {}
            elif method in STATE_CHANGING:
                kwargs["data"] = {"csrf_token": "t"}
            resp = client.open(path, **kwargs)
            resp.close()
            if resp.status_code >= 500 or resp.status_code == 405:
                errors.append(f"{method} {path}: {resp.status_code}")
    assert not errors, "\n".join(errors)


# ---------------------------------------------------------------- moving a leak (issue 12)
# Writes are authorized where they land: moving a leak into a location needs edit there
# (viewable without edit: 403 naming the field; not even viewable: the answer of an unknown
# id, 422 naming the field), and moving it out of a location needs edit there too. A refused
# move changes nothing. Web form and API PATCH answer alike.

@pytest.fixture
def moves(env, people):
    """Organization A: a leak at site W02 (in a survey), a target hall below site W03."""
    from leakhub.authz import Actor
    from leakhub.authz.models import Grant
    from leakhub.leaks import service as leaks
    from leakhub.locations import service as locations
    from leakhub.surveys import service as surveys

    n = next(_counter)
    a = Actor(organization=people["a"], kind="user", user=people["users"]["admin"])
    w02 = locations.create_location(a, kind="site", code=f"W02-{n}", name="Werk 2")
    w03 = locations.create_location(a, kind="site", code=f"W03-{n}", name="Werk 3")
    hall3 = locations.create_location(a, kind="building", code="H3", name="Halle 3", parent=w03)
    survey = surveys.create_survey(a, name=f"Survey move {n}", period_start=dt.date(2024, 3, 1),
                                   scope=[])
    leak = leaks.create_leak(a, location=w02.id, survey=survey.id,
                             found_at=dt.datetime(2024, 3, 2, 9), rate_lpm=D("20"))
    made = []

    def grant(role, level, location=None, survey=None):
        made.append(Grant.create(organization=people["a"], user=people["users"][role],
                                 location=location, survey=survey, level=level).id)

    mode = people["a"].security_mode
    yield {"w02": w02, "w03": w03, "hall3": hall3, "survey": survey, "leak": leak,
           "grant": grant}
    Grant.delete().where(Grant.id.in_(made)).execute()
    people["a"].security_mode = mode
    people["a"].save()


def _signed_in(env, user):
    client = env["app"].test_client()
    with client.session_transaction(base_url=BASE) as s:
        s.update({"csrf": "t", "org_id": user.organization_id, "_user_id": str(user.id),
                  "_fresh": True})
    return client


def _move(env, people, role, surface, leak, location_id):
    user = people["users"][role]
    if surface == "api":
        resp = env["app"].test_client().patch(
            f"/api/v1/leaks/{leak.id}", base_url=BASE, headers=bearer(env, user),
            json={"location": location_id, "version": leak.version})
        return resp, (resp.get_json() or {}).get("errors", {})
    resp = _signed_in(env, user).post(
        f"/leaks/{leak.id}/edit", base_url=BASE,
        data={"csrf_token": "t", "version": leak.version, "location": location_id,
              "rate_lpm": "20", "method": "device", "component": "other", "priority": "2"})
    body = resp.get_data(as_text=True)
    return resp, {name: True for name in ("location", "survey")
                  if f'data-testid="error-{name}"' in body}


MOVES = {
    # case: (web, API) outcome, the field named (None: the leak itself is refused)
    "into viewable, not editable": (("403", "403"), "location"),
    "into a location not seen": (("422", "422"), "location"),
    "into ungranted, mode 2 editor": (("403", "403"), "location"),
    "out of a view-only location": (("403", "403"), None),
    "out of a view-only location, leak editable via its survey": (("403", "403"), "location"),
    "between two edit grants": (("3xx", "200"), None),
}


@pytest.mark.parametrize("surface", ["web", "api"])
@pytest.mark.parametrize("case", list(MOVES))
def test_move_into_and_out_of(env, people, moves, surface, case):
    from leakhub.leaks.models import Leak

    grant, role = moves["grant"], "external"
    if case == "into viewable, not editable":
        grant("external", "edit", location=moves["w02"])
        grant("external", "view", location=moves["w03"])
    elif case == "into a location not seen":
        grant("external", "edit", location=moves["w02"])
    elif case == "into ungranted, mode 2 editor":
        people["a"].security_mode = 2
        people["a"].save()
        role = "editor"
        grant("editor", "edit", location=moves["w02"])
    elif case == "out of a view-only location":
        grant("external", "view", location=moves["w02"])
        grant("external", "edit", location=moves["w03"])
    elif case == "out of a view-only location, leak editable via its survey":
        grant("external", "view", location=moves["w02"])
        grant("external", "edit", survey=moves["survey"])
        grant("external", "edit", location=moves["w03"])
    else:
        grant("external", "edit", location=moves["w02"])
        grant("external", "edit", location=moves["w03"])
    (web, api), field = MOVES[case]
    leak = moves["leak"]
    resp, errors = _move(env, people, role, surface, leak, moves["hall3"].id)
    assert outcome(resp) == (api if surface == "api" else web), resp.get_data(as_text=True)
    assert resp.status_code < 500
    after = Leak.get_by_id(leak.id)
    if outcome(resp) in ("200", "3xx"):
        assert after.location_id == moves["hall3"].id
        assert after.survey_id == moves["survey"].id  # not sent: kept
        return
    assert (after.location_id, after.version) == (moves["w02"].id, leak.version), \
        "a refused move changed the leak"
    if field is not None:
        assert field in errors, errors
    if case == "into a location not seen":
        # the same answer as for an id that does not exist: nothing about the location leaks
        _resp, unknown = _move(env, people, role, surface, leak, 2147483000)
        assert _resp.status_code == resp.status_code
        if surface == "api":
            assert unknown == errors


@pytest.mark.parametrize("surface", ["web", "api"])
def test_recording_a_leak_into_a_location_without_edit_is_refused(env, people, moves, surface):
    from leakhub.leaks.models import Leak

    moves["grant"]("external", "edit", location=moves["w02"])
    moves["grant"]("external", "view", location=moves["w03"])
    user = people["users"]["external"]
    count = Leak.select().where(Leak.location == moves["hall3"]).count()
    if surface == "api":
        resp = env["app"].test_client().post(
            "/api/v1/leaks", base_url=BASE, headers=bearer(env, user),
            json={"location": moves["hall3"].id, "found_at": "2024-03-02T09:00:00Z",
                  "rate_lpm": 3})
        assert resp.status_code == 403
        assert "location" in resp.get_json()["errors"]
    else:
        resp = _signed_in(env, user).post(
            "/leaks/new", base_url=BASE,
            data={"csrf_token": "t", "location": moves["hall3"].id, "found_at":
                  "2024-03-02T09:00", "rate_lpm": "3", "method": "device",
                  "component": "other", "priority": "2", "status": "open"})
        assert resp.status_code == 403
        assert 'data-testid="error-location"' in resp.get_data(as_text=True)
    assert Leak.select().where(Leak.location == moves["hall3"]).count() == count


@pytest.mark.parametrize("surface", ["web", "api"])
def test_a_survey_the_user_cannot_see_is_kept_when_editing_the_leak(env, people, moves,
                                                                     surface):
    """An external user with edit on the leak's site but no grant on its survey: the edit
    form shows the survey as kept (no "— none —" to wipe it), the API answers 200 to a PATCH
    that does not touch it, and the survey stays; trying to remove it is refused."""
    from leakhub.leaks.models import Leak

    moves["grant"]("external", "edit", location=moves["w02"])
    user = people["users"]["external"]
    leak = moves["leak"]
    if surface == "api":
        client = env["app"].test_client()
        resp = client.patch(f"/api/v1/leaks/{leak.id}", base_url=BASE,
                            headers=bearer(env, user),
                            json={"description": "checked again", "version": leak.version})
        assert resp.status_code == 200, resp.get_data(as_text=True)
        assert resp.get_json()["survey"] == moves["survey"].id
        refused = client.patch(f"/api/v1/leaks/{leak.id}", base_url=BASE,
                               headers=bearer(env, user),
                               json={"survey": None, "version": leak.version + 1})
        assert refused.status_code == 403
        assert "survey" in refused.get_json()["errors"]
    else:
        client = _signed_in(env, user)
        page = client.get(f"/leaks/{leak.id}/edit", base_url=BASE).get_data(as_text=True)
        assert 'data-testid="kept-survey"' in page
        assert 'name="survey"' not in page
        resp = client.post(f"/leaks/{leak.id}/edit", base_url=BASE,
                           data={"csrf_token": "t", "version": leak.version,
                                 "location": moves["w02"].id, "rate_lpm": "20",
                                 "method": "device", "component": "other", "priority": "2",
                                 "description": "checked again"})
        assert outcome(resp) == "3xx", resp.get_data(as_text=True)
    after = Leak.get_by_id(leak.id)
    assert after.description == "checked again"
    assert after.survey_id == moves["survey"].id


def test_an_auditor_the_user_cannot_see_is_kept_when_editing_the_survey(env, people, moves):
    """An external user with edit on a survey sees no user list: the survey form shows its
    auditor as kept (no "— external or none —" to wipe it) and saving keeps it."""
    from leakhub.surveys.models import Survey

    survey = moves["survey"]
    Survey.update(auditor_user=people["users"]["admin"]).where(Survey.id == survey.id).execute()
    moves["grant"]("external", "edit", survey=survey)
    client = _signed_in(env, people["users"]["external"])
    page = client.get(f"/surveys/{survey.id}/edit", base_url=BASE).get_data(as_text=True)
    assert 'data-testid="kept-auditor_user"' in page
    assert 'name="auditor_user"' not in page
    current = Survey.get_by_id(survey.id)
    resp = client.post(f"/surveys/{survey.id}/edit", base_url=BASE,
                       data={"csrf_token": "t", "version": current.version,
                             "name": current.name, "period_start": "2024-03-01",
                             "status": "in_progress", "notes": "second walk"})
    assert outcome(resp) == "3xx", resp.get_data(as_text=True)[:2000]
    after = Survey.get_by_id(survey.id)
    assert after.notes == "second walk" and after.status == "in_progress"
    assert after.auditor_user_id == people["users"]["admin"].id


# ---------------------------------------------------------------- the auditor's path (issue 18)
# An external auditor with a grant on a site only: the site's surveys are his (the one scope
# mechanism, authz.scope, reaches a survey whose scope covers a granted location), his home
# page lists them with "Record a leak", he may name himself as finder, and no button leads
# to a form he cannot submit.

def _site_survey(people, moves):
    a = _Actor(organization=people["a"], kind="user", user=people["users"]["admin"])
    return _surveys.create_survey(a, name=f"Walk {moves['w02'].code}",
                                  period_start=dt.date(2024, 3, 1), status="in_progress",
                                  scope=[moves["w02"].id])


def test_a_site_grant_shows_the_sites_survey_and_the_auditor_records_into_it(env, people,
                                                                           moves):
    survey = _site_survey(people, moves)
    user = people["users"]["external"]
    moves["grant"]("external", "edit", location=moves["w02"])
    client = _signed_in(env, user)
    assert survey.name in client.get("/surveys", base_url=BASE).get_data(as_text=True)
    assert client.get(f"/surveys/{survey.id}", base_url=BASE).status_code == 200
    other = moves["survey"]  # no scope: not reached by the site grant
    assert client.get(f"/surveys/{other.id}", base_url=BASE).status_code == 404
    home = client.get("/", base_url=BASE).get_data(as_text=True)
    assert f'/leaks/new?survey={survey.id}' in home and 'data-testid="home-record"' in home
    form = client.get(f"/leaks/new?survey={survey.id}", base_url=BASE).get_data(as_text=True)
    assert re.search(rf'<option value="{user.id}"[^>]*selected', form), "himself as finder"
    resp = client.post("/leaks/new", base_url=BASE, data={
        "csrf_token": "t", "location": moves["w02"].id, "survey": survey.id,
        "found_at": "2024-03-02T09:00", "rate_lpm": "3", "method": "device",
        "component": "other", "priority": "2", "status": "open", "found_by_user": user.id,
        "another": "1"})
    assert outcome(resp) == "3xx", resp.get_data(as_text=True)[:2000]
    leak = _Leak.select().where(_Leak.survey == survey.id).get()
    assert leak.found_by_user_id == user.id
    # "Save and record another" keeps survey, location and finder.
    again = resp.headers["Location"]
    assert f"survey={survey.id}" in again and f"location={moves['w02'].id}" in again
    assert f"found_by_user={user.id}" in again
    # The API enforces the same: himself as finder is accepted there too.
    api = env["app"].test_client().post(
        "/api/v1/leaks", base_url=BASE, headers=bearer(env, user),
        json={"location": moves["w02"].id, "survey": survey.id, "rate_lpm": 2,
              "found_at": "2024-03-02T09:00:00Z", "found_by_user": user.id})
    assert api.status_code == 201, api.get_data(as_text=True)
    # He may not edit the survey itself through the site grant.
    assert client.get(f"/surveys/{survey.id}/edit", base_url=BASE).status_code == 403


def test_no_create_button_without_a_place_to_create(env, people, moves):
    survey = _site_survey(people, moves)
    user = people["users"]["external"]
    moves["grant"]("external", "view", location=moves["w02"])
    client = _signed_in(env, user)
    page = client.get("/surveys", base_url=BASE).get_data(as_text=True)
    assert survey.name in page and 'data-testid="new-survey"' not in page
    assert 'data-testid="new-leak"' not in client.get("/leaks", base_url=BASE).get_data(
        as_text=True)
    home = client.get("/", base_url=BASE).get_data(as_text=True)
    assert survey.name in home and 'data-testid="home-record"' not in home
    detail = client.get(f"/surveys/{survey.id}", base_url=BASE).get_data(as_text=True)
    assert f"/leaks/new?survey={survey.id}" not in detail
    # Even with edit on the site "New survey" is not offered: a new survey would be reached
    # by none of his grants. The form is refused up front (403), not after typing (404).
    moves["grant"]("external", "edit", location=moves["w02"])
    assert 'data-testid="new-survey"' not in client.get("/surveys", base_url=BASE).get_data(
        as_text=True)
    assert client.get("/surveys/new", base_url=BASE).status_code == 403
    count = _Survey.select().count()
    resp = client.post("/surveys/new", base_url=BASE, data={
        "csrf_token": "t", "name": "Mine", "period_start": "2024-04-01", "status": "planned",
        "scope": moves["w02"].id})
    assert resp.status_code == 403
    assert _Survey.select().count() == count
    # ... while "Record a leak" is offered now, and works.
    home = client.get("/", base_url=BASE).get_data(as_text=True)
    assert 'data-testid="home-record"' in home
