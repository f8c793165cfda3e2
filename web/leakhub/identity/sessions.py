"""Server-side sessions in the database (DESIGN §3.4).

The cookie carries only a random token; the row is keyed by its SHA-256, so a copy of the
database does not hold usable cookies. Idle timeout and absolute lifetime are enforced on
every request; deleting rows ends sessions at once (sign-out everywhere, disabled users,
Keycloak back-channel logout).
"""
from __future__ import annotations

import datetime as dt
import hashlib
import json
import secrets

from flask.sessions import SessionInterface, SessionMixin
from flask_babel import gettext as _
from werkzeug.datastructures import CallbackDict

from ..core.db import utcnow
from .models import User, WebSession

_TOUCH_EVERY = dt.timedelta(seconds=60)


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class DBSession(CallbackDict, SessionMixin):
    def __init__(self, initial=None, token=None, row=None):
        def on_update(_):
            self.modified = True

        super().__init__(initial or {}, on_update)
        self.token = token
        self.row = row
        self.modified = False
        self.expired = False
        self.rotate = False

    def regenerate(self):
        """New token after sign-in, so a token planted before login is worthless."""
        self.rotate = True
        self.modified = True


class DBSessionInterface(SessionInterface):
    def __init__(self, config):
        self.config = config
        self.cookie_name = "__Host-leakhub" if config.secure_cookies else "leakhub"

    @property
    def idle(self):
        return dt.timedelta(minutes=self.config.session_idle_minutes)

    @property
    def lifetime(self):
        return dt.timedelta(hours=self.config.session_max_hours)

    def open_session(self, app, request):
        token = request.cookies.get(self.cookie_name)
        if not token or len(token) > 100:
            return DBSession()
        row = WebSession.get_or_none(WebSession.id == _digest(token))
        if row is None:
            session = DBSession()
            session.expired = True
            return session
        now = utcnow()
        if row.expires_at <= now or row.last_seen_at + self.idle <= now:
            row.delete_instance()
            session = DBSession()
            session.expired = True
            return session
        try:
            data = json.loads(row.data)
        except ValueError:
            data = {}
        return DBSession(data, token=token, row=row)

    def save_session(self, app, session: DBSession, response):
        secure = self.config.secure_cookies
        if session.row is None and not session:
            if session.expired:
                response.delete_cookie(self.cookie_name, path="/", secure=secure, samesite="Lax")
            return
        now = utcnow()
        if not session and session.row is not None and session.modified:
            # Emptied (e.g. sign-out): drop the row and the cookie.
            session.row.delete_instance()
            response.delete_cookie(self.cookie_name, path="/", secure=secure, samesite="Lax")
            return
        row = session.row
        if row is not None and session.rotate:
            row.delete_instance()
            row = None
        if row is None:
            token = secrets.token_urlsafe(32)
            from flask import request

            row = WebSession.create(
                id=_digest(token), data=json.dumps(dict(session)), created_at=now,
                last_seen_at=now, expires_at=now + self.lifetime,
                ip=request.remote_addr, user_agent=(request.user_agent.string or "")[:300],
                organization=session.get("org_id"), user=_user_id(session),
                kc_sid=session.get("kc_sid"), id_token=session.get("id_token_hint"),
            )
            session.token, session.row = token, row
            response.set_cookie(
                self.cookie_name, token, httponly=True, secure=secure, samesite="Lax", path="/",
            )
            return
        if session.modified:
            WebSession.update(
                data=json.dumps(dict(session)), last_seen_at=now,
                organization=session.get("org_id"), user=_user_id(session),
                kc_sid=session.get("kc_sid"), id_token=session.get("id_token_hint"),
            ).where(WebSession.id == row.id).execute()
        elif now - row.last_seen_at >= _TOUCH_EVERY:
            WebSession.update(last_seen_at=now).where(WebSession.id == row.id).execute()


def _user_id(session):
    raw = session.get("_user_id")
    return int(raw) if raw not in (None, "") else None


def end_sessions_of_user(user) -> int:
    return WebSession.delete().where(WebSession.user == user).execute()


def purge_expired(config) -> int:
    now = utcnow()
    idle = dt.timedelta(minutes=config.session_idle_minutes)
    return WebSession.delete().where(
        (WebSession.expires_at <= now) | (WebSession.last_seen_at <= now - idle)
    ).execute()


# --------------------------------------------------------------------------- the sessions page

def session_ref(row: WebSession) -> str:
    """A handle for a session in forms and links; not the database key."""
    return hashlib.sha256(("ref:" + row.id).encode()).hexdigest()[:24]


def live_sessions(config, user: User) -> list[WebSession]:
    now = utcnow()
    idle = dt.timedelta(minutes=config.session_idle_minutes)
    return list(WebSession.select().where(
        (WebSession.user == user) & (WebSession.organization == user.organization_id)
        & (WebSession.expires_at > now) & (WebSession.last_seen_at > now - idle))
        .order_by(WebSession.last_seen_at.desc()))


def describe_agent(ua: str | None) -> str:
    """"Firefox on Linux" from a User-Agent header (for people, not for decisions)."""
    ua = ua or ""
    browser = next((name for key, name in (
        ("Edg/", "Edge"), ("OPR/", "Opera"), ("Firefox/", "Firefox"), ("Chromium/", "Chromium"),
        ("Chrome/", "Chrome"), ("Safari/", "Safari"), ("curl/", "curl"),
        ("python-requests", "Python requests")) if key in ua), "")
    system = next((name for key, name in (
        ("Android", "Android"), ("iPhone", "iOS"), ("iPad", "iPadOS"), ("Windows", "Windows"),
        ("Mac OS X", "macOS"), ("CrOS", "ChromeOS"), ("Linux", "Linux")) if key in ua), "")
    if browser and system:
        return _("%(browser)s on %(system)s", browser=browser, system=system)
    return browser or system or (ua[:60] if ua else _("unknown browser"))
