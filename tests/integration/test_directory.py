"""Company directory (issue 15): a real OpenLDAP server (Debian's slapd, started by the test as
an unprivileged child process, tests/support/ldap.py) federated into an organization's realm
with `leakctl directory ldap`, and a second Keycloak realm acting as the external OpenID
Connect provider behind `leakctl directory oidc`. Sign-ins go through the real Keycloak login
pages with a plain HTTP client (support.kc), the same flow as the other login tests."""
from __future__ import annotations

import html
import json
import re
import secrets
import uuid

import pytest
from playwright.sync_api import expect, sync_playwright

from leakhub.core.secrets import read_secret
from leakhub.identity.keycloak_admin import KeycloakAdmin

from support import ldap
from support.browser import launch
from support.forms import Browser, location_of
from support.kc import new_org, sign_in, start_login, submit_password
from support.stackctl import sql

SERVICE_CLIENT_ID = "leakhub-service"


@pytest.fixture(scope="session")
def slapd():
    """One OpenLDAP server for the session (start and stop bounded in time). Missing slapd
    is a failure, not a skip: scripts/install brings it (scripts/apt-packages.txt)."""
    assert ldap.available(), "slapd and ldap-utils are not installed (scripts/install)"
    server = ldap.Slapd.start()
    try:
        yield server
    finally:
        server.stop()


def _admin(stack) -> KeycloakAdmin:
    # through the app's reader: secret files may be stored encrypted
    secret = read_secret(stack.home / "secrets", "keycloak-service-client-secret")
    return KeycloakAdmin(stack.keycloak_url, SERVICE_CLIENT_ID, secret)


def _secret_file(tmp_path, text, name="secret"):
    path = tmp_path / name
    path.write_text(text + "\n")
    path.chmod(0o600)
    return str(path)


def _federate(stack, slug, slapd, tmp_path, *, secret=ldap.ADMIN_PASSWORD, check=True):
    return stack.leakctl(
        "directory", "ldap", "set", "--org", slug, "--preset", "openldap", "--url", slapd.url,
        "--bind-dn", ldap.ADMIN_DN, "--bind-secret-file", _secret_file(tmp_path, secret),
        "--users-dn", ldap.PEOPLE_DN, "--groups-dn", ldap.GROUPS_DN,
        "--user-filter", ldap.LOCK_FILTER, "--json", check=check)


def _signed_in(resp, stack) -> bool:
    return resp.url.startswith(stack.public_url) and "/auth/realms/" not in resp.url


