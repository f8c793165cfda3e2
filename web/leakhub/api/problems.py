"""RFC 9457 problem documents: the API's one builder, and the one mapping of errors to it.

`problem(status, title, detail, **extra)` is the only place an API answer with
`application/problem+json` is put together. `error_problem(exc)` maps an error raised in an
API view (`core.errors.LeakhubError` and its subclasses) to a problem document: the class's
status and title, the message as `detail`, the per-field messages as `errors` (and the
matching locations as `candidates` where the error carries them). `install(bp)` registers it
on an API blueprint, together with the RFC 6750 `WWW-Authenticate` header on 401.

Errors that are not (yet) LeakhubErrors are described once below (`_LEGACY`) so that they map
to the same documents; an entry goes when its class joins the hierarchy.
"""
from __future__ import annotations

import json

from flask import Blueprint, Response, current_app

from .. import authz
from ..core.errors import LeakhubError, status_of
from ..core.validation import ValidationError
from ..photos.service import PhotoError
from ..security.events import record_http_error
from .openapi import PROBLEM_JSON


def json_response(data, status: int = 200, headers: dict | None = None,
                  mimetype: str = "application/json") -> Response:
    """Compact UTF-8 JSON (never NaN/Infinity), one line and a newline."""
    body = json.dumps(data, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    return current_app.response_class(body + "\n", status=status, headers=headers,
                                      mimetype=mimetype)


def problem(status: int, title: str, detail: str = "", **extra) -> Response:
    """An RFC 9457 problem document (`type` about:blank; `detail` only when there is one)."""
    body = {"type": "about:blank", "title": title, "status": status}
    if detail:
        body["detail"] = detail
    body.update(extra)
    return json_response(body, status, mimetype=PROBLEM_JSON)


# ------------------------------------------------------------------ errors → problems

def _joined(errors: dict) -> str:
    return "; ".join(f"{k}: {v}" if k else str(v) for k, v in errors.items())


def _photo_errors(exc: PhotoError) -> dict:
    return {"photos": str(exc)} if exc.status == 422 else {}


# Error classes outside core.errors, each with what a LeakhubError says by itself:
# class, status, title, detail, per-field errors.
_LEGACY = (
    (authz.TargetForbidden, lambda e: 403, "Forbidden", lambda e: f"{e.field}: {e.message}",
     lambda e: {e.field: e.message}),
    (ValidationError, lambda e: 422, "Unprocessable", lambda e: _joined(e.errors),
     lambda e: e.errors),
    (PhotoError, lambda e: e.status, "Photo refused", str, _photo_errors),
)


def _describe(exc: Exception) -> tuple[int, str, str, dict]:
    for cls, status, title, detail, errors in _LEGACY:
        if isinstance(exc, cls):
            return status(exc), title, detail(exc), errors(exc)
    errors = dict(getattr(exc, "errors", None) or {})
    return status_of(exc), type(exc).title, _joined(errors) if errors else str(exc), errors


def error_problem(exc: Exception) -> Response:
    """The problem document for an error raised in an API view: status, title, the message
    as `detail`, `errors` (field → message; always for 422) and `candidates` if it has any."""
    status, title, detail, errors = _describe(exc)
    record_http_error(status)  # a refusal (403) is a security event like every other
    extra: dict = {}
    if status == 422 or errors:
        extra["errors"] = {k: str(v) for k, v in errors.items()}
    candidates = getattr(exc, "candidates", None)
    if candidates:
        extra["candidates"] = candidates
    return problem(status, title, detail, **extra)


def http_problem(status: int, title: str, detail: str = "") -> Response:
    """The app-wide error handlers' answer under /api/ (unknown URLs, wrong methods, abort(),
    errors outside an API view): registered by the app with core.web.render_errors_under."""
    return problem(status, title, detail)


def _www_authenticate(response):
    # RFC 6750: a 401 names the scheme. (The app-wide problem handler builds a new response.)
    if response.status_code == 401:
        response.headers.setdefault("WWW-Authenticate",
                                    'Bearer realm="leakhub", error="invalid_token"')
    return response


def install(bp: Blueprint) -> Blueprint:
    """Answer the errors raised in `bp`'s views with problem documents."""
    bp.register_error_handler(LeakhubError, error_problem)
    for cls, *_ in _LEGACY:
        bp.register_error_handler(cls, error_problem)
    bp.after_request(_www_authenticate)
    return bp
