"""Keycloak Admin REST client for Leakhub (plain ``requests``, no Keycloak SDK).

Every organization is one Keycloak realm, created from ``compose/realm-template.json``
by :func:`render_realm` and :meth:`KeycloakAdmin.create_realm`.

Authentication
    :class:`KeycloakAdmin` signs in to the **master** realm with the permanent service
    client ``leakhub-service`` (client-credentials grant). That client holds exactly one
    master role, ``create-realm``. Keycloak grants the creator of a realm all roles of the
    realm's management client ``<realm>-realm`` in master except ``impersonation``
    (verified with Keycloak 26.7 for a service account), which is everything Leakhub needs in
    an organization realm: users, clients, events, realm settings, deletion.
    :meth:`KeycloakAdmin.bootstrap_service_client` creates that client on first start, using
    the temporary bootstrap admin client (``KC_BOOTSTRAP_ADMIN_CLIENT_ID``/``_SECRET``), and
    then deletes the bootstrap client.

    The service client uses *lightweight* access tokens: Keycloak evaluates admin
    permissions from its database, not from token claims, so the token neither grows with
    the number of realms (one ``<realm>-realm`` client each) nor goes stale after a realm
    was created.

Errors
    All failures raise :class:`KeycloakError` or a subclass. Messages are one readable line
    and never contain secrets or tokens; ``status`` and ``kc_error`` carry the HTTP status
    and Keycloak's error text for programs.

Base URL
    ``base_url`` is how *this process* reaches Keycloak (internal, e.g.
    ``http://keycloak:8080/auth``), including the HTTP relative path. With
    ``KC_HOSTNAME=<public url>/auth`` and ``KC_HOSTNAME_BACKCHANNEL_DYNAMIC=true`` tokens
    fetched through it still carry the public issuer ``<public url>/auth/realms/<realm>``.

Event ordering
    :meth:`KeycloakAdmin.get_events` and :meth:`KeycloakAdmin.get_admin_events` return events
    **oldest first** (Keycloak's ``direction=asc``). ``date_from`` is inclusive and has
    millisecond resolution; a sync should re-read from the last seen ``time`` and skip ids
    it already has (login events carry an ``id``; admin events carry an ``id`` too).
"""

from __future__ import annotations

import copy
import datetime as _dt
import json
import logging
import re
import threading
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

import requests

from ..core.errors import Conflict, LeakhubError, NotFound, Unavailable

log = logging.getLogger(__name__)

__all__ = [
    "KeycloakError",
    "KeycloakUnreachable",
    "KeycloakConflict",
    "KeycloakNotFound",
    "KeycloakForbidden",
    "KeycloakAdmin",
    "render_realm",
    "APP_CLIENT_ID",
    "API_AUDIENCE",
    "SERVICE_CLIENT_MASTER_ROLES",
    "DEFAULT_TEMPLATE_PATH",
]

#: client id of the Leakhub web application in every organization realm
APP_CLIENT_ID = "leakhub"
#: audience every Leakhub API token must carry (``aud``)
API_AUDIENCE = "leakhub-api"
#: the master-realm roles given to the permanent service client (least privilege)
SERVICE_CLIENT_MASTER_ROLES = ("create-realm",)
#: the template shipped in the repository (``compose/realm-template.json``)
DEFAULT_TEMPLATE_PATH = Path(__file__).resolve().parents[3] / "compose" / "realm-template.json"

# Clients Keycloak creates in every realm, plus the app client: never deleted or disabled
# through the device-client methods.
_PROTECTED_CLIENTS = frozenset(
    {
        APP_CLIENT_ID,
        "account",
        "account-console",
        "admin-cli",
        "broker",
        "realm-management",
        "security-admin-console",
    }
)

_TOKEN_MARGIN_SECONDS = 20
_SLUG_RE = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$")
_CLIENT_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,254}$")
_PLACEHOLDER_RE = re.compile(r"\$\{([A-Za-z0-9_]+)\}")
_CONTROL_RE = re.compile(r"[\x00-\x1f\x7f]")


# --------------------------------------------------------------------------- errors


# Realm settings for Keycloak's pages in the user's language, copied from the template to
# existing realms by update_realm_policies.
I18N_KEYS = ("internationalizationEnabled", "supportedLocales", "defaultLocale")


class KeycloakError(LeakhubError):
    """A Keycloak call failed. ``str(err)`` is one readable line without secrets."""

    def __init__(self, message: str, *, status: int | None = None, kc_error: str | None = None):
        super().__init__(message)
        self.status = status
        self.kc_error = kc_error


class KeycloakUnreachable(KeycloakError, Unavailable):
    """Keycloak did not answer (connection refused, timeout, DNS, TLS, 502/503/504)."""


class KeycloakConflict(KeycloakError, Conflict):
    """HTTP 409: the realm, user or client already exists."""


class KeycloakNotFound(KeycloakError, NotFound):
    """HTTP 404: no such realm, user or client."""


class KeycloakForbidden(KeycloakError):
    """HTTP 403: the service client lacks the permission for this call."""


# --------------------------------------------------------------------------- template


def _check_url(label: str, value: str) -> str:
    if not isinstance(value, str):
        raise ValueError(f"{label} must be a string")
    value = value.strip().rstrip("/")
    parts = urlsplit(value)
    if (
        parts.scheme not in ("http", "https")
        or not parts.hostname
        or parts.query
        or parts.fragment
        or parts.username
        or parts.password
        or _CONTROL_RE.search(value)
        or " " in value
    ):
        raise ValueError(
            f"{label} must be an absolute http(s) URL without query, fragment or credentials, "
            f"e.g. https://leakhub.example.com (got {value!r})"
        )
    return value