def test_directory_users_sign_in_with_their_directory_password(stack, slapd, tmp_path):
    slug, _email, _otp = new_org(stack, "d")
    out = _federate(stack, slug, slapd, tmp_path)
    shown = json.loads(out.stdout[out.stdout.index("{"):])
    assert shown["connection_url"] == slapd.url and shown["edit_mode"] == "READ_ONLY"
    assert shown["bind_secret"] == "set" and ldap.ADMIN_PASSWORD not in out.stdout
    assert "connection and bind OK" in stack.leakctl("directory", "ldap", "test",
                                                     "--org", slug).stdout

    # anna signs in with her directory password; as a new user she has no rights yet
    http = stack.requests_session()
    resp = submit_password(http, start_login(http, stack, slug), "anna",
                           ldap.PEOPLE["anna"]["password"])
    assert _signed_in(resp, stack), resp.url
    assert 'data-testid="waiting"' in resp.text
    row = sql(stack, "SELECT u.role, u.email FROM \"user\" u JOIN organization o "
                     "ON o.id = u.organization_id WHERE o.slug = %s AND u.email = %s",
              slug, ldap.PEOPLE["anna"]["mail"])
    assert row == [(None, ldap.PEOPLE["anna"]["mail"])]
    # granted by an administrator, she sees the organization
    stack.leakctl("user", "set-role", "--org", slug, "--email", ldap.PEOPLE["anna"]["mail"],
                  "--role", "viewer")
    assert f"Org {slug}" in http.get(f"{stack.public_url}/").text

    # the LDAP group became a Keycloak group with her in it
    kc = _admin(stack)
    users = kc._json("GET", f"/admin/realms/{slug}/users",
                     params={"username": "anna", "exact": "true"})
    groups = kc._json("GET", f"/admin/realms/{slug}/users/{users[0]['id']}/groups")
    assert [g["name"] for g in groups] == [ldap.GROUP]
    assert users[0]["federationLink"]
    # the optional full synchronisation imports the other directory user as well
    synced = json.loads(stack.leakctl("directory", "ldap", "sync", "--org", slug,
                                      "--json").stdout)
    assert synced.get("failed") == 0, synced
    assert kc._json("GET", f"/admin/realms/{slug}/users",
                    params={"username": "bert", "exact": "true"})

    # a wrong password is refused
    http2 = stack.requests_session()
    resp = submit_password(http2, start_login(http2, stack, slug), "anna", "wrong-Pass-1")
    assert not _signed_in(resp, stack)

    # the bind secret is in Keycloak only: not in Leakhub's database, audit or logs
    audit = sql(stack, "SELECT a.action, a.changes FROM audit_entry a JOIN organization o "
                       "ON o.id = a.organization_id WHERE o.slug = %s AND a.action LIKE "
                       "'directory.%%' ORDER BY a.seq", slug)
    assert [a for a, _ in audit] == ["directory.ldap_created", "directory.ldap_synced"]
    assert ldap.ADMIN_PASSWORD not in json.dumps([c for _, c in audit], default=str)
    for log in stack.logs_dir.glob("*.log"):
        assert ldap.ADMIN_PASSWORD not in log.read_text(errors="replace"), log


def test_a_disabled_directory_user_cannot_sign_in(stack, slapd, tmp_path):
    slug, _email, _otp = new_org(stack, "d")
    _federate(stack, slug, slapd, tmp_path)
    http = stack.requests_session()
    resp = submit_password(http, start_login(http, stack, slug), "bert",
                           ldap.PEOPLE["bert"]["password"])
    assert _signed_in(resp, stack), resp.url
    slapd.lock("bert")      # OpenLDAP ppolicy: locked until an administrator unlocks
    try:
        assert not slapd.can_bind("bert", ldap.PEOPLE["bert"]["password"])
        http = stack.requests_session()
        resp = submit_password(http, start_login(http, stack, slug), "bert",
                               ldap.PEOPLE["bert"]["password"])
        assert not _signed_in(resp, stack), resp.url
        assert "/auth/realms/" + slug in resp.url
    finally:
        slapd.modify(f"dn: uid=bert,{ldap.PEOPLE_DN}\nchangetype: modify\n"
                     "delete: pwdAccountLockedTime\n")


def test_a_wrong_bind_secret_is_a_clear_error(stack, slapd, tmp_path):
    slug, _email, _otp = new_org(stack, "d")
    wrong = _secret_file(tmp_path, "not-the-secret", "wrong")
    # before saving: test a candidate secret against the stored settings
    _federate(stack, slug, slapd, tmp_path)
    out = stack.leakctl("directory", "ldap", "test", "--org", slug, "--bind-secret-file", wrong,
                        check=False)
    assert out.returncode == 1
    assert out.stderr.startswith("leakctl: error: The directory at " + slapd.url)
    assert "bind as " + ldap.ADMIN_DN in out.stderr and "\n" == out.stderr[-1:]
    assert "not-the-secret" not in out.stderr
    # saved with the wrong secret: the stored settings fail the test the same way
    _federate(stack, slug, slapd, tmp_path, secret="not-the-secret")
    out = stack.leakctl("directory", "ldap", "test", "--org", slug, check=False)
    assert out.returncode == 1
    assert "refused the bind as " + ldap.ADMIN_DN + ": the bind DN or the bind secret is " \
        "wrong" in out.stderr
    # a server that is not there: the connection is named
    stack.leakctl("directory", "ldap", "set", "--org", slug, "--url", "ldap://127.0.0.1:9")
    out = stack.leakctl("directory", "ldap", "test", "--org", slug, check=False)
    assert out.returncode == 1 and "ldap://127.0.0.1:9 refused the connection" in out.stderr
    # bad input names the option; no secret on the command line
    out = stack.leakctl("directory", "ldap", "set", "--org", slug, "--url", "http://x",
                        "--users-dn", "nodn", check=False)
    assert out.returncode == 1
    assert "--url:" in out.stderr and "--users-dn:" in out.stderr
    out = stack.leakctl("directory", "ldap", "set", "--org", slug, "--bind-secret", "x",
                        check=False)
    assert out.returncode == 2
    assert "connection and bind OK" not in out.stdout
    out = stack.leakctl("directory", "ldap", "remove", "--org", slug, "--yes")
    assert "directory removed" in out.stdout
    assert "no directory configured" in stack.leakctl("directory", "ldap", "show",
                                                      "--org", slug).stdout


