"""Bearer-token authentication for the API (DESIGN §3.5).

The token's `iss` must be exactly one of our realms' public issuer URLs; that realm is the
organization. The token is validated locally (signature by the realm's JWKS, RS256/PS256/
ES256 only, `aud` contains `leakhub-api`, `exp`/`nbf` with ≤ 30 s leeway), then the
principal is looked up in Leakhub's database on every request: a disabled user, a removed
role or a disabled device is refused at once, whatever the token says.

Every refused token is a security event (`token_rejected`, with the reason, never the token).
Beyond MAX_REJECTED_PER_MINUTE refusals from one address within a minute, further refusals
are summarised in one `rate_limited` event per address and minute instead, so that garbage
cannot flood the security log. The answer stays 401 either way: clients (and a NAT full of
devices whose tokens just expired) rely on it to fetch a new token.
"""
from __future__ import annotations

import base64
import datetime as dt
import functools
import json

from flask import current_app, g, request
from flask_login import current_user
from werkzeug.exceptions import Forbidden, Unauthorized

from ..authz import Actor
from ..core.db import utcnow
from ..core.web import UNSAFE_METHODS, check_csrf
from ..devices.models import Device
from ..identity.models import User
from ..identity.tokens import TokenError, realm_keys, verify_jwt
from ..orgs.models import Organization
from ..security.events import recent_count, record
from .problems import PROBLEM_JSON

API_AUDIENCE = "leakhub-api"
USER_CLIENT = "leakhub"
MAX_REJECTED_PER_MINUTE = 30


class ApiUnauthorized(Unauthorized):
    def get_headers(self, environ=None, scope=None):
        return [("Content-Type", PROBLEM_JSON),
                ("WWW-Authenticate", 'Bearer realm="leakhub", error="invalid_token"')]


def _reject(reason: str):
    minute = dt.timedelta(minutes=1)
    details = {"reason": reason[:200], "path": request.path[:200]}
    if recent_count("token_rejected", request.remote_addr, minute) < MAX_REJECTED_PER_MINUTE:
        record("token_rejected", organization=g.get("token_org"), details=details)
    elif not recent_count("rate_limited", request.remote_addr, minute):
        record("rate_limited", organization=g.get("token_org"),
               details={**details, "limit": f"{MAX_REJECTED_PER_MINUTE} refused tokens per "
                                             "minute; further refusals not recorded"})
    raise ApiUnauthorized(description="A valid bearer access token is required.")


def _claimed_issuer(token: str) -> str | None:
    try:
        payload = token.split(".")[1]
        payload += "=" * (-len(payload) % 4)
        iss = json.loads(base64.urlsafe_b64decode(payload)).get("iss")
        return iss if isinstance(iss, str) else None
    except Exception:
        return None


def authenticate() -> Actor:
    """The Actor for this API request, or 401/403."""
    config = current_app.config["LEAKHUB"]
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        _reject("missing bearer token")
    token = token.strip()
    iss = _claimed_issuer(token)
    prefix = config.keycloak_public_url + "/realms/"
    if not iss or not iss.startswith(prefix):
        _reject("issuer is not one of our realms")
    org = Organization.get_or_none(Organization.slug == iss[len(prefix):])
    if org is None or config.issuer_for(org.slug) != iss:
        _reject("issuer is not one of our realms")
    g.token_org = org
    try:
        claims = verify_jwt(token, realm_keys(config, org.slug), issuer=iss,
                            audience=API_AUDIENCE, required=("exp", "iat", "iss", "aud", "sub"))
    except TokenError as exc:
        _reject(str(exc))
    azp = claims.get("azp")
    device = Device.get_or_none((Device.organization == org) & (Device.client_id == azp))
    if device is not None:
        if not device.enabled:
            _reject("device is disabled")
        Device.update(last_contact_at=utcnow()).where(Device.id == device.id).execute()
        return Actor(organization=org, kind="device", device=device, ip=request.remote_addr,
                     request_id=g.get("request_id"), label=f"device {device.name}")
    if azp != USER_CLIENT:
        _reject("token was not issued to Leakhub or a registered device")
    user = User.get_or_none((User.organization == org) & (User.sub == claims["sub"]))
    if user is None or not user.enabled:
        _reject("user is unknown or disabled")
    if user.role is None:
        raise Forbidden(description="Your account is waiting for access.")
    return Actor(organization=org, kind="user", user=user, ip=request.remote_addr,
                 request_id=g.get("request_id"))


def session_actor() -> Actor:
    """The Actor of the browser's signed-in session (the offline capture page's sync), or 403
    (waiting for access, or no CSRF token). Without a session (never signed in, or it expired
    or was revoked) the request is an API call without a token: 401, and the page asks to
    sign in again.

    State-changing calls need the session's CSRF token in the `X-CSRF-Token` header and, when
    the browser sends one, our own Origin (core.web.check_csrf): the cookie alone, which a
    browser attaches by itself, never suffices. The session keeps every property of a page
    request — server-side, idle timeout and lifetime, revoked by sign-out and by Keycloak's
    back-channel logout, authorization re-read per request — and no token that JavaScript
    could read or keep is ever handed to the page."""
    user = current_user.user
    if user.role is None:
        raise Forbidden(description="Your account is waiting for access.")
    if request.method in UNSAFE_METHODS:
        check_csrf(header_only=True)
    return Actor(organization=user.organization, kind="user", user=user, ip=request.remote_addr,
                 request_id=g.get("request_id"))


def api_auth(kind: str = "user", *, session: bool = False):
    """Decorator: authenticate the bearer token; `kind` says who may call — "user" endpoints
    refuse device tokens and "device" endpoints refuse user tokens (403). `session`: without
    an Authorization header, the browser's signed-in session is accepted too (session_actor:
    same origin, CSRF token in a header) — for the offline capture page's sync only."""

    def wrap(view):
        @functools.wraps(view)
        def inner(*args, **kwargs):
            if session and kind == "user" and "Authorization" not in request.headers \
                    and current_user.is_authenticated:
                actor = session_actor()
            else:
                actor = authenticate()
            if actor.kind != kind:
                raise Forbidden(description=f"This endpoint is for {kind} tokens only.")
            g.actor = actor
            return view(*args, **kwargs)

        # Bearer tokens are not sent automatically by browsers; the session variant checks
        # the CSRF header itself (session_actor).
        inner._csrf_exempt = True
        inner._session_auth = session
        return inner

    return wrap