def _check_slug(slug: str) -> str:
    if not isinstance(slug, str) or not _SLUG_RE.match(slug) or slug == "master":
        raise ValueError(
            "organization slug must be 1-63 characters of a-z, 0-9 and '-', start and end with a "
            f"letter or digit, and not be 'master' (got {slug!r})"
        )
    return slug


def _substitute(node: Any, values: Mapping[str, str], path: str = "$") -> Any:
    """Replace ``${NAME}`` inside every string *value* of parsed JSON (single pass)."""
    if isinstance(node, dict):
        out = {}
        for key, val in node.items():
            if _PLACEHOLDER_RE.search(key):
                raise ValueError(f"realm template: placeholder in key {key!r} at {path}")
            out[key] = _substitute(val, values, f"{path}.{key}")
        return out
    if isinstance(node, list):
        return [_substitute(v, values, f"{path}[{i}]") for i, v in enumerate(node)]
    if isinstance(node, str):

        def repl(m: re.Match) -> str:
            name = m.group(1)
            if name not in values:
                raise ValueError(f"realm template: unknown placeholder ${{{name}}} at {path}")
            return values[name]

        # re.sub does not rescan replacement text, so values containing "${...}" stay literal
        return _PLACEHOLDER_RE.sub(repl, node)
    return node


def render_realm(
    template_path: str | Path | None,
    *,
    slug: str,
    name: str,
    public_url: str,
    internal_url: str,
    app_client_secret: str,
) -> dict:
    """Load the realm template and return a RealmRepresentation dict for one organization.

    Placeholders ``${ORG_SLUG}``, ``${ORG_NAME}``, ``${PUBLIC_URL}``, ``${INTERNAL_URL}`` and
    ``${APP_CLIENT_SECRET}`` are replaced inside the parsed JSON strings, so any value is safe
    (it is JSON-escaped when the dict is serialized). URLs lose a trailing slash. Raises
    ``ValueError`` naming the bad argument, or ``FileNotFoundError``.
    """
    slug = _check_slug(slug)
    if not isinstance(name, str) or not name.strip() or _CONTROL_RE.search(name) or len(name) > 200:
        raise ValueError("organization name must be 1-200 characters without control characters")
    public_url = _check_url("public_url", public_url)
    internal_url = _check_url("internal_url", internal_url)
    if (
        not isinstance(app_client_secret, str)
        or len(app_client_secret) < 16
        or _CONTROL_RE.search(app_client_secret)
    ):
        raise ValueError("app_client_secret must be at least 16 printable characters")

    path = Path(template_path) if template_path else DEFAULT_TEMPLATE_PATH
    with open(path, encoding="utf-8") as fh:
        try:
            template = json.load(fh)
        except json.JSONDecodeError as exc:
            raise ValueError(f"realm template {path} is not valid JSON: {exc}") from None
    if not isinstance(template, dict):
        raise ValueError(f"realm template {path} must hold a JSON object")
    return _substitute(
        template,
        {
            "ORG_SLUG": slug,
            "ORG_NAME": name.strip(),
            "PUBLIC_URL": public_url,
            "INTERNAL_URL": internal_url,
            "APP_CLIENT_SECRET": app_client_secret,
        },
    )


def _audience_mapper() -> dict:
    return {
        "name": f"{API_AUDIENCE} audience",
        "protocol": "openid-connect",
        "protocolMapper": "oidc-audience-mapper",
        "consentRequired": False,
        "config": {
            "included.custom.audience": API_AUDIENCE,
            "access.token.claim": "true",
            "id.token.claim": "false",
            "introspection.token.claim": "true",
            "lightweight.claim": "false",
        },
    }


# --------------------------------------------------------------------------- HTTP helpers


def _short_reason(exc: Exception) -> str:
    if isinstance(exc, requests.Timeout):
        return "timed out"
    if isinstance(exc, requests.exceptions.SSLError):
        return "TLS error"
    text = str(exc).lower()
    if "refused" in text:
        return "connection refused"
    if "name or service not known" in text or "nodename nor servname" in text or "resolve" in text:
        return "host name not found"
    if "unreachable" in text:
        return "network unreachable"
    if isinstance(exc, (requests.exceptions.InvalidURL, requests.exceptions.MissingSchema)):
        return "invalid URL"
    return type(exc).__name__


def _kc_error_text(resp: requests.Response) -> str:
    """Keycloak's own error text from a response body, shortened to one line."""
    try:
        body = resp.json()
    except ValueError:
        body = None
    text = ""
    if isinstance(body, dict):
        for key in ("errorMessage", "error_description", "error", "message"):
            if body.get(key):
                text = str(body[key])
                break
        params = body.get("params")
        if text and isinstance(params, list) and params:
            text += " (" + ", ".join(str(p) for p in params[:3]) + ")"
    elif resp.text and len(resp.text) < 200 and "<" not in resp.text:
        text = resp.text
    text = _CONTROL_RE.sub(" ", text).strip()
    return text[:200]


def _seg(value: str) -> str:
    """Quote one path segment (realm name, id)."""
    if not isinstance(value, str) or not value:
        raise ValueError("empty path segment")
    return quote(value, safe="")


def _to_millis(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool):
        raise ValueError("date_from must be a datetime, date or epoch milliseconds")
    if isinstance(value, _dt.datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=_dt.UTC)
        return str(int(value.timestamp() * 1000))
    if isinstance(value, _dt.date):
        return value.isoformat()
    if isinstance(value, (int, float)):
        return str(int(value))
    raise ValueError("date_from must be a datetime, date or epoch milliseconds")


