"""Request plumbing shared by every blueprint: request id, CSRF, safe redirects, errors.

Errors are mapped to pages here, once: an HTTP error (abort(404), a refused CSRF token) and
every core.errors.LeakhubError (its class's status and title, its message) get the error
page, anything else a 500 without a stack trace. A surface that answers its errors otherwise
registers a renderer for its paths (`render_errors_under(app, "/api/", fn)`: the API's problem
documents, built by api.problems alone), and features that want to hear about refusals
(security events: 403, 429) register a listener with `on_http_error(app, fn)`; core imports
no feature."""
from __future__ import annotations

import hmac
import logging
import re
import secrets
import time
import uuid
from urllib.parse import urlsplit

from flask import abort, current_app, g, render_template, request, session
from flask_babel import gettext as _
from werkzeug.exceptions import HTTPException
from werkzeug.routing import BaseConverter

from .errors import LeakhubError, status_of

log = logging.getLogger("leakhub.web")

_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{8,64}$")
UNSAFE_METHODS = {"POST", "PUT", "PATCH", "DELETE"}


def csrf_token() -> str:
    token = session.get("csrf")
    if not token:
        token = session["csrf"] = secrets.token_urlsafe(32)
    return token


def _csrf_exempt(view) -> bool:
    return getattr(view, "_csrf_exempt", False)


def csrf_exempt(view):
    """For endpoints that authenticate otherwise (bearer tokens, signed logout tokens)."""
    view._csrf_exempt = True
    return view


def safe_next(target: str | None, default: str = "/") -> str:
    """Only same-origin absolute paths. Rejects //host, /\\host, schemes, control chars."""
    if not target or not isinstance(target, str) or len(target) > 2000:
        return default
    if not target.startswith("/") or target.startswith("//"):
        return default
    if "\\" in target or any(ord(c) < 0x20 or ord(c) == 0x7F for c in target):
        return default
    parts = urlsplit(target)
    if parts.scheme or parts.netloc:
        return default
    return target


def _same_origin(value: str) -> bool:
    public = urlsplit(current_app.config["LEAKHUB"].public_url)
    got = urlsplit(value)
    return (got.scheme, got.netloc) == (public.scheme, public.netloc)


def check_csrf(*, header_only: bool = False) -> None:
    """403 unless the request comes from our own origin with the session's CSRF token (form
    field `csrf_token` or header `X-CSRF-Token`; `header_only`: the header alone, which no
    other site can set without a CORS preflight we never grant)."""
    origin = request.headers.get("Origin")
    if origin and origin != "null" and not _same_origin(origin):
        g.csrf_failure = "foreign origin"
        abort(403, description=_("The request came from another site and was refused."))
    sent = request.headers.get("X-CSRF-Token") or ""
    if not header_only:
        sent = request.form.get("csrf_token") or sent
    expected = session.get("csrf") or ""
    # Compared as bytes: compare_digest refuses str with non-ASCII characters (TypeError,
    # a 500); such a token is simply wrong.
    if not expected or not hmac.compare_digest(sent.encode("utf-8", "surrogatepass"),
                                               expected.encode("utf-8")):
        g.csrf_failure = "missing or wrong CSRF token"
        abort(403, description=_("The form has expired or was not sent from Leakhub. "
                                 "Reload the page and try again."))


class IdConverter(BaseConverter):
    """A record id in a URL: 1–18 digits, so it always fits the database's integers (no
    overflow on SQLite) and never fails *after* matching — werkzeug answers 405 instead of
    404 for another method's route when a converter refuses a value it matched. Ids that
    name no row of the caller's organization are 404 from authz.get_or_404."""

    regex = r"\d{1,18}"
    part_isolating = True
    openapi_schema = {"type": "integer", "minimum": 1, "maximum": 999_999_999_999_999_999}

    def to_python(self, value):
        return int(value)

    def to_url(self, value):
        return str(int(value))


HTTP_ERROR_LISTENERS = "leakhub.http_error_listeners"


def on_http_error(app, listener) -> None:
    """`listener(code)` is called for every error answer the app-wide handlers render (before
    rendering; it must not raise)."""
    app.extensions.setdefault(HTTP_ERROR_LISTENERS, []).append(listener)


ERROR_RENDERERS = "leakhub.error_renderers"


def render_errors_under(app, prefix: str, render) -> None:
    """Errors of requests whose path starts with `prefix` are answered by
    `render(code, title, description)` instead of the error page."""
    app.extensions.setdefault(ERROR_RENDERERS, []).append((prefix, render))


def _notify(code: int) -> None:
    for listener in current_app.extensions.get(HTTP_ERROR_LISTENERS, ()):
        listener(code)


def init_app(app):
    # Every number in Leakhub's URLs is a record id: `<int:...>` and `<id:...>` both get the
    # bounded converter (a 20-digit id is a 404, not an overflow deep in the database).
    app.url_map.converters["id"] = IdConverter
    app.url_map.converters["int"] = IdConverter

    @app.before_request
    def _request_id():
        rid = request.headers.get("X-Request-ID", "")
        g.request_id = rid if _REQUEST_ID.match(rid) else uuid.uuid4().hex
        g.started = time.perf_counter()

    @app.before_request
    def _csrf():
        if request.method not in UNSAFE_METHODS:
            return
        view = app.view_functions.get(request.endpoint)
        if view is None or _csrf_exempt(view):
            return
        check_csrf()

    @app.after_request
    def _headers(response):
        response.headers["X-Request-ID"] = g.get("request_id", "")
        response.headers.setdefault("Cache-Control", "no-store")
        elapsed = (time.perf_counter() - g.get("started", time.perf_counter())) * 1000
        if request.path not in ("/healthz", "/readyz"):
            log.info("request", extra={"method": request.method, "path": request.path,
                                       "status": response.status_code,
                                       "duration_ms": round(elapsed, 1)})
        return response

    app.jinja_env.globals["csrf_token"] = csrf_token

    def _error(code, default_title):
        def handler(exc):
            description = getattr(exc, "description", None) or ""
            if isinstance(exc, LeakhubError):
                description = str(exc)
            _notify(code)  # 403/429 -> security event (CSRF, permission, rate limit)
            for prefix, render in current_app.extensions.get(ERROR_RENDERERS, ()):
                if request.path.startswith(prefix):
                    return render(code, default_title, description)
            return render_template("error.html", code=code, title=default_title,
                                   description=description), code
        return handler

    for code, title in ((400, "Bad request"), (403, "Forbidden"), (404, "Not found"),
                        (405, "Method not allowed"), (409, "Conflict"),
                        (413, "Too large"), (422, "Unprocessable"), (429, "Too many requests"),
                        (500, "Internal error"), (503, "Service unavailable")):
        app.register_error_handler(code, _error(code, title))

    @app.errorhandler(LeakhubError)
    def _leakhub_error(exc):
        code = status_of(exc)
        if code >= 500:
            log.error("request failed: %s: %s", type(exc).__name__, exc)
        return _error(code, type(exc).title)(exc)

    @app.errorhandler(Exception)
    def _unhandled(exc):
        if isinstance(exc, HTTPException):
            return _error(exc.code or 500, exc.name)(exc)
        log.exception("unhandled error")
        return _error(500, "Internal error")(None)