def test_the_admin_page_configures_and_tests_the_directory(stack, slapd):
    slug, email, otp = new_org(stack, "d")
    http = stack.requests_session()
    resp, _password = sign_in(http, stack, slug, email, otp)
    app = Browser(stack, http)
    assert 'data-testid="directory-link"' in app.page("/organization/settings")
    form = app.form("/organization/directory", "/organization/directory/ldap")
    form.set("preset", "openldap").set("connection_url", slapd.url)
    form.set("bind_dn", ldap.ADMIN_DN).set("bind_secret", ldap.ADMIN_PASSWORD)
    form.set("users_dn", ldap.PEOPLE_DN).set("groups_dn", ldap.GROUPS_DN)
    form.set("user_filter", ldap.LOCK_FILTER)
    assert location_of(app.submit(form)).endswith("/organization/directory")
    page = app.page("/organization/directory")
    assert slapd.url in page and ldap.ADMIN_PASSWORD not in page
    tested = app.submit(app.form("/organization/directory", "/organization/directory/ldap/test"),
                        allow_redirects=True)
    assert "Connection and bind to the directory succeeded." in tested.text
    shown = json.loads(stack.leakctl("directory", "ldap", "show", "--org", slug,
                                     "--json").stdout)
    assert shown["users_dn"] == ldap.PEOPLE_DN and shown["groups_dn"] == ldap.GROUPS_DN
    audit = sql(stack, "SELECT a.actor_kind FROM audit_entry a JOIN organization o "
                       "ON o.id = a.organization_id WHERE o.slug = %s AND a.action = "
                       "'directory.ldap_created'", slug)
    assert audit == [("user",)]
    # a directory user can sign in right away
    other = stack.requests_session()
    resp = submit_password(other, start_login(other, stack, slug), "anna",
                           ldap.PEOPLE["anna"]["password"])
    assert _signed_in(resp, stack), resp.url


@pytest.mark.e2e
def test_in_the_browser_a_directory_user_signs_in_and_a_locked_one_cannot(stack, slapd,
                                                                          tmp_path):
    slug, _email, _otp = new_org(stack, "d")
    _federate(stack, slug, slapd, tmp_path)
    slapd.lock("bert")
    try:
        with sync_playwright() as p:
            ctx = launch(p, stack.ca_dir, tmp_path / "chromium")
            page = ctx.new_page()
            page.goto(f"{stack.public_url}/login/{slug}")
            page.fill("#username", "anna")
            page.fill("#password", ldap.PEOPLE["anna"]["password"])
            page.locator("#kc-login").click()
            # no rights yet (generous timeouts: the machine's 2 cores are shared)
            expect(page.get_by_test_id("waiting")).to_be_visible(timeout=30_000)
            page.screenshot(path=str(tmp_path / "directory-user.png"))
            ctx.clear_cookies()
            page.goto(f"{stack.public_url}/login/{slug}")
            page.fill("#username", "bert")
            page.fill("#password", ldap.PEOPLE["bert"]["password"])
            page.locator("#kc-login").click()
            expect(page.get_by_text("Invalid username or password.")).to_be_visible(
                timeout=30_000)
            page.screenshot(path=str(tmp_path / "locked-user.png"))
            assert f"/auth/realms/{slug}/" in page.url
            ctx.close()
    finally:
        slapd.modify(f"dn: uid=bert,{ldap.PEOPLE_DN}\nchangetype: modify\n"
                     "delete: pwdAccountLockedTime\n")