def _fetch_token(
    session: requests.Session, base_url: str, client_id: str, client_secret: str, timeout
) -> tuple[str | None, float, str]:
    """Client-credentials token from master. Returns (token, expires_at, problem)."""
    url = f"{base_url}/realms/master/protocol/openid-connect/token"
    try:
        resp = session.post(
            url,
            data={
                "grant_type": "client_credentials",
                "client_id": client_id,
                "client_secret": client_secret,
            },
            timeout=timeout,
        )
    except requests.RequestException as exc:
        raise KeycloakUnreachable(
            f"Keycloak is not reachable at {base_url}: {_short_reason(exc)}"
        ) from None
    if resp.status_code in (500, 502, 503, 504):
        # 500 from the token endpoint is Keycloak's own trouble (e.g. its database connections
        # were cut by a PostgreSQL restart), not a verdict on the credentials: unavailable.
        raise KeycloakUnreachable(
            f"Keycloak is not reachable at {base_url}: HTTP {resp.status_code}",
            status=resp.status_code,
        )
    if resp.status_code == 200:
        try:
            body = resp.json()
            token = body["access_token"]
            expires_in = float(body.get("expires_in", 60))
        except (ValueError, KeyError, TypeError):
            raise KeycloakError(
                f"Keycloak at {base_url} answered the token request with an unexpected body"
            ) from None
        return token, time.monotonic() + expires_in, ""
    if resp.status_code == 404:
        raise KeycloakUnreachable(
            f"Keycloak is not reachable at {base_url}: HTTP 404 for the master realm "
            "(wrong base URL or relative path?)",
            status=404,
        )
    return None, 0.0, f"HTTP {resp.status_code} {_kc_error_text(resp)}".strip()


# --------------------------------------------------------------------------- client


