"""`/api/v1`: locations, surveys, leaks (with the status workflow), photos and dashboard figures
as JSON, for Keycloak bearer tokens.

Every endpoint authenticates with `@api_auth("user")` (api/auth.py), authorizes through
`authz` and calls the same feature services as the HTML views; nothing here queries organization
data without `authz.scope`. Input: JSON objects checked against the declared schema (unknown
fields and wrong JSON types → 422 naming the field), then parsed by the services' core.validation
parsers (422 naming the field); malformed JSON → 400. Output: explicit serializers only.
Each operation's OpenAPI description sits on its view (api/openapi.py builds the document).
"""
from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal

from flask import Blueprint, Response, abort, current_app, g, request, url_for
from werkzeug.datastructures import MultiDict

from .. import authz
from ..audit.writer import ConflictError
from ..core.validation import Fields, ValidationError
from ..dashboard import service as dashboard
from ..leaks import service as leaks
from ..leaks.models import COMPONENTS, ESTIMATE_CLASSES_CFM, METHODS, PRIORITIES, STATUSES, Leak
from ..locations import service as locations
from ..locations.models import KINDS, Location
from ..photos import service as photos
from ..security.events import record_http_error
from ..surveys import service as surveys
from ..surveys.models import STATUSES as SURVEY_STATUSES
from ..surveys.models import Survey, SurveyScope
from . import openapi
from .auth import api_auth
from .openapi import (PROBLEM, PROBLEM_JSON, VALIDATION_PROBLEM, component, conflict_problem,
                      json_body, operation)

bp = Blueprint("api", __name__, url_prefix=openapi.API_PREFIX)

MAX_ID = 2147483647
MAX_INT = 999_999_999_999_999_999  # what core.validation.parse_int accepts (18 digits)


ID = "id"

# ------------------------------------------------------------------ JSON in and out


def _num(value, places: int | None = None):
    """Decimal → JSON number (rounded for derived figures; stored values are exact)."""
    if value is None:
        return None
    if places is not None:
        value = Decimal(value).quantize(Decimal(1).scaleb(-places))
    value = Decimal(value)
    return int(value) if value == value.to_integral_value() and abs(value) < 2**53 \
        else float(value)


def _ts(value: dt.datetime | None) -> str | None:
    """Stored naive UTC → ISO 8601 with Z."""
    if value is None:
        return None
    if value.tzinfo is not None:
        value = value.astimezone(dt.timezone.utc).replace(tzinfo=None)
    return value.isoformat(timespec="seconds") + "Z"


def _day(value) -> str | None:
    return value.isoformat() if value is not None else None


