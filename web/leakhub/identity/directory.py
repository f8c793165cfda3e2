"""The company directory of an organization (issue 15): Keycloak user federation with LDAP /
Active Directory, and identity brokering to an external OpenID Connect provider (Entra ID).

Everything lives in the organization's Keycloak realm; Leakhub stores none of it (no row, no
secret): the connection URL, bind DN and bind secret are a Keycloak *component*
(providerId ``ldap``, providerType ``org.keycloak.storage.UserStorageProvider``, named
:data:`LDAP_NAME`), the group mapping a child component (``group-ldap-mapper``), the external
provider a Keycloak identity provider (providerId ``oidc``). Reading the settings back asks
Keycloak, which answers secrets as ``**********``.

Every change is an audit event (``directory.*``) naming what changed, never the secret.

Users who arrive through the directory are Leakhub users like any other who signed in without
an invitation: their first sign-in creates a user with no role ("waiting for an
administrator"), so they see nothing until an administrator gives a role or grants.

Disabled directory users: Active Directory's userAccountControl is read by Keycloak's
"MSAD account controls" mapper, which Keycloak adds itself for the ``ad`` vendor (a disabled
account is disabled in Keycloak, and AD refuses its bind anyway). For OpenLDAP the user
filter (e.g. ``(!(pwdAccountLockedTime=*))`` with the ppolicy overlay) hides disabled entries;
Keycloak re-checks the entry on every sign-in (no cache, see :func:`ldap_component`).
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from urllib.parse import quote, urlsplit

from flask_babel import gettext as _

from ..audit import writer
from ..authz import Actor, require
from ..core.errors import Invalid
from ..core.validation import Fields, ValidationError
from .keycloak import admin_client
from .keycloak_admin import KeycloakAdmin, KeycloakError, KeycloakNotFound

#: the name of the one LDAP federation component per realm that Leakhub manages
LDAP_NAME = "leakhub-directory"
GROUP_MAPPER_NAME = "groups"
LDAP_PROVIDER_TYPE = "org.keycloak.storage.UserStorageProvider"
MAPPER_PROVIDER_TYPE = "org.keycloak.storage.ldap.mappers.LDAPStorageMapper"
SECRET_MASK = "**********"   # Keycloak's ComponentRepresentation.SECRET_VALUE

#: presets: Keycloak's vendor and the usual attributes of each directory
PRESETS = {
    "ad": {"vendor": "ad", "username": "sAMAccountName", "rdn": "cn", "uuid": "objectGUID",
           "user_classes": "person, organizationalPerson, user", "group_class": "group",
           "groups_strategy": "LOAD_GROUPS_BY_MEMBER_ATTRIBUTE_RECURSIVELY"},
    "openldap": {"vendor": "other", "username": "uid", "rdn": "uid", "uuid": "entryUUID",
                 "user_classes": "inetOrgPerson, organizationalPerson",
                 "group_class": "groupOfNames",
                 "groups_strategy": "LOAD_GROUPS_BY_MEMBER_ATTRIBUTE"},
}
MAX_SYNC_MINUTES = 7 * 24 * 60
FULL_SYNC_SECONDS = 24 * 3600

_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_ATTR = re.compile(r"^[A-Za-z][A-Za-z0-9-]{0,63}$")
_ALIAS = re.compile(r"^[a-z0-9][a-z0-9-]{0,39}$")


class DirectoryError(Invalid):
    """Keycloak refused or could not do a directory change; one readable line."""


# ------------------------------------------------------------------ input

@dataclass
class LdapSettings:
    connection_url: str
    bind_dn: str
    users_dn: str
    preset: str = "openldap"
    username_attribute: str = ""
    user_object_classes: str = ""
    user_filter: str = ""
    groups_dn: str = ""
    start_tls: bool = False
    sync_minutes: int = 0
    # the secret is never part of what is shown or audited
    bind_secret: str | None = field(default=None, repr=False)

    def audit_details(self) -> dict:
        return {"connection_url": self.connection_url, "bind_dn": self.bind_dn,
                "users_dn": self.users_dn, "preset": self.preset,
                "username_attribute": self.username_attribute,
                "user_object_classes": self.user_object_classes,
                "user_filter": self.user_filter, "groups_dn": self.groups_dn,
                "start_tls": self.start_tls, "sync_minutes": self.sync_minutes,
                "bind_secret_changed": self.bind_secret is not None}


def _line(f: Fields, name, *, required=True, max_length=1000) -> str:
    """One line of text: Fields.text, and no line breaks or tabs either (DNs, URLs, filters
    and attribute names are single lines in Keycloak's component config)."""
    value = f.text(name, required=required, max_length=max_length) or ""
    if value and name not in f.errors and _CONTROL.search(value):
        f.error(name, _("Contains control characters."))
    return value


def _dn(f: Fields, name, *, required=True) -> str:
    value = _line(f, name, required=required)
    if value and name not in f.errors and ("=" not in value or value.startswith(",")):
        f.error(name, _("Enter a distinguished name such as %(example)s.",
                        example="ou=people,dc=example,dc=com"))
    return value


def _filter(f: Fields, name) -> str:
    value = _line(f, name, required=False)
    if value and name not in f.errors:
        depth, ok = 0, value.startswith("(") and value.endswith(")")
        for ch in value:
            depth += (ch == "(") - (ch == ")")
            ok = ok and depth >= 0
        if not ok or depth != 0:
            f.error(name, _("Enter an LDAP filter in parentheses, e.g. %(example)s.",
                            example="(!(pwdAccountLockedTime=*))"))
    return value


def _secret(f: Fields, name, *, required: bool, message: str) -> str | None:
    """A secret as typed: only a trailing line break is dropped (no strip: spaces may be part
    of it); None when not given."""
    secret = f.data.get(name)
    secret = secret.rstrip("\r\n") or None if isinstance(secret, str) else None
    if secret is not None and (len(secret) > 1000 or _CONTROL.search(secret)):
        f.error(name, message)
    if secret is None and required:
        f.error(name, _("This field is required."))
    return secret


def check_ldap(values: dict, *, secret_required: bool) -> LdapSettings:
    """The form or CLI values as LdapSettings; ValidationError naming every bad field."""
    f = Fields(values)
    preset = f.choice("preset", PRESETS, default="openldap")
    p = PRESETS[preset]
    url = _line(f, "connection_url", max_length=500)
    if url and "connection_url" not in f.errors:
        for one in url.split():
            parts = urlsplit(one)
            if parts.scheme not in ("ldap", "ldaps") or not parts.hostname or \
                    parts.path not in ("", "/"):
                f.error("connection_url", _(
                    "Enter ldap://host:389 or ldaps://host:636 (several separated by spaces)."))
                break
    bind_dn = _dn(f, "bind_dn")
    users_dn = _dn(f, "users_dn")
    groups_dn = _dn(f, "groups_dn", required=False)
    username = _line(f, "username_attribute", required=False, max_length=64) or p["username"]
    if "username_attribute" not in f.errors and not _ATTR.match(username):
        f.error("username_attribute", _("Enter an LDAP attribute name such as uid."))
    classes = _line(f, "user_object_classes", required=False,
                    max_length=300) or p["user_classes"]
    if "user_object_classes" not in f.errors and not all(
            _ATTR.match(c.strip()) for c in classes.split(",")):
        f.error("user_object_classes", _("Enter object class names separated by commas."))
    user_filter = _filter(f, "user_filter")
    sync = f.integer("sync_minutes", min_value=0, max_value=MAX_SYNC_MINUTES, default=0)
    secret = _secret(f, "bind_secret", required=secret_required, message=_(
        "The bind secret must be one line of at most %(n)d characters.", n=1000))
    start_tls = f.boolean("start_tls")
    if start_tls and url.startswith("ldaps://"):
        f.error("start_tls", _("StartTLS is for ldap:// URLs; ldaps:// is encrypted already."))
    f.check()
    return LdapSettings(connection_url=url, bind_dn=bind_dn, users_dn=users_dn, preset=preset,
                        username_attribute=username, user_object_classes=classes,
                        user_filter=user_filter, groups_dn=groups_dn, start_tls=start_tls,
                        sync_minutes=sync, bind_secret=secret)


# ------------------------------------------------------------------ Keycloak representations

def ldap_component(s: LdapSettings, realm_id: str) -> dict:
    """The ComponentRepresentation of the federation (Keycloak 26.7: LDAPConstants and
    UserStorageProviderModel). Read-only edit mode: Leakhub and Keycloak never write to the
    directory. No cache: every sign-in re-reads the entry, so a user disabled or filtered out
    in the directory is refused at once."""
    p = PRESETS[s.preset]
    sync = s.sync_minutes * 60
    config = {
        "enabled": ["true"], "priority": ["0"], "vendor": [p["vendor"]],
        "connectionUrl": [s.connection_url], "startTls": ["true" if s.start_tls else "false"],
        "useTruststoreSpi": ["always"], "connectionTimeout": ["10000"],
        "authType": ["simple"], "bindDn": [s.bind_dn],
        "bindCredential": [s.bind_secret if s.bind_secret is not None else SECRET_MASK],
        "usersDn": [s.users_dn], "searchScope": ["2"],  # subtree
        "usernameLDAPAttribute": [s.username_attribute], "rdnLDAPAttribute": [
            s.username_attribute if s.preset == "openldap" else p["rdn"]],
        "uuidLDAPAttribute": [p["uuid"]], "userObjectClasses": [s.user_object_classes],
        "customUserSearchFilter": [s.user_filter] if s.user_filter else [],
        "editMode": ["READ_ONLY"], "syncRegistrations": ["false"], "importEnabled": ["true"],
        "pagination": ["true"], "connectionPooling": ["true"], "cachePolicy": ["NO_CACHE"],
        "trustEmail": ["true"], "removeInvalidUsersEnabled": ["true"],
        "batchSizeForSync": ["1000"],
        "fullSyncPeriod": [str(FULL_SYNC_SECONDS) if sync else "-1"],
        "changedSyncPeriod": [str(sync) if sync else "-1"],
    }
    return {"name": LDAP_NAME, "providerId": "ldap", "providerType": LDAP_PROVIDER_TYPE,
            "parentId": realm_id, "config": config}


def group_mapper(s: LdapSettings, parent_id: str) -> dict:
    """LDAP groups → Keycloak groups of the same name (read-only, at the top level)."""
    p = PRESETS[s.preset]
    return {"name": GROUP_MAPPER_NAME, "providerId": "group-ldap-mapper",
            "providerType": MAPPER_PROVIDER_TYPE, "parentId": parent_id, "config": {
                "groups.dn": [s.groups_dn], "group.name.ldap.attribute": ["cn"],
                "group.object.classes": [p["group_class"]],
                "preserve.group.inheritance": ["false"], "ignore.missing.groups": ["false"],
                "membership.ldap.attribute": ["member"],
                "membership.attribute.type": ["DN"],
                "membership.user.ldap.attribute": [s.username_attribute],
                "memberof.ldap.attribute": ["memberOf"], "mode": ["READ_ONLY"],
                "user.roles.retrieve.strategy": [p["groups_strategy"]],
                "drop.non.existing.groups.during.sync": ["false"], "groups.path": ["/"]}}


def _first(config: dict, key: str, default: str = "") -> str:
    values = config.get(key) or []
    return values[0] if values else default


def describe_ldap(component: dict | None, mapper: dict | None) -> dict | None:
    """What `show` and the page display (the secret only as 'set')."""
    if component is None:
        return None
    c = component.get("config") or {}
    vendor = _first(c, "vendor")
    changed = int(_first(c, "changedSyncPeriod", "-1") or -1)
    return {"id": component.get("id"), "preset": "ad" if vendor == "ad" else "openldap",
            "connection_url": _first(c, "connectionUrl"), "bind_dn": _first(c, "bindDn"),
            "bind_secret": "set" if _first(c, "bindCredential") else "not set",
            "users_dn": _first(c, "usersDn"),
            "username_attribute": _first(c, "usernameLDAPAttribute"),
            "user_object_classes": _first(c, "userObjectClasses"),
            "user_filter": _first(c, "customUserSearchFilter"),
            "start_tls": _first(c, "startTls") == "true",
            "edit_mode": _first(c, "editMode"),
            "sync_minutes": changed // 60 if changed > 0 else 0,
            "groups_dn": _first((mapper or {}).get("config") or {}, "groups.dn")}


# ------------------------------------------------------------------ Keycloak calls

class DirectoryAdmin:
    """The Keycloak admin calls of this feature, on top of KeycloakAdmin's plumbing."""

    def __init__(self, kc: KeycloakAdmin):
        self.kc = kc

    def _realm(self, realm: str) -> str:
        return f"/admin/realms/{quote(realm, safe='')}"

    def realm_id(self, realm: str) -> str:
        return self.kc.get_realm(realm)["id"]

    def components(self, realm: str, *, parent: str, provider_type: str) -> list[dict]:
        return self.kc._json("GET", f"{self._realm(realm)}/components",
                             params={"parent": parent, "type": provider_type},
                             what=f"realm {realm!r}: read components") or []

    def find_ldap(self, realm: str) -> tuple[dict | None, dict | None]:
        rid = self.realm_id(realm)
        found = [c for c in self.components(realm, parent=rid, provider_type=LDAP_PROVIDER_TYPE)
                 if c.get("name") == LDAP_NAME]
        if not found:
            return None, None
        comp = found[0]
        mappers = [m for m in self.components(realm, parent=comp["id"],
                                              provider_type=MAPPER_PROVIDER_TYPE)
                   if m.get("name") == GROUP_MAPPER_NAME]
        return comp, (mappers[0] if mappers else None)

    def save_ldap(self, realm: str, s: LdapSettings) -> str:
        """Create or update the federation (and its group mapper); returns its id."""
        comp, mapper = self.find_ldap(realm)
        rid = self.realm_id(realm)
        rep = ldap_component(s, rid)
        base = f"{self._realm(realm)}/components"
        if comp is None:
            resp = self.kc._request("POST", base, json_body=rep,
                                    what=f"realm {realm!r}: create the LDAP federation")
            cid = self.kc._created_id(resp)
        else:
            cid = comp["id"]
            rep["id"] = cid
            self.kc._request("PUT", f"{base}/{quote(cid, safe='')}", json_body=rep,
                             what=f"realm {realm!r}: update the LDAP federation")
        if s.groups_dn:
            mrep = group_mapper(s, cid)
            if mapper is None:
                self.kc._request("POST", base, json_body=mrep,
                                 what=f"realm {realm!r}: create the LDAP group mapping")
            else:
                mrep["id"] = mapper["id"]
                self.kc._request("PUT", f"{base}/{quote(mapper['id'], safe='')}",
                                 json_body=mrep,
                                 what=f"realm {realm!r}: update the LDAP group mapping")
        elif mapper is not None:
            self.kc._request("DELETE", f"{base}/{quote(mapper['id'], safe='')}",
                             what=f"realm {realm!r}: remove the LDAP group mapping")
        return cid

    def remove_ldap(self, realm: str) -> bool:
        comp, _mapper = self.find_ldap(realm)
        if comp is None:
            return False
        # Keycloak removes the imported users and the mappers with the component
        self.kc._request("DELETE", f"{self._realm(realm)}/components/"
                                   f"{quote(comp['id'], safe='')}",
                         what=f"realm {realm!r}: remove the LDAP federation")
        return True

    def test_ldap(self, realm: str, *, connection_url: str, bind_dn: str, start_tls: bool,
                  bind_secret: str | None = None, component_id: str | None = None) -> None:
        """Keycloak connects and binds (testAuthentication); raises KeycloakError when
        it cannot. Without `bind_secret` the stored one of `component_id` is used."""
        body = {"action": "testAuthentication", "connectionUrl": connection_url,
                "bindDn": bind_dn, "bindCredential": bind_secret or SECRET_MASK,
                "useTruststoreSpi": "always", "connectionTimeout": "10000",
                "startTls": "true" if start_tls else "false", "authType": "simple",
                "componentId": component_id}
        self.kc._request("POST", f"{self._realm(realm)}/testLDAPConnection", json_body=body,
                         what="the LDAP bind")

    def sync_ldap(self, realm: str, component_id: str) -> dict:
        path = f"{self._realm(realm)}/user-storage/{quote(component_id, safe='')}/sync"
        return self.kc._json("POST", path, params={"action": "triggerFullSync"},
                             what="the LDAP synchronisation") or {}

    # ------------------------------------------------------------------ OIDC brokering

    def identity_providers(self, realm: str) -> list[dict]:
        return self.kc._json("GET", f"{self._realm(realm)}/identity-provider/instances",
                             what=f"realm {realm!r}: read identity providers") or []

    def discover(self, realm: str, discovery_url: str) -> dict:
        """Keycloak reads the provider's OpenID configuration itself (its network, its
        trust store) and answers the identity-provider config it derives."""
        return self.kc._json("POST", f"{self._realm(realm)}/identity-provider/import-config",
                             json_body={"providerId": "oidc", "fromUrl": discovery_url},
                             what="reading the provider's OpenID configuration") or {}

    def save_identity_provider(self, realm: str, rep: dict) -> None:
        alias = rep["alias"]
        exists = any(p.get("alias") == alias for p in self.identity_providers(realm))
        base = f"{self._realm(realm)}/identity-provider/instances"
        if exists:
            self.kc._request("PUT", f"{base}/{quote(alias, safe='')}", json_body=rep,
                             what=f"realm {realm!r}: update identity provider {alias!r}")
        else:
            self.kc._request("POST", base, json_body=rep,
                             what=f"realm {realm!r}: create identity provider {alias!r}")

    def remove_identity_provider(self, realm: str, alias: str) -> bool:
        try:
            self.kc._request("DELETE", f"{self._realm(realm)}/identity-provider/instances/"
                                       f"{quote(alias, safe='')}",
                             what=f"identity provider {alias!r}")
        except KeycloakNotFound:
            return False
        return True


@dataclass
class OidcSettings:
    alias: str
    display_name: str
    issuer: str
    client_id: str
    discovery_url: str
    client_secret: str | None = field(default=None, repr=False)

    def audit_details(self) -> dict:
        return {"alias": self.alias, "display_name": self.display_name, "issuer": self.issuer,
                "client_id": self.client_id, "discovery_url": self.discovery_url,
                "client_secret_changed": self.client_secret is not None}


def _https_or_local(f: Fields, name, *, required=True) -> str:
    value = _line(f, name, required=required, max_length=500)
    if value and name not in f.errors:
        parts = urlsplit(value)
        local = parts.hostname in ("localhost", "127.0.0.1", "::1")
        if parts.scheme != "https" and not (parts.scheme == "http" and local) or \
                not parts.hostname or parts.query or parts.fragment:
            f.error(name, _("Enter an https:// URL without query, e.g. %(example)s.",
                            example="https://login.microsoftonline.com/<tenant>/v2.0"))
    return value


def check_oidc(values: dict, *, secret_required: bool) -> OidcSettings:
    f = Fields(values)
    alias = _line(f, "alias", required=False, max_length=40) or "company"
    if "alias" not in f.errors and not _ALIAS.match(alias):
        f.error("alias", _("Enter 1-40 lower-case letters, digits or '-'."))
    display = _line(f, "display_name", required=False, max_length=100) or _("Company account")
    issuer = _https_or_local(f, "issuer").rstrip("/")
    client_id = _line(f, "client_id", max_length=255)
    discovery = _https_or_local(f, "discovery_url", required=False)
    if not discovery and issuer:
        discovery = issuer + "/.well-known/openid-configuration"
    secret = _secret(f, "client_secret", required=secret_required, message=_(
        "The client secret must be one line of at most %(n)d characters.", n=1000))
    f.check()
    return OidcSettings(alias=alias, display_name=display, issuer=issuer, client_id=client_id,
                        discovery_url=discovery, client_secret=secret)


def identity_provider(s: OidcSettings, discovered: dict) -> dict:
    """IdentityProviderRepresentation (providerId ``oidc``): endpoints from the provider's
    discovery document, signature checked with its JWKS, PKCE, the standard first-login flow
    (which creates the Keycloak user; Leakhub's first sign-in then mirrors it with no role).
    Scopes openid, profile and email."""
    config = {k: v for k, v in discovered.items() if k in (
        "authorizationUrl", "tokenUrl", "userInfoUrl", "jwksUrl", "logoutUrl", "issuer")}
    config.update({
        "issuer": s.issuer, "clientId": s.client_id,
        "clientSecret": s.client_secret if s.client_secret is not None else SECRET_MASK,
        "clientAuthMethod": "client_secret_post", "defaultScope": "openid profile email",
        "validateSignature": "true", "useJwksUrl": "true", "pkceEnabled": "true",
        "pkceMethod": "S256", "syncMode": "IMPORT", "backchannelSupported": "false"})
    return {"alias": s.alias, "displayName": s.display_name, "providerId": "oidc",
            "enabled": True, "trustEmail": False, "storeToken": False,
            "firstBrokerLoginFlowAlias": "first broker login", "config": config}


def describe_oidc(rep: dict) -> dict:
    c = rep.get("config") or {}
    return {"alias": rep.get("alias"), "display_name": rep.get("displayName") or "",
            "enabled": bool(rep.get("enabled")), "issuer": c.get("issuer", ""),
            "client_id": c.get("clientId", ""),
            "client_secret": "set" if c.get("clientSecret") else "not set",
            "authorization_url": c.get("authorizationUrl", "")}


# ------------------------------------------------------------------ services (audited)

def _admin(config) -> DirectoryAdmin:
    return DirectoryAdmin(admin_client(config))


def _fail(exc: KeycloakError, what: str) -> DirectoryError:
    return DirectoryError(_("%(what)s failed: %(reason)s", what=what, reason=str(exc)))


def show_ldap(config, actor: Actor) -> dict | None:
    require(actor, "manage")
    try:
        return describe_ldap(*_admin(config).find_ldap(actor.organization.slug))
    except KeycloakError as exc:
        raise _fail(exc, _("Reading the directory settings")) from None


def set_ldap(config, actor: Actor, values: dict) -> dict:
    """Create or change the organization's LDAP / AD federation. The bind secret is needed
    the first time; later it is kept unless a new one is given."""
    require(actor, "manage")
    realm = actor.organization.slug
    s = check_ldap(values, secret_required=False)
    d = _admin(config)
    try:
        existing, _mapper = d.find_ldap(realm)
        if existing is None and s.bind_secret is None:
            raise ValidationError(_("Required."), "bind_secret")
        cid = d.save_ldap(realm, s)
    except KeycloakError as exc:
        raise _fail(exc, _("Saving the directory settings")) from None
    writer.event(actor, "directory.ldap_created" if existing is None else
                 "directory.ldap_changed", details=s.audit_details())
    return show_ldap(config, actor) or {"id": cid}


def test_ldap(config, actor: Actor, values: dict | None = None) -> None:
    """Connect and bind with the stored settings (or the given ones, before saving).
    DirectoryError with Keycloak's reason when the directory refuses."""
    require(actor, "manage")
    realm = actor.organization.slug
    url = bind_dn = ""
    s = check_ldap(values, secret_required=False) if values else None
    d = _admin(config)
    try:
        comp, _mapper = d.find_ldap(realm)
        if s is not None:
            if comp is None and s.bind_secret is None:
                raise ValidationError(_("Required."), "bind_secret")
            url, bind_dn, tls, secret = s.connection_url, s.bind_dn, s.start_tls, s.bind_secret
        elif comp is None:
            raise DirectoryError(_("No directory is configured for %(org)s.", org=realm))
        else:
            shown = describe_ldap(comp, None)
            url, bind_dn, tls, secret = (shown["connection_url"], shown["bind_dn"],
                                         shown["start_tls"], None)
        d.test_ldap(realm, connection_url=url, bind_dn=bind_dn, start_tls=tls,
                    bind_secret=secret, component_id=comp["id"] if comp else None)
    except KeycloakError as exc:
        if exc.kc_error == "AuthenticationFailure":   # Keycloak's word for a refused bind
            raise DirectoryError(_(
                "The directory at %(url)s refused the bind as %(dn)s: the bind DN or the "
                "bind secret is wrong (Keycloak: %(reason)s)",
                url=url, dn=bind_dn, reason=exc.kc_error)) from None
        raise DirectoryError(_(
            "The directory at %(url)s refused the connection or the bind as %(dn)s: check "
            "the URL, the bind DN and the bind secret (Keycloak: %(reason)s)",
            url=url, dn=bind_dn, reason=exc.kc_error or str(exc))) from None


def sync_ldap(config, actor: Actor) -> dict:
    require(actor, "manage")
    realm = actor.organization.slug
    d = _admin(config)
    try:
        comp, _mapper = d.find_ldap(realm)
        if comp is None:
            raise DirectoryError(_("No directory is configured for %(org)s.", org=realm))
        result = d.sync_ldap(realm, comp["id"])
    except KeycloakError as exc:
        raise _fail(exc, _("The synchronisation")) from None
    writer.event(actor, "directory.ldap_synced", details={
        k: result.get(k) for k in ("added", "updated", "removed", "failed") if k in result})
    return result


def remove_ldap(config, actor: Actor) -> bool:
    require(actor, "manage")
    try:
        removed = _admin(config).remove_ldap(actor.organization.slug)
    except KeycloakError as exc:
        raise _fail(exc, _("Removing the directory")) from None
    if removed:
        writer.event(actor, "directory.ldap_removed")
    return removed


def list_oidc(config, actor: Actor) -> list[dict]:
    require(actor, "manage")
    try:
        return [describe_oidc(p) for p in _admin(config).identity_providers(
            actor.organization.slug) if p.get("providerId") == "oidc"]
    except KeycloakError as exc:
        raise _fail(exc, _("Reading the identity providers")) from None


def set_oidc(config, actor: Actor, values: dict) -> dict:
    """Create or change an external OpenID Connect provider (alias) of the organization."""
    require(actor, "manage")
    realm = actor.organization.slug
    s = check_oidc(values, secret_required=False)
    d = _admin(config)
    try:
        existing = {p.get("alias") for p in d.identity_providers(realm)}
        if s.alias not in existing and s.client_secret is None:
            raise ValidationError(_("Required."), "client_secret")
        try:
            discovered = d.discover(realm, s.discovery_url)
        except KeycloakError as exc:
            raise ValidationError(_(
                "Keycloak could not read the provider's OpenID configuration at %(url)s: "
                "%(reason)s", url=s.discovery_url, reason=exc.kc_error or str(exc)),
                "issuer") from None
        d.save_identity_provider(realm, identity_provider(s, discovered))
    except KeycloakError as exc:
        raise _fail(exc, _("Saving the identity provider")) from None
    writer.event(actor, "directory.oidc_created" if s.alias not in existing else
                 "directory.oidc_changed", details=s.audit_details())
    return next(p for p in list_oidc(config, actor) if p["alias"] == s.alias)


def remove_oidc(config, actor: Actor, alias: str) -> bool:
    require(actor, "manage")
    try:
        removed = _admin(config).remove_identity_provider(actor.organization.slug, alias)
    except KeycloakError as exc:
        raise _fail(exc, _("Removing the identity provider")) from None
    if removed:
        writer.event(actor, "directory.oidc_removed", details={"alias": alias})
    return removed
