"""A realm's keys served locally: unit tests sign tokens with a key of their own and the app
finds it where it would fetch Keycloak's JWKS (`auth.realm_keys` / `identity.views.realm_keys`
patched to return this)."""
from __future__ import annotations

from joserfc.jwk import KeySet, RSAKey

from leakhub.identity.tokens import RealmKeys

_BASE = "https://leakhub.test/auth/realms/x/protocol/openid-connect"


def signing_key(kid: str) -> RSAKey:
    return RSAKey.generate_key(2048, parameters={"kid": kid, "use": "sig", "alg": "RS256"})


class LocalRealm(RealmKeys):
    """Publishes `key` (and an OIDC metadata document naming the usual endpoints)."""

    def __init__(self, key: RSAKey):
        super().__init__("http://unused")
        self._key = key

    def metadata(self):
        return {"jwks_uri": _BASE + "/certs", "authorization_endpoint": _BASE + "/auth",
                "token_endpoint": _BASE + "/token", "end_session_endpoint": _BASE + "/logout"}

    def _fetch_keys(self):
        return KeySet([self._key])
