"""Validation of tokens issued by an organization's realm: ID tokens, logout tokens,
and (for the API) access tokens. One place for signature, algorithm and claim checks.

Metadata and keys are fetched over Keycloak's internal URL, but `iss` is always checked
against the public issuer (`https://HOST/auth/realms/SLUG`), which is what Keycloak
signs into tokens when KC_HOSTNAME is the public URL.
"""
from __future__ import annotations

import threading
import time

import requests
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet

from ..core.errors import Forbidden

# Asymmetric only: no "none", no HMAC (a realm's public key must never work as a secret).
ALLOWED_ALGORITHMS = ["RS256", "PS256", "ES256"]
LEEWAY_SECONDS = 30
_METADATA_TTL = 300
_JWKS_MIN_REFRESH = 10


class TokenError(Forbidden):
    """The token is not acceptable. The message is safe to log (no token content)."""

    status = 401
    title = "Unauthorized"


class RealmKeys:
    """Discovery document and JWKS of one realm, cached; JWKS refetched on an unknown kid."""

    def __init__(self, internal_realm_url: str, http: requests.Session | None = None):
        self.internal_realm_url = internal_realm_url
        self.http = http or requests.Session()
        self._lock = threading.RLock()  # keys() refetching calls metadata()
        self._metadata = None
        self._metadata_at = 0.0
        self._keys: KeySet | None = None
        self._keys_at = 0.0

    def metadata(self) -> dict:
        with self._lock:
            if self._metadata is None or time.monotonic() - self._metadata_at > _METADATA_TTL:
                url = f"{self.internal_realm_url}/.well-known/openid-configuration"
                resp = self.http.get(url, timeout=10)
                resp.raise_for_status()
                self._metadata = resp.json()
                self._metadata_at = time.monotonic()
            return self._metadata

    def _fetch_keys(self) -> KeySet:
        resp = self.http.get(self.metadata()["jwks_uri"], timeout=10)
        resp.raise_for_status()
        data = resp.json()
        usable = [k for k in data.get("keys", []) if k.get("use", "sig") == "sig"
                  and k.get("alg", "RS256") in ALLOWED_ALGORITHMS]
        return KeySet.import_key_set({"keys": usable})

    def keys(self, kid: str | None) -> KeySet:
        with self._lock:
            stale = self._keys is None
            if not stale and kid is not None and not any(k.kid == kid for k in self._keys.keys):
                # Unknown kid: the realm may have rotated keys. Refetch, but not in a tight loop.
                stale = time.monotonic() - self._keys_at > _JWKS_MIN_REFRESH
            if stale:
                self._keys = self._fetch_keys()
                self._keys_at = time.monotonic()
            return self._keys


_realm_keys: dict[str, RealmKeys] = {}
_realm_keys_lock = threading.Lock()


def realm_keys(config, slug: str) -> RealmKeys:
    url = config.keycloak_internal_realm_url(slug)
    with _realm_keys_lock:
        rk = _realm_keys.get(url)
        if rk is None:
            rk = _realm_keys[url] = RealmKeys(url)
        return rk


def _unverified_header(token: str) -> dict:
    import base64
    import json

    try:
        head = token.split(".")[0]
        head += "=" * (-len(head) % 4)
        return json.loads(base64.urlsafe_b64decode(head))
    except Exception:
        raise TokenError("token is not a JWS compact serialization") from None


def verify_jwt(token: str, keys: RealmKeys, *, issuer: str, audience: str | None,
               required=("exp", "iat", "iss"), extra_claims: dict | None = None,
               now: int | None = None) -> dict:
    if not isinstance(token, str) or token.count(".") != 2:
        raise TokenError("token is not a JWS compact serialization")
    header = _unverified_header(token)
    if header.get("alg") not in ALLOWED_ALGORITHMS:
        raise TokenError(f"algorithm {header.get('alg')!r} is not allowed")
    try:
        key_set = keys.keys(header.get("kid"))
        decoded = jwt.decode(token, key_set, algorithms=ALLOWED_ALGORITHMS)
    except requests.RequestException as exc:
        raise TokenError(f"could not fetch the realm's keys: {type(exc).__name__}") from None
    except (JoseError, ValueError) as exc:
        raise TokenError(f"signature check failed: {type(exc).__name__}") from None
    options = {name: {"essential": True} for name in required}
    options["iss"] = {"essential": True, "value": issuer}
    if audience is not None:
        options["aud"] = {"essential": True, "value": audience}
    for name, option in (extra_claims or {}).items():
        options[name] = option
    registry = jwt.JWTClaimsRegistry(now=now, leeway=LEEWAY_SECONDS, **options)
    try:
        registry.validate(decoded.claims)
    except JoseError as exc:
        description = getattr(exc, "description", None)
        raise TokenError(f"claim check failed: {exc.error}"
                         f"{' (' + description + ')' if description else ''}") from None
    return decoded.claims