# ------------------------------------------------------------------ OIDC brokering

@pytest.fixture
def external_realm(stack):
    """A second realm on the same Keycloak, standing in for Entra ID: one confidential
    client for the broker and one user. Deleted afterwards."""
    kc = _admin(stack)
    slug = f"ext{uuid.uuid4().hex[:8]}"
    client_secret = secrets.token_urlsafe(24)
    user = {"username": "carla", "email": f"carla@{slug}.example.com", "firstName": "Carla",
            "lastName": "Conrad", "password": "Carla-Ext-Pass-1"}
    kc.create_realm({
        "realm": slug, "enabled": True, "sslRequired": "external",
        "clients": [{"clientId": "leakhub-broker", "enabled": True, "publicClient": False,
                     "secret": client_secret, "standardFlowEnabled": True,
                     "directAccessGrantsEnabled": False, "redirectUris": ["*"],
                     "protocol": "openid-connect"}],
        "users": [{"username": user["username"], "email": user["email"], "enabled": True,
                   "emailVerified": True, "firstName": user["firstName"],
                   "lastName": user["lastName"],
                   "credentials": [{"type": "password", "value": user["password"],
                                    "temporary": False}]}]})
    try:
        yield slug, client_secret, user
    finally:
        kc.delete_realm(slug)


def test_brokered_sign_in_through_an_external_oidc_provider(stack, external_realm, tmp_path):
    ext, client_secret, user = external_realm
    slug, _email, _otp = new_org(stack, "o")
    out = stack.leakctl(
        "directory", "oidc", "set", "--org", slug, "--alias", "entra",
        "--display-name", "Partner account", "--issuer", f"{stack.public_url}/auth/realms/{ext}",
        "--client-id", "leakhub-broker",
        "--client-secret-file", _secret_file(tmp_path, client_secret),
        # Keycloak reads the discovery document over the internal network, so its token and
        # key requests stay there too (Entra ID: the issuer's own URL, the default)
        "--discovery-url", f"{stack.keycloak_url}/realms/{ext}/.well-known/openid-configuration",
        "--json")
    shown = json.loads(out.stdout)
    assert shown["alias"] == "entra" and shown["client_secret"] == "set"
    assert client_secret not in out.stdout
    listed = stack.leakctl("directory", "oidc", "show", "--org", slug).stdout
    assert "entra" in listed and client_secret not in listed

    http = stack.requests_session()
    page = start_login(http, stack, slug)
    link = re.search(r'href="([^"]*/broker/entra/login[^"]*)"', page.text)
    assert link, "no 'Partner account' button on the sign-in page"
    assert "Partner account" in page.text
    resp = http.get(html.unescape(link.group(1)) if link.group(1).startswith("http") else
                    stack.public_url + html.unescape(link.group(1)), allow_redirects=True)
    assert f"/realms/{ext}/" in resp.url, resp.url
    resp = submit_password(http, resp, user["username"], user["password"])
    assert _signed_in(resp, stack), (resp.url, resp.text[:3000])
    assert 'data-testid="waiting"' in resp.text
    rows = sql(stack, "SELECT u.role FROM \"user\" u JOIN organization o "
                      "ON o.id = u.organization_id WHERE o.slug = %s AND u.email = %s",
               slug, user["email"])
    assert rows == [(None,)]
    audit = sql(stack, "SELECT a.action FROM audit_entry a JOIN organization o "
                       "ON o.id = a.organization_id WHERE o.slug = %s AND a.action LIKE "
                       "'directory.%%'", slug)
    assert audit == [("directory.oidc_created",)]
    assert "removed" in stack.leakctl("directory", "oidc", "remove", "--org", slug,
                                      "--alias", "entra").stdout


