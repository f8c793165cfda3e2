"""Recording security events: `record()` is the one function every caller uses.

Never stores secrets: tokens, cookies, passwords, codes are dropped from `details` by key,
strings are shortened, and only the fields below are kept. Recording never breaks the
request or job that calls it (a failure is logged and swallowed).
"""
from __future__ import annotations

import datetime as dt
import ipaddress
import json
import logging
import re

from flask import g, has_request_context, request, session
from flask_login import current_user

from ..core.db import database, utcnow
from ..orgs.models import ORG_COOKIE, Organization
from .models import SecurityEvent

log = logging.getLogger("leakhub.security")

_SECRET_KEY = re.compile(
    r"(token|secret|password|passwd|cookie|authorization|credential|code|nonce|state|"
    r"verifier|session_key|assertion|representation)", re.I)
_MAX_TEXT = 300


def scrub(value, depth: int = 0):
    """Details as stored: no secret-looking keys, short strings, bounded nesting."""
    if depth > 3:
        return None
    if isinstance(value, dict):
        return {str(k)[:64]: scrub(v, depth + 1) for k, v in list(value.items())[:40]
                if not _SECRET_KEY.search(str(k))}
    if isinstance(value, (list, tuple)):
        return [scrub(v, depth + 1) for v in list(value)[:40]]
    if isinstance(value, str):
        return value[:_MAX_TEXT]
    if value is None or isinstance(value, (bool, int, float)):
        return value
    return str(value)[:_MAX_TEXT]


def clean_ip(ip) -> str | None:
    if not ip:
        return None
    try:
        return str(ipaddress.ip_address(str(ip).strip()))
    except ValueError:
        return None


def network_of(ip: str | None) -> str | None:
    """The /24 (IPv4) or /48 (IPv6) network an address belongs to."""
    ip = clean_ip(ip)
    if ip is None:
        return None
    addr = ipaddress.ip_address(ip)
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped:
        addr = addr.ipv4_mapped
    prefix = 24 if addr.version == 4 else 48
    return str(ipaddress.ip_network(f"{addr}/{prefix}", strict=False))


def truncate_ip(ip: str | None) -> str | None:
    """IPv4 → last octet 0 (a.b.c.0), IPv6 → the /48 network address."""
    net = network_of(ip)
    return net.split("/")[0] if net else None


def _request_defaults():
    if not has_request_context():
        return None, None
    return request.remote_addr, g.get("request_id")


def record(kind: str, *, organization=None, user=None, username=None, ip=None,
           request_id=None, details=None, source: str = "leakhub", at=None,
           external_id: str | None = None) -> SecurityEvent | None:
    """Store one security event. In a request, ip and request id default to the request's.
    Returns the row, or None when it could not be stored (logged, never raised)."""
    try:
        req_ip, req_id = _request_defaults()
        if organization is None and user is not None:
            organization = user.organization_id
        if not username and user is not None:
            username = user.email
        row = SecurityEvent(
            organization=organization, at=at or utcnow(), recorded_at=utcnow(),
            source=source, kind=kind[:32], user=user, username=(username or "")[:254],
            ip=clean_ip(ip if ip is not None else req_ip),
            request_id=((request_id if request_id is not None else req_id) or None),
            details=json.dumps(scrub(details or {}), sort_keys=True, ensure_ascii=False),
            external_id=external_id)
        with database.atomic():
            row.save(force_insert=True)
        return row
    except Exception as exc:  # a security log must not take the application down
        log.error("could not record security event %s: %s", kind, type(exc).__name__)
        return None


# --------------------------------------------------------------------------- web hooks


def _request_actor():
    """(organization, user) of the current request, when someone is signed in."""
    try:
        if current_user and current_user.is_authenticated:
            return current_user.organization, current_user.user
    except Exception:
        pass
    return None, None


def record_http_error(code: int) -> None:
    """Called by core.web's error handler: 403 (CSRF or permission) and 429 responses.
    Never raises: the error page must render whatever happens here."""
    if code not in (403, 429):
        return
    try:
        _record_http_error(code)
    except Exception as exc:
        log.error("could not record HTTP %s as a security event: %s", code, type(exc).__name__)


def recent_count(kind: str, ip: str | None, window: dt.timedelta) -> int:
    """Events of `kind` from one address within `window`, in every organization: a
    system-level count for throttling (requests refused before any organization is known),
    never shown to anyone."""
    ip = clean_ip(ip)
    if ip is None:
        return 0
    return (SecurityEvent.select()
            .where((SecurityEvent.recorded_at >= utcnow() - window)
                   & (SecurityEvent.kind == kind) & (SecurityEvent.ip == ip))
            .count())


def _record_http_error(code: int) -> None:
    org, user = _request_actor()
    details = {"method": request.method, "path": request.path[:200],
               "endpoint": request.endpoint}
    if code == 429:
        kind = "rate_limited"
        # One event per address and minute is the finding; every refused request is noise.
        if recent_count(kind, request.remote_addr, dt.timedelta(minutes=1)):
            return
    elif g.get("csrf_failure"):
        kind = "csrf_rejected"
        details["reason"] = g.csrf_failure
    else:
        kind = "access_denied"
    record(kind, organization=org, user=user, details=details)


def _org_from_cookie():
    slug = request.cookies.get(ORG_COOKIE)
    if not slug or len(slug) > 40:
        return None
    return Organization.get_or_none(Organization.slug == slug)


def init_app(app) -> None:
    """Session expiry is noticed in the session interface (`session.expired`); the row is
    gone by then, so the organization is taken from the sign-in cookie when there is one."""
    @app.before_request
    def _session_expired():
        if getattr(session, "expired", False) and request.endpoint != "static":
            org = _org_from_cookie()
            record("session_expired", organization=org,
                   details={"path": request.path[:200], "organization_from": "cookie"}
                   if org else {"path": request.path[:200]})