class KeycloakAdmin:
    """Admin REST client acting as the Leakhub service client of the master realm."""

    def __init__(
        self,
        base_url: str,
        client_id: str,
        client_secret: str,
        *,
        timeout: float = 30.0,  # realm creation takes >10 s on a busy 2-core host
        session: requests.Session | None = None,
    ):
        self.base_url = _check_url("Keycloak base_url", base_url)
        self.client_id = client_id
        self._client_secret = client_secret
        self._timeout = (min(5.0, timeout), timeout)
        self._session = session or requests.Session()
        self._token: str | None = None
        self._token_expires = 0.0
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"KeycloakAdmin(base_url={self.base_url!r}, client_id={self.client_id!r})"

    # ----------------------------------------------------------------- plumbing

    def _access_token(self, *, force: bool = False) -> str:
        with self._lock:
            if (
                not force
                and self._token
                and time.monotonic() < self._token_expires - _TOKEN_MARGIN_SECONDS
            ):
                return self._token
            token, expires, problem = _fetch_token(
                self._session, self.base_url, self.client_id, self._client_secret, self._timeout
            )
            if token is None:
                raise KeycloakError(
                    f"Keycloak at {self.base_url} rejected the credentials of service client "
                    f"'{self.client_id}' ({problem})",
                    status=401,
                )
            self._token, self._token_expires = token, expires
            return token

    def _request(
        self,
        method: str,
        path: str,
        *,
        json_body: Any = None,
        params: Mapping[str, Any] | None = None,
        what: str = "",
    ) -> requests.Response:
        url = self.base_url + path
        params = {k: v for k, v in (params or {}).items() if v is not None}
        for attempt in (1, 2):
            token = self._access_token(force=attempt == 2)
            try:
                resp = self._session.request(
                    method,
                    url,
                    json=json_body,
                    params=params,
                    headers={"Authorization": f"Bearer {token}"},
                    timeout=self._timeout,
                )
            except requests.RequestException as exc:
                raise KeycloakUnreachable(
                    f"Keycloak is not reachable at {self.base_url}: {_short_reason(exc)}"
                ) from None
            log.debug("keycloak %s %s -> %s", method, path, resp.status_code)
            if resp.status_code == 401 and attempt == 1:
                continue
            break
        if resp.status_code < 300:
            return resp
        self._raise(resp, method, path, what)
        raise AssertionError("unreachable")  # pragma: no cover

    def _raise(self, resp: requests.Response, method: str, path: str, what: str) -> None:
        status = resp.status_code
        kc = _kc_error_text(resp)
        subject = what or f"{method} {path}"
        detail = f": {kc}" if kc else ""
        if status in (502, 503, 504):
            raise KeycloakUnreachable(
                f"Keycloak is not reachable at {self.base_url}: HTTP {status}",
                status=status,
                kc_error=kc,
            )
        if status == 409:
            raise KeycloakConflict(f"{subject}: already exists{detail}", status=status, kc_error=kc)
        if status == 404:
            raise KeycloakNotFound(f"{subject}: not found{detail}", status=status, kc_error=kc)
        if status == 403:
            raise KeycloakForbidden(
                f"{subject}: the service client '{self.client_id}' is not allowed to do this "
                f"(HTTP 403){detail}",
                status=status,
                kc_error=kc,
            )
        raise KeycloakError(
            f"{subject}: Keycloak answered HTTP {status}{detail}", status=status, kc_error=kc
        )

    def _json(self, method: str, path: str, **kw) -> Any:
        resp = self._request(method, path, **kw)
        if not resp.content:
            return None
        try:
            return resp.json()
        except ValueError:
            raise KeycloakError(
                f"{kw.get('what') or path}: Keycloak answered with something that is not JSON",
                status=resp.status_code,
            ) from None

    @staticmethod
    def _created_id(resp: requests.Response) -> str:
        location = resp.headers.get("Location", "")
        if not location:
            raise KeycloakError("Keycloak created the object but sent no Location header")
        return location.rstrip("/").rsplit("/", 1)[-1]

    def _realm_path(self, realm: str) -> str:
        return f"/admin/realms/{_seg(realm)}"

    def _client_uuid(self, realm: str, client_id: str) -> str:
        clients = self._json(
            "GET",
            f"{self._realm_path(realm)}/clients",
            params={"clientId": client_id, "search": "false"},
            what=f"look up client '{client_id}' in realm '{realm}'",
        )
        for c in clients or []:
            if c.get("clientId") == client_id:
                return c["id"]
        raise KeycloakNotFound(f"client '{client_id}' not found in realm '{realm}'", status=404)

    # ----------------------------------------------------------------- bootstrap

    @staticmethod
    def bootstrap_service_client(
        base_url: str,
        *,
        bootstrap_client_id: str,
        bootstrap_client_secret: str,
        service_client_id: str,
        service_client_secret: str,
        timeout: float = 30.0,  # realm creation takes >10 s on a busy 2-core host
        session: requests.Session | None = None,
    ) -> str:
        """Make sure the permanent service client exists; idempotent first-start step.

        * While the temporary bootstrap admin client can sign in (first start, or an earlier
          run was interrupted): creates the service client in master (or re-applies settings
          and secret to an existing one), grants it the master roles in
          :data:`SERVICE_CLIENT_MASTER_ROLES` plus, for realms that already exist, the
          ``<realm>-realm`` roles a realm creator gets, checks that it can sign in, deletes the
          bootstrap client. Returns ``"created"``, or ``"exists"`` if the service client could
          already sign in before.
        * If only the service client can sign in: returns ``"exists"`` (no change).
        * If neither credential works: raises :class:`KeycloakError`.
        """
        base_url = _check_url("Keycloak base_url", base_url)
        sess = session or requests.Session()
        tmo = (min(5.0, timeout), timeout)

        svc_token, _, svc_problem = _fetch_token(
            sess, base_url, service_client_id, service_client_secret, tmo
        )
        boot_token, _, boot_problem = _fetch_token(
            sess, base_url, bootstrap_client_id, bootstrap_client_secret, tmo
        )
        if svc_token is None and boot_token is None:
            raise KeycloakError(
                f"Neither the Leakhub service client '{service_client_id}' ({svc_problem}) nor the "
                f"bootstrap admin client '{bootstrap_client_id}' ({boot_problem}) can sign in to "
                f"Keycloak's master realm at {base_url}; restore the service client secret or "
                "create a new temporary admin client with 'kc.sh bootstrap-admin service'"
            )

        boot = KeycloakAdmin(
            base_url, bootstrap_client_id, bootstrap_client_secret, timeout=timeout, session=sess
        )
        if boot_token is None or bootstrap_client_id == service_client_id:
            return "exists"  # the service client works and there is nothing to clean up
        # The bootstrap client still works: either first start, or an earlier run was
        # interrupted. Either way (re-)apply the whole setup, then delete the bootstrap client.
        result = "exists" if svc_token is not None else "created"

        master = "/admin/realms/master"
        rep = {
            "clientId": service_client_id,
            "name": "Leakhub service",
            "description": "Leakhub's service account: creates and administers organization realms",
            "enabled": True,
            "protocol": "openid-connect",
            "publicClient": False,
            "bearerOnly": False,
            "clientAuthenticatorType": "client-secret",
            "secret": service_client_secret,
            "standardFlowEnabled": False,
            "implicitFlowEnabled": False,
            "directAccessGrantsEnabled": False,
            "serviceAccountsEnabled": True,
            "frontchannelLogout": False,
            "consentRequired": False,
            "attributes": {
                "client.use.lightweight.access.token.enabled": "true",
                "use.refresh.tokens": "false",
                "client_credentials.use_refresh_token": "false",
                "oauth2.device.authorization.grant.enabled": "false",
                "oidc.ciba.grant.enabled": "false",
            },
        }
        try:
            uuid = boot._client_uuid("master", service_client_id)
        except KeycloakNotFound:
            resp = boot._request(
                "POST", f"{master}/clients", json_body=rep,
                what=f"create service client '{service_client_id}'",
            )
            uuid = boot._created_id(resp)
        else:
            # exists but the secret did not work: reset it and re-apply the settings
            current = boot._json("GET", f"{master}/clients/{_seg(uuid)}")
            current.update({k: v for k, v in rep.items() if k != "attributes"})
            current.setdefault("attributes", {}).update(rep["attributes"])
            boot._request(
                "PUT", f"{master}/clients/{_seg(uuid)}", json_body=current,
                what=f"update service client '{service_client_id}'",
            )

        sa_user = boot._json(
            "GET", f"{master}/clients/{_seg(uuid)}/service-account-user",
            what="read the service account user",
        )
        user_path = f"{master}/users/{_seg(sa_user['id'])}"
        roles = [
            boot._json("GET", f"{master}/roles/{_seg(name)}", what=f"read master role '{name}'")
            for name in SERVICE_CLIENT_MASTER_ROLES
        ]
        boot._request(
            "POST", f"{user_path}/role-mappings/realm", json_body=roles,
            what="grant master roles to the service client",
        )
        # Realms created earlier (e.g. by a service client that was lost): give the new one the
        # same rights a realm creator gets, i.e. all <realm>-realm roles but impersonation.
        for realm in boot.list_realms():
            name = realm.get("realm")
            if not name or name == "master":
                continue
            try:
                mgmt_uuid = boot._client_uuid("master", f"{name}-realm")
            except KeycloakNotFound:
                continue
            mgmt_roles = [
                r
                for r in boot._json("GET", f"{master}/clients/{_seg(mgmt_uuid)}/roles")
                if r.get("name") != "impersonation"
            ]
            if mgmt_roles:
                boot._request(
                    "POST", f"{user_path}/role-mappings/clients/{_seg(mgmt_uuid)}",
                    json_body=mgmt_roles, what=f"grant administration of realm '{name}'",
                )

        svc = KeycloakAdmin(
            base_url, service_client_id, service_client_secret, timeout=timeout, session=sess
        )
        # prove the new credentials and the admin API before the bootstrap client goes
        # (with no realm yet, Keycloak answers GET /admin/realms with 403; 401 would raise)
        svc.list_realms()
        boot._delete_bootstrap_client(bootstrap_client_id)
        return result

    def _delete_bootstrap_client(self, bootstrap_client_id: str) -> None:
        """Delete the temporary bootstrap admin client (only if Keycloak marked it temporary)."""
        uuid = self._client_uuid("master", bootstrap_client_id)
        rep = self._json("GET", f"/admin/realms/master/clients/{_seg(uuid)}")
        if (rep.get("attributes") or {}).get("is_temporary_admin") != "true":
            log.warning(
                "bootstrap client %s is not marked as temporary admin; not deleting it",
                bootstrap_client_id,
            )
            return
        self._request(
            "DELETE", f"/admin/realms/master/clients/{_seg(uuid)}",
            what=f"delete bootstrap client '{bootstrap_client_id}'",
        )
        with self._lock:
            self._token = None

    # ----------------------------------------------------------------- realms

    def ping(self) -> None:
        """Raise :class:`KeycloakUnreachable` unless Keycloak answers for the master realm."""
        url = f"{self.base_url}/realms/master"
        try:
            resp = self._session.get(url, timeout=self._timeout)
        except requests.RequestException as exc:
            raise KeycloakUnreachable(
                f"Keycloak is not reachable at {self.base_url}: {_short_reason(exc)}"
            ) from None
        if resp.status_code != 200:
            raise KeycloakUnreachable(
                f"Keycloak is not reachable at {self.base_url}: HTTP {resp.status_code} for the "
                "master realm",
                status=resp.status_code,
            )

    def realm_exists(self, slug: str) -> bool:
        """True if a realm of that name exists (also if the service client may not manage it)."""
        try:
            self._request("GET", self._realm_path(slug), what=f"read realm '{slug}'")
        except KeycloakNotFound:
            return False
        except KeycloakForbidden:
            return True
        return True

    def list_realms(self) -> list[dict]:
        """Realms the service client can see (brief representations: id, realm, displayName…).

        The service client sees the realms it created (not ``master``). Keycloak answers 403
        when the caller can see no realm at all; that is returned as an empty list.
        """
        try:
            return self._json(
                "GET", "/admin/realms", params={"briefRepresentation": "true"}, what="list realms"
            ) or []
        except KeycloakForbidden:
            return []

    def get_realm(self, slug: str) -> dict:
        return self._json("GET", self._realm_path(slug), what=f"read realm '{slug}'")

    def get_events_config(self, slug: str) -> dict:
        """The realm's event settings; ``enabledEventTypes`` lists what Keycloak stores."""
        return self._json(
            "GET", f"{self._realm_path(slug)}/events/config",
            what=f"read event settings of '{slug}'"
        )

    def get_client(self, realm: str, client_id: str) -> dict:
        """Full ClientRepresentation (incl. protocol mappers) of ``client_id`` in ``realm``."""
        uuid = self._client_uuid(realm, client_id)
        return self._json(
            "GET", f"{self._realm_path(realm)}/clients/{_seg(uuid)}",
            what=f"read client '{client_id}' in '{realm}'",
        )

    def create_realm(self, realm_rep: dict) -> None:
        """Create a realm from a representation (see :func:`render_realm`)."""
        slug = _check_slug(realm_rep.get("realm", ""))
        try:
            self._request("POST", "/admin/realms", json_body=realm_rep,
                          what=f"create realm '{slug}'")
        except KeycloakConflict as exc:
            raise KeycloakConflict(
                f"realm '{slug}' already exists", status=exc.status, kc_error=exc.kc_error
            ) from None
        self.make_names_optional(slug)

    def make_names_optional(self, slug: str) -> None:
        """Keycloak 26's default user profile requires first and last name and would stop
        every invited user at an extra form. Leakhub only needs the e-mail (data economy),
        so names stay optional. Idempotent."""
        path = f"{self._realm_path(slug)}/users/profile"
        profile = self._json("GET", path, what=f"read user profile of '{slug}'")
        changed = False
        for attribute in profile.get("attributes", []):
            if attribute.get("name") in ("firstName", "lastName") and attribute.get("required"):
                attribute.pop("required")
                changed = True
        if changed:
            self._request("PUT", path, json_body=profile, what=f"update user profile of '{slug}'")

    def update_realm_policies(self, slug: str, *, template_path: str | Path | None = None,
                              reset_password_allowed: bool) -> None:
        """Bring an existing realm to the template's password policy (length, hashing,
        notUsername, notEmail, the blocklist) and show "Forgot password?" only when Leakhub has
        a mail server (LEAKHUB_SMTP_HOST); internationalization as in the template (de, en).
        Idempotent; `leakctl setup` runs it for every realm."""
        path = Path(template_path) if template_path else DEFAULT_TEMPLATE_PATH
        with open(path, encoding="utf-8") as fh:
            try:
                template = json.load(fh)
                policy = template.get("passwordPolicy")
            except (json.JSONDecodeError, AttributeError) as exc:
                raise ValueError(f"realm template {path} is not a JSON object: {exc}") from None
        body: dict[str, Any] = {"resetPasswordAllowed": bool(reset_password_allowed)}
        if policy:
            body["passwordPolicy"] = policy
        # The sign-in, password and e-mail pages in the user's language (issue 14): the
        # template's internationalization settings (de and en) reach realms made before it.
        for key in I18N_KEYS:
            if key in template:
                body[key] = template[key]
        self._request("PUT", self._realm_path(slug), json_body=body,
                      what=f"update password settings of '{slug}'")

    def delete_realm(self, slug: str) -> None:
        """Delete a realm and everything in it. Refuses ``master``."""
        _check_slug(slug)
        self._request("DELETE", self._realm_path(slug), what=f"delete realm '{slug}'")

    def update_app_client(
        self,
        slug: str,
        *,
        public_url: str,
        internal_url: str,
        secret: str,
        template_path: str | Path | None = None,
    ) -> None:
        """Re-apply the template's ``leakhub`` client (redirect URIs, logout URLs, secret,
        audience mapper) to an existing realm; creates the client if it is missing."""
        realm = self.get_realm(slug)
        rendered = render_realm(
            template_path,
            slug=slug,
            name=realm.get("displayName") or slug,
            public_url=public_url,
            internal_url=internal_url,
            app_client_secret=secret,
        )
        want = next(
            (c for c in rendered.get("clients", []) if c.get("clientId") == APP_CLIENT_ID), None
        )
        if want is None:
            raise ValueError(f"realm template has no client '{APP_CLIENT_ID}'")
        clients = f"{self._realm_path(slug)}/clients"
        try:
            uuid = self._client_uuid(slug, APP_CLIENT_ID)
        except KeycloakNotFound:
            self._request("POST", clients, json_body=want, what=f"create app client in '{slug}'")
            return
        current = self._json("GET", f"{clients}/{_seg(uuid)}")
        merged = copy.deepcopy(current)
        merged.update({k: v for k, v in want.items() if k not in ("attributes", "protocolMappers")})
        merged.setdefault("attributes", {}).update(want.get("attributes", {}))
        merged.pop("protocolMappers", None)
        self._request(
            "PUT", f"{clients}/{_seg(uuid)}", json_body=merged,
            what=f"update app client in '{slug}'"
        )
        self._ensure_mappers(slug, uuid, want.get("protocolMappers", []))

    def _ensure_mappers(self, realm: str, client_uuid: str, wanted: Iterable[dict]) -> None:
        base = f"{self._realm_path(realm)}/clients/{_seg(client_uuid)}/protocol-mappers/models"
        existing = {m.get("name"): m for m in self._json("GET", base) or []}
        for mapper in wanted:
            have = existing.get(mapper["name"])
            if have is None:
                self._request("POST", base, json_body=mapper, what="add protocol mapper")
            elif have.get("protocolMapper") != mapper["protocolMapper"] or any(
                (have.get("config") or {}).get(k) != v for k, v in mapper.get("config", {}).items()
            ):
                body = dict(mapper, id=have["id"])
                self._request(
                    "PUT", f"{base}/{_seg(have['id'])}", json_body=body,
                    what="update protocol mapper",
                )

    # ----------------------------------------------------------------- users

    def create_user(
        self,
        realm: str,
        *,
        email: str,
        first_name: str = "",
        last_name: str = "",
        temporary_password: str | None = None,
        required_actions: Iterable[str] = ("UPDATE_PASSWORD",),
        enabled: bool = True,
    ) -> str:
        """Create a user (username = email) and return its id.

        With ``temporary_password`` the password is set in a second call (so it never appears
        in the admin event's representation); if Keycloak rejects it (password policy) the
        user is deleted again and the :class:`KeycloakError` is raised.
        """
        email = (email or "").strip()
        if not email or "@" not in email or _CONTROL_RE.search(email) or len(email) > 254:
            raise ValueError(f"not a valid e-mail address: {email!r}")
        rep = {
            "username": email.lower(),
            "email": email,
            "firstName": first_name or "",
            "lastName": last_name or "",
            "enabled": bool(enabled),
            "emailVerified": False,
            "requiredActions": list(required_actions or ()),
        }
        users = f"{self._realm_path(realm)}/users"
        try:
            resp = self._request("POST", users, json_body=rep, what=f"create user in '{realm}'")
        except KeycloakConflict as exc:
            raise KeycloakConflict(
                f"a user with e-mail {email} already exists in realm '{realm}'",
                status=exc.status, kc_error=exc.kc_error,
            ) from None
        user_id = self._created_id(resp)
        if temporary_password is not None:
            try:
                self.reset_password(realm, user_id, temporary_password, temporary=True)
            except KeycloakError:
                try:
                    self._request("DELETE", f"{users}/{_seg(user_id)}")
                except KeycloakError:
                    log.warning("could not remove half-created user %s in %s", user_id, realm)
                raise
        return user_id

    def find_user_by_email(self, realm: str, email: str) -> dict | None:
        found = self._json(
            "GET",
            f"{self._realm_path(realm)}/users",
            params={"email": email, "exact": "true", "briefRepresentation": "false"},
            what=f"search user in '{realm}'",
        )
        wanted = (email or "").strip().lower()
        for user in found or []:
            if (user.get("email") or "").lower() == wanted:
                return user
        return None

    def get_user(self, realm: str, user_id: str) -> dict:
        return self._json(
            "GET", f"{self._realm_path(realm)}/users/{_seg(user_id)}",
            what=f"read user {user_id} in '{realm}'",
        )

    def set_user_enabled(self, realm: str, user_id: str, enabled: bool) -> None:
        """Enable or disable a user. Disabling also ends all the user's Keycloak sessions."""
        path = f"{self._realm_path(realm)}/users/{_seg(user_id)}"
        user = self.get_user(realm, user_id)  # full representation: PUT replaces attributes
        user["enabled"] = bool(enabled)
        self._request("PUT", path, json_body=user, what=f"update user {user_id} in '{realm}'")
        if not enabled:
            self.logout_user(realm, user_id)

    def set_user_locale(self, realm: str, user_id: str, locale: str | None) -> None:
        """The user's `locale` attribute: the language of Keycloak's sign-in, password and
        e-mail pages for this user ("en", "de"; None removes it: the realm's default)."""
        if locale is not None and not re.fullmatch(r"[a-z]{2}(-[A-Z]{2})?", locale):
            raise ValueError(f"not a locale: {locale!r}")
        path = f"{self._realm_path(realm)}/users/{_seg(user_id)}"
        user = self.get_user(realm, user_id)  # full representation: PUT replaces attributes
        attributes = dict(user.get("attributes") or {})
        if locale is None:
            attributes.pop("locale", None)
        else:
            attributes["locale"] = [locale]
        user["attributes"] = attributes
        self._request("PUT", path, json_body=user,
                      what=f"set the language of user {user_id} in '{realm}'")

    def logout_user(self, realm: str, user_id: str) -> None:
        """End all of the user's Keycloak sessions (back-channel logout is sent to clients)."""
        self._request(
            "POST", f"{self._realm_path(realm)}/users/{_seg(user_id)}/logout",
            what=f"log out user {user_id} in '{realm}'",
        )

    def get_login_failures(self, realm: str, user_id: str) -> dict:
        """Brute-force state of a user: ``numFailures``, ``disabled`` (temporarily locked), …"""
        return self._json(
            "GET", f"{self._realm_path(realm)}/attack-detection/brute-force/users/{_seg(user_id)}",
            what=f"read login failures of user {user_id} in '{realm}'",
        )

    def clear_login_failures(self, realm: str, user_id: str) -> None:
        """Unlock a user locked out by brute-force detection."""
        self._request(
            "DELETE",
            f"{self._realm_path(realm)}/attack-detection/brute-force/users/{_seg(user_id)}",
            what=f"clear login failures of user {user_id} in '{realm}'",
        )

    def set_brute_force(self, realm: str, *, permanent: bool, failures: int = 3) -> None:
        """Lock-out after ``failures`` failed sign-ins: for a growing wait (``permanent`` False,
        the template's setting) or until an administrator unlocks (``permanentLockout``:
        Keycloak then disables the user and marks it as locked by brute-force detection)."""
        body = {"bruteForceProtected": True, "permanentLockout": bool(permanent),
                "failureFactor": int(failures), "maxTemporaryLockouts": 0}
        self._request("PUT", self._realm_path(realm), json_body=body,
                      what=f"update lock-out settings of '{realm}'")

    def set_token_settings(self, realm: str, settings: Mapping[str, Any]) -> None:
        """Token and session lifespans of a realm (``accessTokenLifespan``, ``rememberMe``,
        ``ssoSession…``, ``revokeRefreshToken``, ``refreshTokenMaxReuse``; seconds)."""
        allowed = {"accessTokenLifespan", "ssoSessionIdleTimeout", "ssoSessionMaxLifespan",
                   "rememberMe", "ssoSessionIdleTimeoutRememberMe",
                   "ssoSessionMaxLifespanRememberMe", "revokeRefreshToken",
                   "refreshTokenMaxReuse"}
        unknown = set(settings) - allowed
        if unknown:
            raise ValueError(f"not a token setting: {', '.join(sorted(unknown))}")
        self._request("PUT", self._realm_path(realm), json_body=dict(settings),
                      what=f"update token settings of '{realm}'")

    def list_users(self, realm: str, *, page: int = 200) -> list[dict]:
        """Every user of a realm (full representations), page by page."""
        users, first = [], 0
        while True:
            chunk = self._json(
                "GET", f"{self._realm_path(realm)}/users",
                params={"first": first, "max": page, "briefRepresentation": "false"},
                what=f"list users of '{realm}'") or []
            users.extend(chunk)
            if len(chunk) < page:
                return users
            first += page

    def update_user(self, realm: str, user_id: str, changes: Mapping[str, Any]) -> None:
        """Change fields of a user (full representation read first: PUT replaces it)."""
        path = f"{self._realm_path(realm)}/users/{_seg(user_id)}"
        user = self.get_user(realm, user_id)
        user.update(changes)
        self._request("PUT", path, json_body=user, what=f"update user {user_id} in '{realm}'")

    def set_edit_username_allowed(self, realm: str, allowed: bool) -> None:
        self._request("PUT", self._realm_path(realm),
                      json_body={"editUsernameAllowed": bool(allowed)},
                      what=f"update username settings of '{realm}'")

    def execute_actions_email(
        self,
        realm: str,
        user_id: str,
        actions: Iterable[str],
        *,
        client_id: str = APP_CLIENT_ID,
        redirect_uri: str | None = None,
        lifespan: int = 86400,
    ) -> None:
        """Mail the user a link to perform ``actions`` (e.g. UPDATE_PASSWORD). Needs the realm's
        SMTP settings; without them Keycloak answers HTTP 500."""
        self._request(
            "PUT",
            f"{self._realm_path(realm)}/users/{_seg(user_id)}/execute-actions-email",
            json_body=list(actions),
            params={"client_id": client_id, "redirect_uri": redirect_uri,
                    "lifespan": int(lifespan)},
            what=f"send actions e-mail to user {user_id} in '{realm}'",
        )

    def delete_user(self, realm: str, user_id: str) -> None:
        """Remove a user (used to undo a half-finished invitation)."""
        self._request(
            "DELETE", f"{self._realm_path(realm)}/users/{_seg(user_id)}",
            what=f"delete user {user_id} in '{realm}'",
        )

    def logout_session(self, realm: str, session_id: str) -> None:
        """End one Keycloak session (the ``sid`` of an ID token); Keycloak sends the
        back-channel logout for it to the clients."""
        self._request(
            "DELETE", f"{self._realm_path(realm)}/sessions/{_seg(session_id)}",
            what=f"end session in '{realm}'",
        )

    def set_smtp_server(self, realm: str, smtp: Mapping[str, Any]) -> None:
        """Set the realm's outgoing mail server (Keycloak's ``smtpServer``: host, port, from,
        fromDisplayName, auth, user, password, starttls, ssl — all strings). Needed for
        :meth:`execute_actions_email`. The password is sent only in this call's body."""
        body = {"smtpServer": {k: ("true" if v is True else "false" if v is False else str(v))
                               for k, v in smtp.items() if v is not None}}
        self._request("PUT", self._realm_path(realm), json_body=body,
                      what=f"update mail settings of '{realm}'")

    def reset_password(self, realm: str, user_id: str, password: str, *,
                       temporary: bool = True) -> None:
        """Set a password. A policy violation raises :class:`KeycloakError` (status 400) whose
        message names the rule (Keycloak's message key, e.g. invalidPasswordMinLengthMessage)."""
        self._request(
            "PUT",
            f"{self._realm_path(realm)}/users/{_seg(user_id)}/reset-password",
            json_body={"type": "password", "value": password, "temporary": bool(temporary)},
            what=f"set password of user {user_id} in '{realm}'",
        )

    # ----------------------------------------------------------------- device clients

    def create_service_client(self, realm: str, client_id: str, *, description: str = "") -> str:
        """Create a device client (client credentials only, tokens carry ``aud`` leakhub-api)
        and return its generated secret."""
        if not _CLIENT_ID_RE.match(client_id or "") or client_id in _PROTECTED_CLIENTS:
            raise ValueError(f"not a valid device client id: {client_id!r}")
        rep = {
            "clientId": client_id,
            "name": client_id,
            "description": description or "",
            "enabled": True,
            "protocol": "openid-connect",
            "publicClient": False,
            "bearerOnly": False,
            "clientAuthenticatorType": "client-secret",
            "standardFlowEnabled": False,
            "implicitFlowEnabled": False,
            "directAccessGrantsEnabled": False,
            "serviceAccountsEnabled": True,
            "frontchannelLogout": False,
            "consentRequired": False,
            "fullScopeAllowed": False,
            # only what a device token needs: sub (basic) and client_id (service_account);
            # no profile/email/roles claims
            "defaultClientScopes": ["basic", "service_account"],
            "optionalClientScopes": [],
            "attributes": {
                "use.refresh.tokens": "false",
                "client_credentials.use_refresh_token": "false",
                "oauth2.device.authorization.grant.enabled": "false",
                "oidc.ciba.grant.enabled": "false",
                "standard.token.exchange.enabled": "false",
            },
            "protocolMappers": [_audience_mapper()],
        }
        clients = f"{self._realm_path(realm)}/clients"
        try:
            resp = self._request(
                "POST", clients, json_body=rep, what=f"create client '{client_id}' in '{realm}'"
            )
        except KeycloakConflict as exc:
            raise KeycloakConflict(
                f"client '{client_id}' already exists in realm '{realm}'",
                status=exc.status, kc_error=exc.kc_error,
            ) from None
        uuid = self._created_id(resp)
        secret = self._json("GET", f"{clients}/{_seg(uuid)}/client-secret",
                            what="read client secret")
        value = (secret or {}).get("value")
        if not value:
            raise KeycloakError(f"Keycloak generated no secret for client '{client_id}'")
        return value

    def set_client_enabled(self, realm: str, client_id: str, enabled: bool) -> None:
        if client_id in _PROTECTED_CLIENTS:
            raise ValueError(f"client '{client_id}' is not a device client")
        uuid = self._client_uuid(realm, client_id)
        path = f"{self._realm_path(realm)}/clients/{_seg(uuid)}"
        rep = self._json("GET", path)
        rep["enabled"] = bool(enabled)
        self._request("PUT", path, json_body=rep, what=f"update client '{client_id}' in '{realm}'")

    def delete_client(self, realm: str, client_id: str) -> None:
        if client_id in _PROTECTED_CLIENTS:
            raise ValueError(f"client '{client_id}' is not a device client")
        uuid = self._client_uuid(realm, client_id)
        self._request(
            "DELETE", f"{self._realm_path(realm)}/clients/{_seg(uuid)}",
            what=f"delete client '{client_id}' in '{realm}'",
        )

    # ----------------------------------------------------------------- events

    def get_events(
        self, realm: str, *, first: int = 0, max: int = 500, date_from=None
    ) -> list[dict]:  # noqa: A002 - name fixed by the interface
        """Login events of the realm, **oldest first**. ``date_from``: datetime (naive = UTC),
        date, or epoch milliseconds; inclusive."""
        return self._json(
            "GET",
            f"{self._realm_path(realm)}/events",
            params={
                "first": int(first),
                "max": int(max),
                "dateFrom": _to_millis(date_from),
                "direction": "asc",
            },
            what=f"read events of '{realm}'",
        ) or []

    def get_admin_events(
        self, realm: str, *, first: int = 0, max: int = 500, date_from=None
    ) -> list[dict]:  # noqa: A002
        """Admin events of the realm, **oldest first** (same parameters as :meth:`get_events`)."""
        return self._json(
            "GET",
            f"{self._realm_path(realm)}/admin-events",
            params={
                "first": int(first),
                "max": int(max),
                "dateFrom": _to_millis(date_from),
                "direction": "asc",
            },
            what=f"read admin events of '{realm}'",
        ) or []