def test_an_ldap_group_maps_to_a_leakhub_group_whose_grant_applies(stack, slapd, tmp_path):
    """Departments (issue 15 part 2): the LDAP group "maintenance" reaches Leakhub as the
    Keycloak group /maintenance in the ID token's `groups` claim; the Leakhub group mapped to
    it gets anna as a member at sign-in, and its grant applies. An administrator's removal
    takes effect at the next request; the directory's removal at the next sign-in."""
    slug, _email, _otp = new_org(stack, "g")
    csv = tmp_path / "leaks.csv"
    csv.write_text("Tag,Location,Found at,Leak rate l/min\n701,BER/H1,2024-03-01,12.5\n")
    stack.leakctl("import", "leaks", "--org", slug, "--create-locations", "--json", str(csv))
    _federate(stack, slug, slapd, tmp_path)
    stack.leakctl("group", "create", "--org", slug, "--name", "Instandhaltung",
                  "--kc-group", f"/{ldap.GROUP}")
    stack.leakctl("group", "grant", "--org", slug, "--name", "Instandhaltung",
                  "--location", "BER", "--level", "view")
    mail = ldap.PEOPLE["anna"]["mail"]

    def anna():
        http = stack.requests_session()
        resp = submit_password(http, start_login(http, stack, slug), "anna",
                               ldap.PEOPLE["anna"]["password"])
        assert _signed_in(resp, stack), resp.url
        return http

    def members():  # read directly: one leakctl process less per check
        return sql(stack, "SELECT u.email, m.source FROM user_group_member m JOIN \"user\" u "
                          "ON u.id = m.user_id JOIN organization o ON o.id = m.organization_id "
                          "WHERE o.slug = %s", slug)

    def sees_leak(http) -> bool:
        resp = http.get(f"{stack.public_url}/leaks/tag/701", allow_redirects=True)
        assert resp.status_code in (200, 404), resp.status_code
        return resp.status_code == 200 and "701" in resp.text

    http = anna()
    assert members() == [(mail, "directory")]
    stack.leakctl("user", "set-role", "--org", slug, "--email", mail, "--role", "external")
    assert sees_leak(http)  # only the group's grant gives an external user anything
    explained = json.loads(stack.leakctl("user", "access", "--org", slug, "--email", mail,
                                         "--leak", "701", "--json").stdout)
    assert explained["decisions"][0]["allowed"] is True
    assert "Instandhaltung" in explained["decisions"][0]["reason"]

    # an administrator removes her: the very next request is refused
    stack.leakctl("group", "remove-member", "--org", slug, "--name", "Instandhaltung",
                  "--email", mail)
    assert not sees_leak(http)
    # the directory still has her in the group: the next sign-in brings her back
    http = anna()
    assert sees_leak(http)
    # the directory drops her from the group: the next sign-in removes the membership
    group_dn = f"cn={ldap.GROUP},{ldap.GROUPS_DN}"
    slapd.modify(f"dn: {group_dn}\nchangetype: modify\nreplace: member\n"
                 f"member: uid=bert,{ldap.PEOPLE_DN}\n")
    try:
        http = anna()
        assert members() == []
        assert not sees_leak(http)
    finally:
        slapd.modify(f"dn: {group_dn}\nchangetype: modify\nreplace: member\n"
                     f"member: uid=anna,{ldap.PEOPLE_DN}\n")
    audit = sql(stack, "SELECT a.action FROM audit_entry a JOIN organization o "
                       "ON o.id = a.organization_id WHERE o.slug = %s AND a.action LIKE "
                       "'group.%%' ORDER BY a.seq", slug)
    assert [a for (a,) in audit] == ["group.member_added", "group.member_removed",
                                     "group.member_added", "group.member_removed"]
