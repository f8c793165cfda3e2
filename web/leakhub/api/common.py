"""What every `/api/v1` resource shares: the blueprint, reading the request (JSON body, query,
versions) and the small pieces of the answers (ETag, 409 with the current record).

Input: JSON objects checked against the operation's declared schema (unknown fields and wrong
JSON types → 422 naming the field), then parsed by the services' core.validation parsers (422
naming the field); malformed JSON → 400. Errors become problem documents (api/problems.py).
"""
from __future__ import annotations

import datetime as dt
import json

from flask import Blueprint, Response, abort, current_app, request
from werkzeug.datastructures import MultiDict

from ..core.i18n import use_english_numbers
from ..core.validation import ValidationError
from . import openapi, problems
from .problems import json_response, problem

ID = "id"  # the URL converter of record ids (core.web.IdConverter: bounded, 404 beyond)


def blueprint(name: str) -> Blueprint:
    """A blueprint under /api/v1 whose errors are answered as problem documents. Numbers in
    bodies are JSON numbers; a number sent as a string (query parameters) is read in English
    ("6,000" is six thousand, "6.5" six and a half) whatever the caller's language."""
    new = problems.install(Blueprint(name, __name__, url_prefix=openapi.API_PREFIX))
    new.before_request(use_english_numbers)
    return new


bp = blueprint("api")


def _reject_constant(name):
    raise ValueError(f"{name} is not valid JSON")


def body() -> dict:
    """The request's JSON object, checked against the operation's declared schema."""
    mimetype = request.mimetype or ""
    if mimetype != "application/json" and not mimetype.endswith("+json"):
        abort(415, description="Send the body as application/json.")
    try:
        data = json.loads(request.get_data(cache=False) or b"",
                          parse_constant=_reject_constant)
    except (ValueError, RecursionError) as exc:
        abort(400, description=f"The body is not valid JSON: {str(exc)[:200]}")
    op = openapi.operation_of(current_app.view_functions[request.endpoint])
    return dict(openapi.check_json(op.json_schema(), data))


def query_args() -> MultiDict:
    """The query string, checked against the operation's declared parameters."""
    op = openapi.operation_of(current_app.view_functions[request.endpoint])
    openapi.check_query(op, request.args)
    return request.args


def rfc3339(data: dict, name: str) -> None:
    """An input date-time (RFC 3339 with offset, checked by check_json) → naive UTC, in place."""
    raw = data.get(name)
    if not isinstance(raw, str):
        return
    value = openapi.parse_rfc3339(raw)
    if value is None or not 1900 <= value.year <= 2200:
        raise ValidationError({name: openapi.DATE_TIME_MESSAGE})
    data[name] = value.astimezone(dt.UTC).replace(tzinfo=None)


def expected_version(data: dict, *, required: bool) -> int | None:
    """`version` from the body or `If-Match: "<version>"` (the ETag of GET)."""
    version = data.pop("version", None)
    header = request.headers.get("If-Match")
    if header is not None:
        text = header.strip()
        if text.startswith("W/"):
            text = text[2:]
        text = text.strip('"')
        if not text.isdigit() or len(text) > 9:
            raise ValidationError({"If-Match": "Send the ETag of the record, e.g. \"3\"."})
        if version is not None and version != int(text):
            raise ValidationError({"version": "Differs from If-Match."})
        version = int(text)
    if version is None and required:
        abort(428, description="Send the version you edited (field \"version\" or "
                               "If-Match header) so that concurrent edits are detected.")
    return version


def etag(obj) -> dict:
    return {"ETag": f'"{obj.version}"'}


def conflict(current: dict) -> Response:
    """409: someone else saved first; `current` is the saved state."""
    return problem(409, "Conflict", "The record was changed by someone else in the meantime; "
                   "nothing was saved. `current` is the saved state.", current=current)


def in_use(exc: ValidationError) -> Response:
    """409 for a delete the service refused (rows still point at the record)."""
    return problem(409, "Conflict", "; ".join(exc.errors.values()))


def created(data: dict, obj, location: str) -> Response:
    """201 with the new record, its URL and its version."""
    return json_response(data, 201, headers={"Location": location, **etag(obj)})


def saved(data: dict, obj) -> Response:
    """200 with the record and its version."""
    return json_response(data, headers=etag(obj))


def items(rows: list, status: int = 200, headers: dict | None = None) -> Response:
    """A list answer: `{"items": [...], "total": n}`."""
    return json_response({"items": rows, "total": len(rows)}, status, headers=headers)
