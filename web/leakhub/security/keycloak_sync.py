"""Pulling login and admin events from Keycloak into SecurityEvent rows (worker job).

Incremental per organization and event kind: the cursor keeps the newest event time (epoch
ms) and the ids already stored at that time. Keycloak's `dateFrom` is inclusive, so each run
re-reads from that time and skips the ids it has; the unique (organization, external_id)
index is the second line of defence. Each page of events and the cursor advance commit in
one transaction, so a crash never loses or doubles events.

What is kept is what the review needs: kind, time, user, username, IP, client, error. Never
the admin event's `representation` (it can carry a new password or a client secret), codes
or session ids.
"""
from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging

from ..core.config import get_config
from ..core.db import database, utcnow
from ..core.errors import Unavailable
from ..identity import keycloak
from ..identity.models import User
from ..orgs.models import Organization
from .events import clean_ip, scrub
from .models import KeycloakEventCursor, SecurityEvent

log = logging.getLogger("leakhub.security.sync")

PAGE_SIZE = 200
MAX_PAGES_PER_RUN = 25  # per organization and kind; the cursor carries on next run

# Keycloak login event type -> our kind. Successful token exchanges, refreshes and device
# client logins are routine and frequent; they are not stored (data economy).
LOGIN_TYPES = {
    "LOGIN": "sign_in",
    "LOGIN_ERROR": "sign_in_failed",
    "LOGOUT": "sign_out",
    "LOGOUT_ERROR": "auth_error",
    "USER_DISABLED_BY_TEMPORARY_LOCKOUT": "lockout",
    "USER_DISABLED_BY_PERMANENT_LOCKOUT": "lockout",
    "CODE_TO_TOKEN_ERROR": "token_rejected",
    "REFRESH_TOKEN_ERROR": "token_rejected",
    "INTROSPECT_TOKEN_ERROR": "token_rejected",
    "CLIENT_LOGIN_ERROR": "token_rejected",
    "TOKEN_EXCHANGE_ERROR": "token_rejected",
    "UPDATE_PASSWORD": "credential_changed",
    "UPDATE_CREDENTIAL": "credential_changed",
    "REMOVE_CREDENTIAL": "credential_changed",
    "UPDATE_TOTP": "credential_changed",
    "REMOVE_TOTP": "credential_changed",
    "RESET_PASSWORD": "credential_changed",
}
# LOGIN_ERROR errors that mean "this account is locked": also recorded as a lockout.
LOCKOUT_ERRORS = {"user_temporarily_disabled"}


class SyncError(Unavailable):
    """One or more organizations could not be synchronised (message names them)."""


def _external_id(event: dict, kind: str) -> str:
    if event.get("id"):
        return str(event["id"])[:72]
    if kind == "admin":
        auth = event.get("authDetails") or {}
        parts = (event.get("time"), event.get("operationType"), event.get("resourcePath"),
                 auth.get("userId"), auth.get("ipAddress"), event.get("error"))
    else:
        parts = (event.get("time"), event.get("type"), event.get("userId"),
                 event.get("ipAddress"), event.get("sessionId"), event.get("clientId"),
                 event.get("error"))
    raw = json.dumps([str(p) if p is not None else None for p in parts])
    return "h:" + hashlib.sha256(raw.encode()).hexdigest()[:40]


def _time(event: dict) -> int:
    try:
        return int(event.get("time") or 0)
    except (TypeError, ValueError):
        return 0


def _at(millis: int) -> dt.datetime:
    return dt.datetime.fromtimestamp(millis / 1000, dt.UTC).replace(tzinfo=None)


class _Users:
    """Keycloak user id (`sub`) -> our User mirror, cached for one run."""

    def __init__(self, org):
        self.org = org
        self.cache = {}

    def get(self, sub):
        if not sub:
            return None
        if sub not in self.cache:
            self.cache[sub] = User.get_or_none((User.organization == self.org) & (User.sub == sub))
        return self.cache[sub]


