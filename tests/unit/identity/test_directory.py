"""Company directory (issue 15): input checks, the Keycloak representations (Keycloak 26.7
key names), the audited services and the admin page. Keycloak is replaced by a recorder; the
integration test (tests/integration/test_directory.py) runs the real Keycloak and slapd."""
import json
import logging

import pytest
from werkzeug.exceptions import Forbidden

from leakhub.audit.models import AuditEntry
from leakhub.core.validation import ValidationError
from leakhub.identity import directory

from support.reporting_data import BASE

SECRET = "Bind-s3cret-never-stored"
FORM = {"preset": "openldap", "connection_url": "ldap://ldap.example.com:389",
        "bind_dn": "cn=admin,dc=example,dc=com", "users_dn": "ou=people,dc=example,dc=com",
        "groups_dn": "ou=groups,dc=example,dc=com", "user_filter": "(!(pwdAccountLockedTime=*))",
        "sync_minutes": "0"}


class FakeDirectory:
    """Records what would be sent to Keycloak; keeps one federation like Keycloak does."""

    def __init__(self):
        self.component = None
        self.sent = []
        self.providers = {}

    def find_ldap(self, realm):
        return self.component, None

    def save_ldap(self, realm, s):
        rep = directory.ldap_component(s, "realm-id")
        self.sent.append(rep)
        stored = dict(rep, id="c1", config=dict(rep["config"]))
        if self.component is not None and s.bind_secret is None:   # Keycloak keeps it
            stored["config"]["bindCredential"] = self.component["config"]["bindCredential"]
        self.component = stored
        return "c1"

    def remove_ldap(self, realm):
        found, self.component = self.component is not None, None
        return found

    def identity_providers(self, realm):
        return list(self.providers.values())

    def discover(self, realm, url):
        return {"authorizationUrl": "https://idp.example.com/authorize",
                "tokenUrl": "https://idp.example.com/token",
                "jwksUrl": "https://idp.example.com/keys", "issuer": "ignored"}

    def save_identity_provider(self, realm, rep):
        self.sent.append(rep)
        self.providers[rep["alias"]] = rep

    def remove_identity_provider(self, realm, alias):
        return self.providers.pop(alias, None) is not None


@pytest.fixture
def kc(monkeypatch):
    fake = FakeDirectory()
    monkeypatch.setattr(directory, "_admin", lambda config: fake)
    return fake


def test_bad_input_names_every_field():
    with pytest.raises(ValidationError) as err:
        directory.check_ldap({"preset": "novell", "connection_url": "http://x", "bind_dn": "x",
                              "users_dn": "", "user_filter": "(a=b", "sync_minutes": "-1",
                              "bind_secret": "a\x00b", "username_attribute": "1bad"},
                             secret_required=True)
    assert set(err.value.errors) == {"preset", "connection_url", "bind_dn", "users_dn",
                                     "user_filter", "sync_minutes", "bind_secret",
                                     "username_attribute"}
    with pytest.raises(ValidationError) as err:
        directory.check_ldap(dict(FORM, connection_url="ldaps://dc1:636", start_tls="on"),
                             secret_required=False)
    assert set(err.value.errors) == {"start_tls"}


def test_presets_fill_the_usual_attributes():
    ad = directory.check_ldap(dict(FORM, preset="ad", groups_dn=""), secret_required=False)
    rep = directory.ldap_component(ad, "rid")
    c = rep["config"]
    assert (rep["providerId"], rep["providerType"], rep["parentId"]) == (
        "ldap", "org.keycloak.storage.UserStorageProvider", "rid")
    assert c["vendor"] == ["ad"] and c["usernameLDAPAttribute"] == ["sAMAccountName"]
    assert c["rdnLDAPAttribute"] == ["cn"] and c["uuidLDAPAttribute"] == ["objectGUID"]
    assert c["userObjectClasses"] == ["person, organizationalPerson, user"]
    assert c["editMode"] == ["READ_ONLY"] and c["cachePolicy"] == ["NO_CACHE"]
    assert c["bindCredential"] == [directory.SECRET_MASK]   # unchanged secret is kept
    assert c["fullSyncPeriod"] == c["changedSyncPeriod"] == ["-1"]
    ol = directory.check_ldap(dict(FORM, bind_secret=SECRET + "\n", sync_minutes="15"),
                              secret_required=True)
    c = directory.ldap_component(ol, "rid")["config"]
    assert c["vendor"] == ["other"] and c["usernameLDAPAttribute"] == ["uid"]
    assert c["uuidLDAPAttribute"] == ["entryUUID"] and c["bindCredential"] == [SECRET]
    assert c["customUserSearchFilter"] == ["(!(pwdAccountLockedTime=*))"]
    assert c["changedSyncPeriod"] == ["900"] and c["fullSyncPeriod"] == ["86400"]
    mapper = directory.group_mapper(ol, "c1")
    assert mapper["providerId"] == "group-ldap-mapper" and mapper["parentId"] == "c1"
    assert mapper["config"]["groups.dn"] == ["ou=groups,dc=example,dc=com"]
    assert mapper["config"]["mode"] == ["READ_ONLY"]
    assert mapper["config"]["group.object.classes"] == ["groupOfNames"]
    assert SECRET not in repr(ol)


