"""Token validation with a local signing key and a stand-in for the realm's key endpoint."""
import time

import pytest
from joserfc import jwt
from joserfc.jwk import KeySet, OctKey, RSAKey

from leakhub.identity.tokens import RealmKeys, TokenError, verify_jwt

ISS = "https://leakhub.test/auth/realms/acme"


class FakeRealm(RealmKeys):
    def __init__(self, keys):
        super().__init__("http://unused")
        self._published = keys
        self.fetches = 0

    def metadata(self):
        with self._lock:
            return {"jwks_uri": "http://unused/certs"}

    def _fetch_keys(self):
        self.metadata()  # the real one calls metadata() while keys() holds the lock
        self.fetches += 1
        return KeySet([k for k in self._published])


@pytest.fixture
def key():
    return RSAKey.generate_key(2048, parameters={"kid": "k1", "use": "sig", "alg": "RS256"})


def token(key, alg="RS256", **claims):
    now = int(time.time())
    body = {"iss": ISS, "aud": "leakhub-api", "sub": "u1", "iat": now, "exp": now + 300, **claims}
    return jwt.encode({"alg": alg, "kid": key.kid}, body, key)


def test_valid_token_and_string_audience(key):
    realm = FakeRealm([key])
    assert verify_jwt(token(key), realm, issuer=ISS, audience="leakhub-api")["sub"] == "u1"
    assert verify_jwt(token(key, aud=["x", "leakhub-api"]), realm, issuer=ISS,
                      audience="leakhub-api")


@pytest.mark.parametrize("claims,reason", [
    ({"exp": -31}, "expired"),
    ({"nbf": 120}, "nbf"),
    ({"aud": "other"}, "aud"),
    ({"iss": "https://evil.example/auth/realms/acme"}, "iss"),
])
def test_bad_claims_are_rejected(key, claims, reason):
    # times are offsets from now, taken when the test runs (not when it is collected)
    claims = {k: int(time.time()) + v if k in ("exp", "nbf") else v for k, v in claims.items()}
    with pytest.raises(TokenError):
        verify_jwt(token(key, **claims), FakeRealm([key]), issuer=ISS, audience="leakhub-api")


def test_leeway_is_at_most_30_seconds(key):
    ok = token(key, exp=int(time.time()) - 20)
    assert verify_jwt(ok, FakeRealm([key]), issuer=ISS, audience="leakhub-api")


def test_none_and_hmac_algorithms_are_refused(key):
    import base64
    import json

    def b64(d):
        return base64.urlsafe_b64encode(json.dumps(d).encode()).rstrip(b"=").decode()

    unsigned = b64({"alg": "none"}) + "." + b64({"iss": ISS, "aud": "leakhub-api",
                                                 "exp": int(time.time()) + 60}) + "."
    with pytest.raises(TokenError, match="not allowed"):
        verify_jwt(unsigned, FakeRealm([key]), issuer=ISS, audience="leakhub-api")
    pem = key.as_pem(private=False)
    hs = jwt.encode({"alg": "HS256", "kid": "k1"}, {"iss": ISS, "aud": "leakhub-api",
                                                    "exp": int(time.time()) + 60},
                    OctKey.import_key(pem), algorithms=["HS256"])
    with pytest.raises(TokenError, match="not allowed"):
        verify_jwt(hs, FakeRealm([key]), issuer=ISS, audience="leakhub-api")


def test_unknown_kid_refetches_once_then_fails(key):
    stranger = RSAKey.generate_key(2048, parameters={"kid": "k2"})
    realm = FakeRealm([key])
    verify_jwt(token(key), realm, issuer=ISS, audience="leakhub-api")
    with pytest.raises(TokenError):  # within 10 s of a fetch: no refetch (no hammering)
        verify_jwt(token(stranger), realm, issuer=ISS, audience="leakhub-api")
    assert realm.fetches == 1
    realm._keys_at -= 60
    with pytest.raises(TokenError):
        verify_jwt(token(stranger), realm, issuer=ISS, audience="leakhub-api")
    assert realm.fetches == 2  # the unknown kid caused one refetch (rotation), then failed
    realm._published.append(stranger)
    realm._keys_at -= 60
    assert verify_jwt(token(stranger), realm, issuer=ISS, audience="leakhub-api")


def test_tampered_payload_is_refused(key):
    head, body, sig = token(key).split(".")
    import base64
    import json

    data = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    data["sub"] = "admin"
    forged = base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()
    with pytest.raises(TokenError):
        verify_jwt(f"{head}.{forged}.{sig}", FakeRealm([key]), issuer=ISS, audience="leakhub-api")