def map_login_event(event: dict, users: _Users) -> list[dict]:
    """One Keycloak login event -> zero or more SecurityEvent field dicts."""
    etype = str(event.get("type") or "")
    kind = LOGIN_TYPES.get(etype)
    error = event.get("error")
    if kind is None:
        if not etype.endswith("_ERROR"):
            return []
        kind = "auth_error"
    kc_details = event.get("details") or {}
    user = users.get(event.get("userId"))
    username = kc_details.get("username") or (user.email if user is not None else "")
    details = scrub({"type": etype, "error": error, "client": event.get("clientId"),
                     "auth_method": kc_details.get("auth_method")})
    details = {k: v for k, v in details.items() if v not in (None, "")}
    base = {"at": _at(_time(event)), "source": "keycloak", "user": user,
            "username": str(username)[:254], "ip": clean_ip(event.get("ipAddress")),
            "details": details}
    rows = [dict(base, kind=kind)]
    if etype == "LOGIN_ERROR" and error in LOCKOUT_ERRORS:
        rows.append(dict(base, kind="lockout", suffix=":lockout"))
    return rows


def map_admin_event(event: dict, users: _Users) -> list[dict]:
    auth = event.get("authDetails") or {}
    user = users.get(auth.get("userId"))
    details = {"operation": event.get("operationType"), "resource": event.get("resourceType"),
               "path": event.get("resourcePath"), "error": event.get("error"),
               "by_client": auth.get("clientId"), "by_realm": auth.get("realmId")}
    details = {k: v for k, v in scrub(details).items() if v not in (None, "")}
    return [{"at": _at(_time(event)), "source": "keycloak", "kind": "admin_event",
             "user": user, "username": user.email if user is not None else "",
             "ip": clean_ip(auth.get("ipAddress")), "details": details}]


def _fetch(client, org, kind, *, first, date_from):
    if kind == "login":
        return client.get_events(org.slug, first=first, max=PAGE_SIZE, date_from=date_from)
    return client.get_admin_events(org.slug, first=first, max=PAGE_SIZE, date_from=date_from)


def sync_org(client, org: Organization, kind: str) -> int:
    """Pull one organization's events of one kind since its cursor. Returns rows added."""
    cursor, _ = KeycloakEventCursor.get_or_create(
        organization=org, kind=kind, defaults={"updated_at": utcnow()})
    last_time = cursor.last_time
    seen = set(json.loads(cursor.seen_ids or "[]"))
    date_from = last_time  # inclusive: re-read the last millisecond, skip seen ids
    users = _Users(org)
    mapper = map_login_event if kind == "login" else map_admin_event
    added = 0
    first = 0
    for _page in range(MAX_PAGES_PER_RUN):
        events = _fetch(client, org, kind, first=first, date_from=date_from) or []
        events = sorted(events, key=_time)  # oldest first (the client asks for that too)
        rows = []
        for ev in events:
            t = _time(ev)
            ext = _external_id(ev, kind)
            if last_time is not None and (t < last_time or (t == last_time and ext in seen)):
                continue
            for fields in mapper(ev, users):
                suffix = fields.pop("suffix", "")
                fields["details"] = json.dumps(fields["details"], sort_keys=True,
                                               ensure_ascii=False)
                rows.append(dict(fields, organization=org.id, external_id=ext + suffix,
                                 recorded_at=utcnow(),
                                 user=fields["user"].id if fields["user"] else None))
            if last_time is None or t > last_time:
                last_time, seen = t, {ext}
            else:
                seen.add(ext)
        with database.atomic():
            for row in rows:
                # rowcount, not lastrowid: SQLite keeps the previous id on an ignored insert
                added += database.execute(SecurityEvent.insert(**row).on_conflict_ignore()).rowcount
            (KeycloakEventCursor
             .update(last_time=last_time, seen_ids=json.dumps(sorted(seen)), updated_at=utcnow())
             .where(KeycloakEventCursor.id == cursor.id).execute())
        if len(events) < PAGE_SIZE:
            break
        first += PAGE_SIZE
    return added


def sync_keycloak_events(*, config=None, client=None) -> str:
    """Job: every organization, login and admin events. Raises SyncError (after trying all
    organizations) when any failed, so the job run shows as failed with the reasons."""
    config = config or get_config()
    client = client or keycloak.admin_client(config)  # looked up per call: tests replace it
    totals = {"login": 0, "admin": 0}
    problems = []
    orgs = list(Organization.select().order_by(Organization.id))
    for org in orgs:
        for kind in ("login", "admin"):
            try:
                totals[kind] += sync_org(client, org, kind)
            except Exception as exc:
                problems.append(f"{org.slug} ({kind} events): {exc}")
                log.warning("Keycloak event sync failed for %s: %s", org.slug,
                            type(exc).__name__, extra={"org": org.slug})
    message = (f"{len(orgs)} organization(s): {totals['login']} login and "
               f"{totals['admin']} admin event(s) added")
    if problems:
        raise SyncError(message + "; failed: " + "; ".join(problems))
    return message