def test_set_ldap_is_audited_without_the_secret(kc, actor):
    with pytest.raises(ValidationError) as err:   # the first time the secret is needed
        directory.set_ldap(None, actor, dict(FORM))
    assert set(err.value.errors) == {"bind_secret"}
    shown = directory.set_ldap(None, actor, dict(FORM, bind_secret=SECRET))
    assert shown["bind_secret"] == "set" and shown["groups_dn"] == ""   # fake: no mapper
    assert shown["connection_url"] == FORM["connection_url"]
    directory.set_ldap(None, actor, dict(FORM, users_dn="ou=staff,dc=example,dc=com"))
    assert kc.sent[-1]["config"]["bindCredential"] == [directory.SECRET_MASK]
    entries = list(AuditEntry.select().where(AuditEntry.action.startswith("directory."))
                   .order_by(AuditEntry.seq))
    assert [e.action for e in entries] == ["directory.ldap_created", "directory.ldap_changed"]
    assert json.loads(entries[0].changes)["bind_secret_changed"] is True
    assert json.loads(entries[1].changes)["bind_secret_changed"] is False
    assert all(SECRET not in e.changes for e in entries)
    assert directory.remove_ldap(None, actor) is True
    assert directory.remove_ldap(None, actor) is False
    assert AuditEntry.select().where(AuditEntry.action == "directory.ldap_removed").count() == 1


def test_only_administrators(make_actor, kc):
    for role in ("manager", "editor", "viewer", "external"):
        with pytest.raises(Forbidden):
            directory.set_ldap(None, make_actor(role), dict(FORM, bind_secret=SECRET))
    assert kc.sent == []


def test_oidc_provider(kc, actor):
    with pytest.raises(ValidationError) as err:
        directory.check_oidc({"alias": "Bad Alias", "issuer": "http://idp.example.com",
                              "client_id": ""}, secret_required=True)
    assert set(err.value.errors) == {"alias", "issuer", "client_id", "client_secret"}
    values = {"alias": "entra", "issuer": "https://login.microsoftonline.com/t-1/v2.0/",
              "client_id": "app-1", "client_secret": SECRET}
    shown = directory.set_oidc(None, actor, values)
    rep = kc.sent[-1]
    assert rep["providerId"] == "oidc" and rep["alias"] == "entra"
    assert rep["config"]["issuer"] == "https://login.microsoftonline.com/t-1/v2.0"
    assert rep["config"]["tokenUrl"] == "https://idp.example.com/token"
    assert rep["config"]["pkceEnabled"] == "true" and rep["config"]["validateSignature"] == \
        "true"
    assert rep["firstBrokerLoginFlowAlias"] == "first broker login"
    assert shown == {"alias": "entra", "display_name": "Company account", "enabled": True,
                     "issuer": "https://login.microsoftonline.com/t-1/v2.0",
                     "client_id": "app-1", "client_secret": "set",
                     "authorization_url": "https://idp.example.com/authorize"}
    directory.set_oidc(None, actor, dict(values, client_secret=None))   # kept
    assert kc.sent[-1]["config"]["clientSecret"] == directory.SECRET_MASK
    actions = [e.action for e in AuditEntry.select().where(
        AuditEntry.action.startswith("directory.")).order_by(AuditEntry.seq)]
    assert actions == ["directory.oidc_created", "directory.oidc_changed"]
    assert all(SECRET not in e.changes for e in AuditEntry.select())
    assert directory.remove_oidc(None, actor, "entra") is True


def test_admin_page_saves_and_never_shows_the_secret(actor, login, kc, caplog):
    caplog.set_level(logging.DEBUG)
    c = login(actor.user)
    page = c.get("/organization/directory", base_url=BASE).get_data(as_text=True)
    assert "No directory is connected." in page and 'name="csrf_token"' in page
    resp = c.post("/organization/directory/ldap", base_url=BASE,
                  data=dict(FORM, csrf_token="t", bind_secret=SECRET))
    assert resp.status_code == 302, resp.get_data(as_text=True)[:500]
    page = c.get("/organization/directory", base_url=BASE).get_data(as_text=True)
    assert FORM["connection_url"] in page and SECRET not in page
    bad = c.post("/organization/directory/ldap", base_url=BASE,
                 data=dict(FORM, csrf_token="t", connection_url="ftp://x"))
    assert bad.status_code == 422 and 'data-testid="error-connection_url"' in \
        bad.get_data(as_text=True)
    assert SECRET not in caplog.text
    settings = c.get("/organization/settings", base_url=BASE).get_data(as_text=True)
    assert 'data-testid="directory-link"' in settings