def _json(data, status: int = 200, headers: dict | None = None,
          mimetype: str = "application/json") -> Response:
    body = json.dumps(data, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    return current_app.response_class(body + "\n", status=status, headers=headers,
                                      mimetype=mimetype)


def problem(status: int, title: str, detail: str = "", **extra) -> Response:
    body = {"type": "about:blank", "title": title, "status": status}
    if detail:
        body["detail"] = detail
    body.update(extra)
    return _json(body, status, mimetype=PROBLEM_JSON)


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
    op = openapi.operation_of(current_app.view_functions[request.endpoint])
    openapi.check_query(op, request.args)
    return request.args


def _rfc3339(data: dict, name: str) -> None:
    """An input date-time (RFC 3339 with offset, checked by check_json) → naive UTC, in place."""
    raw = data.get(name)
    if not isinstance(raw, str):
        return
    value = openapi.parse_rfc3339(raw)
    if value is None or not 1900 <= value.year <= 2200:
        raise ValidationError({name: openapi.DATE_TIME_MESSAGE})
    data[name] = value.astimezone(dt.timezone.utc).replace(tzinfo=None)


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


def _etag(obj) -> dict:
    return {"ETag": f'"{obj.version}"'}


@bp.errorhandler(ValidationError)
def _invalid(exc: ValidationError):
    detail = "; ".join(f"{k}: {v}" if k else str(v) for k, v in exc.errors.items())
    return problem(422, "Unprocessable", detail, errors={k: str(v) for k, v in exc.errors.items()})


@bp.errorhandler(authz.TargetForbidden)
def _target_refused(exc: authz.TargetForbidden):
    # A write into (or out of) a location or survey the caller may see but not write there:
    # 403 naming the field, recorded like every other refusal.
    record_http_error(403)
    return problem(403, "Forbidden", f"{exc.field}: {exc.message}",
                   errors={exc.field: exc.message})


@bp.errorhandler(photos.PhotoError)
def _photo_refused(exc: photos.PhotoError):
    extra = {"errors": {"photos": str(exc)}} if exc.status == 422 else {}
    return problem(exc.status, "Photo refused", str(exc), **extra)


@bp.after_request
def _www_authenticate(response):
    # RFC 6750: a 401 names the scheme. (The app-wide problem handler builds a new response.)
    if response.status_code == 401:
        response.headers.setdefault("WWW-Authenticate",
                                    'Bearer realm="leakhub", error="invalid_token"')
    return response


def _conflict(current: dict) -> Response:
    return problem(409, "Conflict", "The record was changed by someone else in the meantime; "
                   "nothing was saved. `current` is the saved state.", current=current)


# ------------------------------------------------------------------ schemas

def _nullable(schema: dict) -> dict:
    out = dict(schema)
    out["type"] = [schema["type"], "null"]
    return out


ID_SCHEMA = {"type": "integer", "minimum": 1, "maximum": MAX_ID}
TS = {"type": "string", "format": "date-time"}
DATE = {"type": "string", "format": "date"}
VERSION = {"type": "integer", "minimum": 1, "maximum": MAX_ID,
           "description": "The version you edited (alternatively If-Match)."}


def _text(max_length: int, **kw) -> dict:
    return {"type": "string", "maxLength": max_length, **kw}


def _dec(minimum, maximum, places: int, **kw) -> dict:
    return {"type": "number", "minimum": minimum, "maximum": maximum,
            "description": f"At most {places} decimal places.", **kw}


LOCATION = component("Location", {
    "type": "object",
    "properties": {
        "id": {"type": "integer"}, "kind": {"type": "string", "enum": list(KINDS)},
        "code": {"type": "string"}, "name": {"type": "string"},
        "parent": {"type": ["integer", "null"]}, "depth": {"type": "integer"},
        "notes": {"type": "string"}, "version": {"type": "integer"},
        "created_at": TS, "updated_at": TS,
    },
    "required": ["id", "kind", "code", "name", "parent", "depth", "notes", "version",
                 "created_at", "updated_at"],
})
LOCATION_CREATE = component("LocationCreate", {
    "type": "object",
    "properties": {
        "kind": {"type": "string", "enum": list(KINDS)},
        "code": _text(40, minLength=1), "name": _text(200, minLength=1),
        "parent": _nullable(ID_SCHEMA), "notes": _text(5000),
    },
    "required": ["kind", "code", "name"],
    "additionalProperties": False,
})
LOCATION_PATCH = component("LocationPatch", {
    "type": "object",
    "properties": {"code": _text(40, minLength=1), "name": _text(200, minLength=1),
                   "notes": _text(5000), "version": VERSION},
    "additionalProperties": False,
})
LOCATION_LIST = component("LocationList", {
    "type": "object",
    "properties": {"items": {"type": "array", "items": LOCATION}, "total": {"type": "integer"}},
    "required": ["items", "total"],
})

SURVEY = component("Survey", {
    "type": "object",
    "properties": {
        "id": {"type": "integer"}, "name": {"type": "string"}, "period_start": DATE,
        "period_end": _nullable(DATE), "auditor_user": {"type": ["integer", "null"]},
        "auditor_company": {"type": "string"}, "device": {"type": "string"},
        "status": {"type": "string", "enum": list(SURVEY_STATUSES)},
        "coverage_percent": {"type": ["integer", "null"]}, "notes": {"type": "string"},
        "scope": {"type": "array", "items": {"type": "integer"},
                  "description": "Location ids (each with its subtree)."},
        "version": {"type": "integer"}, "created_at": TS, "updated_at": TS,
    },
    "required": ["id", "name", "period_start", "period_end", "auditor_user", "auditor_company",
                 "device", "status", "coverage_percent", "notes", "scope", "version",
                 "created_at", "updated_at"],
})
_SURVEY_INPUT = {
    "name": _text(200, minLength=1), "period_start": DATE, "period_end": _nullable(DATE),
    "auditor_user": _nullable(ID_SCHEMA), "auditor_company": _text(200),
    "device": _text(200), "status": {"type": "string", "enum": list(SURVEY_STATUSES)},
    "coverage_percent": {"type": ["integer", "null"], "minimum": 0, "maximum": 100},
    "notes": _text(10000),
    "scope": {"type": "array", "items": ID_SCHEMA, "maxItems": 1000},
}
SURVEY_CREATE = component("SurveyCreate", {
    "type": "object", "properties": _SURVEY_INPUT, "required": ["name", "period_start"],
    "additionalProperties": False,
})
SURVEY_PATCH = component("SurveyPatch", {
    "type": "object", "properties": {**_SURVEY_INPUT, "version": VERSION},
    "additionalProperties": False,
})
SURVEY_LIST = component("SurveyList", {
    "type": "object",
    "properties": {"items": {"type": "array", "items": SURVEY}, "total": {"type": "integer"}},
    "required": ["items", "total"],
})

_NUM = {"type": "number"}
_NUM_OR_NULL = {"type": ["number", "null"]}
LEAK_FIGURES = component("LeakFigures", {
    "type": "object",
    "description": "Derived from the leak rate and the energy settings valid at the leak's "
                   "site and date. `expected_*`: times the compressor control factor.",
    "properties": {
        "flow_m3_min": _NUM, "power_kw": _NUM, "kwh_year": _NUM, "cost_year": _NUM,
        "co2_kg_year": _NUM, "currency": {"type": "string"}, "control_factor": _NUM,
        "expected_kwh_year": _NUM, "expected_cost_year": _NUM, "expected_co2_kg_year": _NUM,
    },
    "required": ["flow_m3_min", "power_kw", "kwh_year", "cost_year", "co2_kg_year",
                 "currency", "control_factor", "expected_kwh_year", "expected_cost_year",
                 "expected_co2_kg_year"],
})
LEAK = component("Leak", {
    "type": "object",
    "properties": {
        "id": {"type": "integer"}, "tag": {"type": "string"},
        "location": {"type": "integer"}, "survey": {"type": ["integer", "null"]},
        "found_at": TS, "found_by_user": {"type": ["integer", "null"]},
        "found_by": {"type": "string"}, "device_serial": {"type": "string"},
        "method": {"type": "string", "enum": list(METHODS)},
        "estimate_class": {"type": ["string", "null"]},
        "rate_lpm": _NUM, "rate_low_lpm": _NUM_OR_NULL, "rate_high_lpm": _NUM_OR_NULL,
        "pressure_bar": _NUM_OR_NULL, "gas": {"type": "string"},
        "component": {"type": "string", "enum": list(COMPONENTS)},
        "priority": {"type": "integer", "enum": list(PRIORITIES)},
        "description": {"type": "string"}, "recommended_action": {"type": "string"},
        "spare_part": {"type": "string"},
        "status": {"type": "string", "enum": list(STATUSES)},
        "due_date": _nullable(DATE), "repaired_at": _nullable(DATE),
        "repaired_by": {"type": "string"}, "repair_cost": _NUM_OR_NULL,
        "verified_at": _nullable(DATE), "verification_note": {"type": "string"},
        "previous_leak": {"type": ["integer", "null"]},
        "source": {"type": "string"}, "version": {"type": "integer"},
        "created_at": TS, "updated_at": TS, "figures": LEAK_FIGURES,
    },
    "required": ["id", "tag", "location", "survey", "found_at", "status", "rate_lpm",
                 "version", "figures"],
})
_LEAK_INPUT = {
    "tag": _nullable(_text(32, description="Pre-printed tag; empty: the next number.")),
    "location": ID_SCHEMA, "survey": _nullable(ID_SCHEMA),
    "found_at": dict(TS, description="RFC 3339 with offset, e.g. 2024-03-31T14:30:00Z."),
    "found_by_user": _nullable(ID_SCHEMA), "found_by": _text(200),
    "device_serial": _text(64), "method": {"type": "string", "enum": list(METHODS)},
    "estimate_class": {"type": ["string", "null"], "enum": [*ESTIMATE_CLASSES_CFM, None]},
    "rate_lpm": _nullable(_dec(0, 100000, 3)), "rate_low_lpm": _nullable(_dec(0, 100000, 3)),
    "rate_high_lpm": _nullable(_dec(0, 100000, 3)),
    "pressure_bar": _nullable(_dec(0, 400, 2)), "gas": _text(32),
    "component": {"type": "string", "enum": list(COMPONENTS)},
    "priority": {"type": "integer", "enum": list(PRIORITIES)},
    "description": _text(10000), "recommended_action": _text(10000),
    "spare_part": _text(200), "due_date": _nullable(DATE), "repaired_at": _nullable(DATE),
    "repaired_by": _text(200), "repair_cost": _nullable(_dec(0, 10**9, 2)),
    "verification_note": _text(10000), "previous_leak": _nullable(ID_SCHEMA),
}
LEAK_CREATE = component("LeakCreate", {
    "type": "object",
    "properties": {**_LEAK_INPUT,
                   "status": {"type": "string", "enum": list(leaks.INITIAL_STATUSES)}},
    "required": ["location", "found_at"],
    "additionalProperties": False,
})
LEAK_PATCH = component("LeakPatch", {
    "type": "object",
    "description": "Fields not sent keep their value. The status changes through "
                   "POST /api/v1/leaks/{leak_id}/status.",
    "properties": {**_LEAK_INPUT, "version": VERSION},
    "additionalProperties": False,
})
STATUS_CHANGE = component("StatusChange", {
    "type": "object",
    "properties": {
        "status": {"type": "string", "enum": list(STATUSES)}, "note": _text(5000),
        "due_date": _nullable(DATE), "repaired_at": _nullable(DATE),
        "repaired_by": _nullable(_text(200)), "repair_cost": _nullable(_dec(0, 10**9, 2)),
        "verification_note": _nullable(_text(10000)),
        "version": dict(VERSION, description="Optional: the version you saw (or If-Match)."),
    },
    "required": ["status"],
    "additionalProperties": False,
})
LEAK_PAGE = component("LeakPage", {
    "type": "object",
    "properties": {"items": {"type": "array", "items": LEAK}, "total": {"type": "integer"},
                   "page": {"type": "integer"}, "per_page": {"type": "integer"},
                   "pages": {"type": "integer"}},
    "required": ["items", "total", "page", "per_page", "pages"],
})
PHOTO = component("Photo", {
    "type": "object",
    "properties": {"id": {"type": "integer"}, "leak": {"type": "integer"},
                   "content_type": {"type": "string"}, "size": {"type": "integer"},
                   "width": {"type": "integer"}, "height": {"type": "integer"},
                   "filename": {"type": "string"}, "uploaded_at": TS,
                   "url": {"type": "string", "description": "The image bytes."}},
    "required": ["id", "leak", "content_type", "size", "width", "height", "filename",
                 "uploaded_at", "url"],
})
PHOTO_LIST = component("PhotoList", {
    "type": "object",
    "properties": {"items": {"type": "array", "items": PHOTO}, "total": {"type": "integer"}},
    "required": ["items", "total"],
})
FIGURES = component("Figures", {
    "type": "object",
    "properties": {name: ({"type": "integer"} if name == "count" else _NUM) for name in (
        "count", "rate_lpm", "kwh_year", "cost_year", "co2_kg_year", "expected_kwh_year",
        "expected_cost_year", "expected_co2_kg_year")},
    "required": ["count", "rate_lpm", "kwh_year", "cost_year", "co2_kg_year"],
})
DASHBOARD = component("Dashboard", {
    "type": "object",
    "properties": {
        "total": {"type": "integer"}, "to_review": {"type": "integer"},
        "currency": {"type": "string", "description": "Empty when sites use several."},
        "open": FIGURES, "fixed": FIGURES,
        "by_site": {"type": "array", "items": {
            "type": "object", "properties": {"site": {"type": ["integer", "null"]},
                                             "label": {"type": "string", "description":
                                                       "Empty for a site the caller may not "
                                                       "see by name (a grant on part of it)."},
                                             "open": FIGURES, "fixed": FIGURES},
            "required": ["site", "label", "open", "fixed"]}},
        "by_component": {"type": "array", "items": {
            "type": "object", "properties": {"component": {"type": "string"}, "open": FIGURES},
            "required": ["component", "open"]}},
        "trend": {"type": "array", "items": {
            "type": "object", "properties": {"month": {"type": "string"},
                                             "found": {"type": "integer"},
                                             "repaired": {"type": "integer"}},
            "required": ["month", "found", "repaired"]}},
    },
    "required": ["total", "to_review", "currency", "open", "fixed", "by_site", "by_component",
                 "trend"],
})

# Responses shared by the operations below.
R_422 = ("Invalid input; `errors` names each field or query parameter.", VALIDATION_PROBLEM)
R_400 = ("The body is not valid JSON.", PROBLEM)
R_415 = ("The body is not application/json.", PROBLEM)
R_428 = ("No version sent (field `version` or If-Match).", PROBLEM)
CREATED_HEADERS = {"Location": {"description": "URL of the new record.",
                                "schema": {"type": "string"}}}
ETAG_HEADERS = {"ETag": {"description": "The record's version, for If-Match.",
                         "schema": {"type": "string"}}}
IF_MATCH = {"name": "If-Match", "in": "header", "required": False,
            "description": "The ETag of the record you edited (alternative to `version`).",
            "schema": {"type": "string", "pattern": "^(W/)?\"?[0-9]{1,9}\"?$"}}
WRITE_ERRORS = {400: R_400, 415: R_415, 422: R_422}

# ------------------------------------------------------------------ serializers


def location_json(loc: Location) -> dict:
    return {"id": loc.id, "kind": loc.kind, "code": loc.code, "name": loc.name,
            "parent": loc.parent_id, "depth": loc.depth, "notes": loc.notes,
            "version": loc.version, "created_at": _ts(loc.created_at),
            "updated_at": _ts(loc.updated_at)}


def _scopes(actor, survey_ids) -> dict[int, list[int]]:
    out: dict[int, list[int]] = {i: [] for i in survey_ids}
    if survey_ids:
        rows = (authz.scope(actor, SurveyScope, "view")
                .where(SurveyScope.survey.in_(list(survey_ids))).order_by(SurveyScope.location))
        for row in rows:
            out.setdefault(row.survey_id, []).append(row.location_id)
    return out


def survey_json(survey: Survey, scope: list[int]) -> dict:
    return {"id": survey.id, "name": survey.name, "period_start": _day(survey.period_start),
            "period_end": _day(survey.period_end), "auditor_user": survey.auditor_user_id,
            "auditor_company": survey.auditor_company, "device": survey.device,
            "status": survey.status, "coverage_percent": survey.coverage_percent,
            "notes": survey.notes, "scope": sorted(scope), "version": survey.version,
            "created_at": _ts(survey.created_at), "updated_at": _ts(survey.updated_at)}


def _survey_out(actor, survey: Survey) -> dict:
    return survey_json(survey, _scopes(actor, [survey.id])[survey.id])


def figures_json(f) -> dict:
    return {"flow_m3_min": _num(f.flow_m3_min, 6), "power_kw": _num(f.power_kw, 4),
            "kwh_year": _num(f.kwh_year, 1), "cost_year": _num(f.cost_year, 2),
            "co2_kg_year": _num(f.co2_kg_year, 1), "currency": f.currency or "",
            "control_factor": _num(f.control_factor),
            "expected_kwh_year": _num(f.expected_kwh_year, 1),
            "expected_cost_year": _num(f.expected_cost_year, 2),
            "expected_co2_kg_year": _num(f.expected_co2_kg_year, 1)}


def leak_json(leak: Leak, figures) -> dict:
    return {
        "id": leak.id, "tag": leak.tag, "location": leak.location_id, "survey": leak.survey_id,
        "found_at": _ts(leak.found_at), "found_by_user": leak.found_by_user_id,
        "found_by": leak.found_by, "device_serial": leak.device_serial, "method": leak.method,
        "estimate_class": leak.estimate_class, "rate_lpm": _num(leak.rate_lpm),
        "rate_low_lpm": _num(leak.rate_low_lpm), "rate_high_lpm": _num(leak.rate_high_lpm),
        "pressure_bar": _num(leak.pressure_bar), "gas": leak.gas, "component": leak.component,
        "priority": leak.priority, "description": leak.description,
        "recommended_action": leak.recommended_action, "spare_part": leak.spare_part,
        "status": leak.status, "due_date": _day(leak.due_date),
        "repaired_at": _day(leak.repaired_at), "repaired_by": leak.repaired_by,
        "repair_cost": _num(leak.repair_cost), "verified_at": _day(leak.verified_at),
        "verification_note": leak.verification_note, "previous_leak": leak.previous_leak_id,
        "source": leak.source, "version": leak.version, "created_at": _ts(leak.created_at),
        "updated_at": _ts(leak.updated_at), "figures": figures_json(figures),
    }


def _leak_out(actor, leak: Leak) -> dict:
    return leak_json(leak, leaks.figures_for(actor, leak))


def photo_json(p) -> dict:
    return {"id": p.id, "leak": p.leak_id, "content_type": p.content_type, "size": p.size,
            "width": p.width, "height": p.height, "filename": p.original_filename,
            "uploaded_at": _ts(p.uploaded_at),
            "url": url_for("api.get_photo", photo_id=p.id)}


def _dashboard_figures(f) -> dict:
    return {"count": f.count, "rate_lpm": _num(f.rate_lpm, 3), "kwh_year": _num(f.kwh_year, 1),
            "cost_year": _num(f.cost_year, 2), "co2_kg_year": _num(f.co2_kg_year, 1),
            "expected_kwh_year": _num(f.expected_kwh_year, 1),
            "expected_cost_year": _num(f.expected_cost_year, 2),
            "expected_co2_kg_year": _num(f.expected_co2_kg_year, 1)}


def dashboard_json(d) -> dict:
    return {
        "total": d.total, "to_review": d.to_review, "currency": d.currency,
        "open": _dashboard_figures(d.open), "fixed": _dashboard_figures(d.fixed),
        "by_site": [{"site": s.site_id, "label": s.label, "open": _dashboard_figures(s.open),
                     "fixed": _dashboard_figures(s.fixed)} for s in d.by_site],
        "by_component": [{"component": c, "open": _dashboard_figures(f)}
                         for c, f in d.by_component],
        "trend": [{"month": m, "found": found, "repaired": rep} for m, found, rep in d.trend],
    }


# ------------------------------------------------------------------ the document

@bp.get("/openapi.json")
@operation(summary="This OpenAPI document", tag="meta", security=None, errors=(),
           responses={200: ("OpenAPI 3.1 document.", {"type": "object"})})
def openapi_json():
    return _json(openapi.document(), headers={"Cache-Control": "no-cache"})


# ------------------------------------------------------------------ locations

@bp.get("/locations")
@operation(summary="List locations", tag="locations", errors=(401, 403),
           description="Every location you may see, depth-first by path.",
           responses={200: ("The locations.", LOCATION_LIST), 422: R_422})
@api_auth("user")
def list_locations():
    query_args()
    items = [location_json(loc) for loc in locations.all_locations(g.actor)]
    return _json({"items": items, "total": len(items)})


@bp.get(f"/locations/<{ID}:location_id>")
@operation(summary="Get a location", tag="locations",
           responses={200: ("The location.", LOCATION, "application/json", ETAG_HEADERS)})
@api_auth("user")
def get_location(location_id):
    loc = authz.get_or_404(g.actor, Location, location_id)
    return _json(location_json(loc), headers=_etag(loc))


@bp.post("/locations")
@operation(summary="Create a location", tag="locations", errors=(401, 403),
           description="A site (no parent), a building (in a site) or an area (in a building "
                       "or area). Codes are unique among siblings.",
           body=json_body(LOCATION_CREATE),
           responses={201: ("Created.", LOCATION, "application/json", CREATED_HEADERS),
                      **WRITE_ERRORS})
@api_auth("user")
def create_location():
    actor = g.actor
    authz.require(actor, "create")
    values = locations.parse_location_form(body(), creating=True)
    loc = locations.create_location(actor, **values)
    return _json(location_json(loc), 201, headers={
        "Location": url_for("api.get_location", location_id=loc.id), **_etag(loc)})


@bp.patch(f"/locations/<{ID}:location_id>")
@operation(summary="Change a location", tag="locations", headers=[IF_MATCH],
           body=json_body(LOCATION_PATCH),
           description="Code, name and notes; kind and parent do not change.",
           responses={200: ("Saved.", LOCATION, "application/json", ETAG_HEADERS),
                      409: ("Changed by someone else meanwhile.", conflict_problem(LOCATION)),
                      428: R_428, **WRITE_ERRORS})
@api_auth("user")
def patch_location(location_id):
    actor = g.actor
    loc = authz.get_or_404(actor, Location, location_id, "edit")
    data = body()
    version = expected_version(data, required=True)
    if version != loc.version:
        return _conflict(location_json(loc))
    merged = {"code": loc.code, "name": loc.name, "notes": loc.notes, **data}
    values = locations.parse_location_form(merged, creating=False)
    try:
        loc = locations.update_location(actor, loc, expected_version=version, **values)
    except ConflictError:
        return _conflict(location_json(authz.get_or_404(actor, Location, location_id)))
    return _json(location_json(loc), headers=_etag(loc))


@bp.delete(f"/locations/<{ID}:location_id>")
@operation(summary="Delete a location", tag="locations",
           responses={204: ("Deleted.", None),
                      409: ("Locations below it or leaks recorded at it.", PROBLEM)})
@api_auth("user")
def delete_location(location_id):
    actor = g.actor
    loc = authz.get_or_404(actor, Location, location_id, "delete")
    try:
        locations.delete_location(actor, loc)
    except ValidationError as exc:
        return problem(409, "Conflict", "; ".join(exc.errors.values()))
    return Response(status=204)


# ------------------------------------------------------------------ surveys

SURVEY_STATUS_QUERY = {"name": "status", "in": "query", "required": False,
                       "schema": {"type": "string", "enum": list(SURVEY_STATUSES)}}


@bp.get("/surveys")
@operation(summary="List surveys", tag="surveys", errors=(401, 403),
           query=[SURVEY_STATUS_QUERY],
           responses={200: ("The surveys, newest first.", SURVEY_LIST), 422: R_422})
@api_auth("user")
def list_surveys():
    args = query_args()
    status = args.get("status")
    if status is not None and status not in SURVEY_STATUSES:
        raise ValidationError({"status": "Choose one of the offered values."})
    rows = list(surveys.list_surveys(g.actor, status=status))
    scopes = _scopes(g.actor, [s.id for s in rows])
    items = [survey_json(s, scopes.get(s.id, [])) for s in rows]
    return _json({"items": items, "total": len(items)})


@bp.get(f"/surveys/<{ID}:survey_id>")
@operation(summary="Get a survey", tag="surveys",
           responses={200: ("The survey.", SURVEY, "application/json", ETAG_HEADERS)})
@api_auth("user")
def get_survey(survey_id):
    survey = authz.get_or_404(g.actor, Survey, survey_id)
    return _json(_survey_out(g.actor, survey), headers=_etag(survey))


@bp.post("/surveys")
@operation(summary="Create a survey", tag="surveys", errors=(401, 403),
           body=json_body(SURVEY_CREATE),
           responses={201: ("Created.", SURVEY, "application/json", CREATED_HEADERS),
                      **WRITE_ERRORS})
@api_auth("user")
def create_survey():
    actor = g.actor
    authz.require(actor, "create")
    values = surveys.parse_survey_form(body())
    survey = surveys.create_survey(actor, **values)
    return _json(_survey_out(actor, survey), 201, headers={
        "Location": url_for("api.get_survey", survey_id=survey.id), **_etag(survey)})


@bp.patch(f"/surveys/<{ID}:survey_id>")
@operation(summary="Change a survey", tag="surveys", headers=[IF_MATCH],
           body=json_body(SURVEY_PATCH),
           description="Fields not sent keep their value; `scope` replaces the scope.",
           responses={200: ("Saved.", SURVEY, "application/json", ETAG_HEADERS),
                      409: ("Changed by someone else meanwhile.", conflict_problem(SURVEY)),
                      428: R_428, **WRITE_ERRORS})
@api_auth("user")
def patch_survey(survey_id):
    actor = g.actor
    survey = authz.get_or_404(actor, Survey, survey_id, "edit")
    data = body()
    version = expected_version(data, required=True)
    if version != survey.version:
        return _conflict(_survey_out(actor, survey))
    current = {"name": survey.name, "period_start": survey.period_start,
               "period_end": survey.period_end, "auditor_user": survey.auditor_user_id,
               "auditor_company": survey.auditor_company, "device": survey.device,
               "status": survey.status, "coverage_percent": survey.coverage_percent,
               "notes": survey.notes, "scope": sorted(surveys.scope_ids(survey))}
    values = surveys.parse_survey_form({**current, **data})
    try:
        survey = surveys.update_survey(actor, survey, expected_version=version, **values)
    except ConflictError:
        survey = authz.get_or_404(actor, Survey, survey_id)
        return _conflict(_survey_out(actor, survey))
    survey = authz.get_or_404(actor, Survey, survey_id)
    return _json(_survey_out(actor, survey), headers=_etag(survey))


@bp.delete(f"/surveys/<{ID}:survey_id>")
@operation(summary="Delete a survey", tag="surveys",
           responses={204: ("Deleted.", None),
                      409: ("Leaks are recorded in this survey.", PROBLEM)})
@api_auth("user")
def delete_survey(survey_id):
    actor = g.actor
    survey = authz.get_or_404(actor, Survey, survey_id, "delete")
    try:
        surveys.delete_survey(actor, survey)
    except ValidationError as exc:
        return problem(409, "Conflict", "; ".join(exc.errors.values()))
    return Response(status=204)


# ------------------------------------------------------------------ leaks

_SORTS = sorted(leaks.SORTS)
LEAK_QUERY = [
    {"name": "status", "in": "query", "required": False, "style": "form", "explode": True,
     "description": "One or more statuses (repeat the parameter).",
     "schema": {"type": "array", "items": {"type": "string", "enum": list(STATUSES)}}},
    {"name": "location", "in": "query", "required": False,
     "description": "A location id: leaks at it or below it.",
     "schema": {"type": "integer", "minimum": 1, "maximum": MAX_INT}},
    {"name": "survey", "in": "query", "required": False,
     "schema": {"type": "integer", "minimum": 1, "maximum": MAX_INT}},
    {"name": "priority", "in": "query", "required": False,
     "schema": {"type": "integer", "enum": list(PRIORITIES)}},
    {"name": "component", "in": "query", "required": False,
     "schema": {"type": "string", "enum": list(COMPONENTS)}},
    {"name": "date_from", "in": "query", "required": False,
     "description": "Found on or after this day (in the organization's time zone).",
     "schema": DATE},
    {"name": "date_to", "in": "query", "required": False,
     "description": "Found on or before this day (in the organization's time zone).",
     "schema": DATE},
    {"name": "q", "in": "query", "required": False,
     "description": "Text in tag, description, spare part, finder, action or location.",
     "schema": {"type": "string", "maxLength": 100}},
    {"name": "sort", "in": "query", "required": False,
     "description": "A column, descending with a leading '-'. Default -found.",
     "schema": {"type": "string", "enum": _SORTS + ["-" + s for s in _SORTS]}},
    {"name": "page", "in": "query", "required": False,
     "schema": {"type": "integer", "minimum": 1, "maximum": 1000000, "default": 1}},
    {"name": "per_page", "in": "query", "required": False,
     "schema": {"type": "integer", "minimum": 1, "maximum": 200, "default": 50}},
]


@bp.get("/leaks")
@operation(summary="List leaks", tag="leaks", errors=(401, 403), query=LEAK_QUERY,
           description="The same filters as the leak list page. Pages beyond the last are "
                       "empty.",
           responses={200: ("One page of leaks.", LEAK_PAGE), 422: R_422})
@api_auth("user")
def list_leaks():
    actor = g.actor
    args = query_args()
    f = Fields(args)
    per_page = f.integer("per_page", min_value=1, max_value=200, default=50) or 50
    rest = MultiDict([(k, v) for k, v in args.items(multi=True) if k != "per_page"])
    flt = leaks.parse_filter(rest)
    errors = {**flt.errors, **f.errors}
    sort = args.get("sort")
    if sort is not None and sort.lstrip("-") not in leaks.SORTS:
        errors["sort"] = "Choose one of the offered values."
    if errors:
        raise ValidationError(errors)
    flt.per_page = per_page
    requested = flt.page
    page = leaks.list_leaks(actor, flt, tzname=actor.organization.timezone)
    rows = page.rows if page.page == requested else []
    return _json({"items": [leak_json(r.leak, r.figures) for r in rows], "total": page.total,
                  "page": requested, "per_page": per_page, "pages": page.pages})


@bp.get(f"/leaks/<{ID}:leak_id>")
@operation(summary="Get a leak", tag="leaks",
           responses={200: ("The leak.", LEAK, "application/json", ETAG_HEADERS)})
@api_auth("user")
def get_leak(leak_id):
    leak = authz.get_or_404(g.actor, Leak, leak_id)
    return _json(_leak_out(g.actor, leak), headers=_etag(leak))


@bp.post("/leaks")
@operation(summary="Record a leak", tag="leaks", errors=(401, 403),
           description="Without `tag` the organization's next tag number is assigned.",
           body=json_body(LEAK_CREATE),
           responses={201: ("Created.", LEAK, "application/json", CREATED_HEADERS),
                      **WRITE_ERRORS})
@api_auth("user")
def create_leak():
    actor = g.actor
    authz.require(actor, "create")
    data = body()
    _rfc3339(data, "found_at")
    values = leaks.parse_leak_form(data, tzname="UTC", creating=True)
    leak = leaks.create_leak(actor, **values)
    return _json(_leak_out(actor, leak), 201, headers={
        "Location": url_for("api.get_leak", leak_id=leak.id), **_etag(leak)})


@bp.patch(f"/leaks/<{ID}:leak_id>")
@operation(summary="Change a leak", tag="leaks", headers=[IF_MATCH], body=json_body(LEAK_PATCH),
           description="Optimistic concurrency: send the `version` you edited (or If-Match); "
                       "if someone saved in between, 409 with the current leak. Moving the "
                       "leak (`location`, `survey`) needs edit where it leaves and where it "
                       "lands: 403 with `errors` naming the field otherwise. References not "
                       "sent keep their value, also those you may not see.",
           responses={200: ("Saved.", LEAK, "application/json", ETAG_HEADERS),
                      409: ("Changed by someone else meanwhile.", conflict_problem(LEAK)),
                      428: R_428, **WRITE_ERRORS})
@api_auth("user")
def patch_leak(leak_id):
    actor = g.actor
    leak = authz.get_or_404(actor, Leak, leak_id, "edit")
    data = body()
    version = expected_version(data, required=True)
    if version != leak.version:
        return _conflict(_leak_out(actor, leak))
    _rfc3339(data, "found_at")
    sent = set(data)
    data.setdefault("location", leak.location_id)
    parsed = leaks.parse_leak_form(data, tzname="UTC", creating=False)
    values = {k: v for k, v in parsed.items() if k in sent}
    try:
        leak = leaks.update_leak(actor, leak, expected_version=version, **values)
    except ConflictError:
        return _conflict(_leak_out(actor, authz.get_or_404(actor, Leak, leak_id)))
    leak = authz.get_or_404(actor, Leak, leak_id)
    return _json(_leak_out(actor, leak), headers=_etag(leak))


@bp.delete(f"/leaks/<{ID}:leak_id>")
@operation(summary="Delete a leak", tag="leaks", responses={204: ("Deleted.", None)})
@api_auth("user")
def delete_leak(leak_id):
    actor = g.actor
    leak = authz.get_or_404(actor, Leak, leak_id, "delete")
    leaks.delete_leak(actor, leak)
    return Response(status=204)


@bp.post(f"/leaks/<{ID}:leak_id>/status")
@operation(summary="Change a leak's status", tag="leaks", headers=[IF_MATCH],
           body=json_body(STATUS_CHANGE),
           description="open → repair planned → repaired → verified, or deferred / not a "
                       "leak; an illegal move is 422 on `status`. Repair and verification "
                       "data may come with the move.",
           responses={200: ("The leak after the change.", LEAK, "application/json",
                            ETAG_HEADERS),
                      409: ("Changed by someone else meanwhile.", conflict_problem(LEAK)),
                      **WRITE_ERRORS})
@api_auth("user")
def change_status(leak_id):
    actor = g.actor
    leak = authz.get_or_404(actor, Leak, leak_id, "edit")
    data = body()
    version = expected_version(data, required=False)
    if version is not None and version != leak.version:
        return _conflict(_leak_out(actor, leak))
    values = leaks.parse_status_form(data)
    to_status = values.pop("to_status")
    try:
        leaks.change_status(actor, leak, to_status, expected_version=version, **values)
    except ConflictError:
        return _conflict(_leak_out(actor, authz.get_or_404(actor, Leak, leak_id)))
    leak = authz.get_or_404(actor, Leak, leak_id)
    return _json(_leak_out(actor, leak), headers=_etag(leak))


# ------------------------------------------------------------------ photos

IMAGE_TYPES = ("image/jpeg", "image/png", "image/webp")


@bp.get(f"/leaks/<{ID}:leak_id>/photos")
@operation(summary="List a leak's photos", tag="photos",
           responses={200: ("Photo metadata, oldest first.", PHOTO_LIST)})
@api_auth("user")
def list_photos(leak_id):
    leak = authz.get_or_404(g.actor, Leak, leak_id)
    items = [photo_json(p) for p in photos.photos_of(g.actor, leak)]
    return _json({"items": items, "total": len(items)})


@bp.post(f"/leaks/<{ID}:leak_id>/photos")
@operation(summary="Upload photos", tag="photos",
           description="multipart/form-data with one or more files in `photos` (JPEG, PNG or "
                       "WebP; metadata such as EXIF/GPS is removed). All or nothing.",
           body={"required": True, "content": {"multipart/form-data": {"schema": {
               "type": "object",
               "properties": {"photos": {"type": "array", "items": {
                   "type": "string", "contentMediaType": "application/octet-stream"}}},
               "required": ["photos"]}}}},
           responses={201: ("The stored photos.", PHOTO_LIST, "application/json",
                            CREATED_HEADERS),
                      413: ("Too large.", PROBLEM), 415: ("Not multipart/form-data.", PROBLEM),
                      422: ("Not an acceptable image; `errors.photos` says which file.",
                            VALIDATION_PROBLEM)})
@api_auth("user")
def upload_photos(leak_id):
    actor = g.actor
    leak = authz.get_or_404(actor, Leak, leak_id, "edit")
    if request.mimetype != "multipart/form-data":
        abort(415, description="Send the photos as multipart/form-data in the field `photos`.")
    # Touching request.files enforces MAX_CONTENT_LENGTH (413 for the whole request).
    files = [(f.filename or "", f.read()) for f in request.files.getlist("photos")
             if f and (f.filename or f.content_length)]
    created = photos.add_photos(actor, leak, files)
    items = [photo_json(p) for p in created]
    return _json({"items": items, "total": len(items)}, 201,
                 headers={"Location": items[0]["url"]})


@bp.get(f"/photos/<{ID}:photo_id>")
@operation(summary="Get a photo's image", tag="photos",
           description="The stored image (metadata removed). Authorized through its leak.",
           responses={200: ("The image.", {"type": "string", "contentMediaType": "image/*"},
                            IMAGE_TYPES),
                      304: ("Not modified (If-None-Match).", None)})
@api_auth("user")
def get_photo(photo_id):
    from ..photos.views import _send

    photo = photos.get_photo(g.actor, photo_id)
    return _send(photo, photo.sha256, photo.content_type, photo.original_filename or "photo")


# ------------------------------------------------------------------ dashboard

@bp.get("/dashboard")
@operation(summary="Dashboard figures", tag="dashboard", errors=(401, 403),
           description="Open leaks and realised savings (cost, energy, CO2 per year), by site, "
                       "by component and per month, over the leaks you may see.",
           responses={200: ("The figures.", DASHBOARD), 422: R_422})
@api_auth("user")
def get_dashboard():
    query_args()
    actor = g.actor
    authz.require(actor, "view")
    return _json(dashboard_json(dashboard.compute(actor)))
