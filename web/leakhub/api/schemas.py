"""Request and response schemas of `/api/v1` (OpenAPI 3.1 / JSON Schema).

Named schemas are registered with `openapi.component` (components/schemas, in this order) and
are the ones the views check JSON input against; query and header parameters, shared
responses and headers are plain OpenAPI objects used by the operations' `@operation`.
"""
from __future__ import annotations

from ..devices import service as devices
from ..leaks import service as leaks
from ..leaks.models import COMPONENTS, ESTIMATE_CLASSES_CFM, METHODS, PRIORITIES, STATUSES
from ..locations.models import KINDS
from ..photos.service import MAX_FILE_BYTES, MAX_PIXELS, human_size
from ..surveys.models import STATUSES as SURVEY_STATUSES
from .openapi import PROBLEM, VALIDATION_PROBLEM, component

MAX_ID = 2147483647
MAX_INT = 999_999_999_999_999_999  # what core.validation.parse_int accepts (18 digits)

def _nullable(schema: dict) -> dict:
    out = dict(schema)
    out["type"] = [schema["type"], "null"]
    return out


ID_SCHEMA = {"type": "integer", "minimum": 1, "maximum": MAX_ID}
TS = {"type": "string", "format": "date-time"}
DATE = {"type": "string", "format": "date"}
VERSION = {"type": "integer", "minimum": 1, "maximum": MAX_ID,
           "description": "The version you edited (alternatively If-Match)."}


def _list_of(item: dict) -> dict:
    """The schema of a list answer: `{"items": [...], "total": n}`."""
    return {"type": "object",
            "properties": {"items": {"type": "array", "items": item},
                           "total": {"type": "integer"}},
            "required": ["items", "total"]}


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
LOCATION_LIST = component("LocationList", _list_of(LOCATION))

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
SURVEY_LIST = component("SurveyList", _list_of(SURVEY))

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
        "method": {"type": "string", "enum": list(METHODS),
                   "description": "device: measured; estimate: MEASUR class; orifice: "
                                  "calculated from hole diameter and pressure; detector: "
                                  "calculated from a dB reading through the organization's "
                                  "detector table."},
        "estimate_class": {"type": ["string", "null"]},
        "rate_inputs": {"type": "object", "description":
                        "Inputs of a calculated rate (methods orifice and detector), "
                        "decimal strings; empty otherwise.",
                        "additionalProperties": {"type": "string"}},
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
        "assignee": {"type": ["integer", "null"], "description": "The user who repairs it."},
        "order_number": {"type": "string", "description": "Maintenance order number."},
        "after_lpm": dict(_NUM_OR_NULL, description=(
            "Leak rate re-measured when the repair was verified (null: not re-measured).")),
        "saved_lpm": dict(_NUM_OR_NULL, description=(
            "Repaired or verified: the rate the repair removed, rate_lpm - after_lpm (the "
            "whole rate when not re-measured; negative when re-measured higher). Else null.")),
        "source": {"type": "string"}, "version": {"type": "integer"},
        "client_id": {"type": "string", "description": (
            "The UUID the recording device gave the leak (offline capture), else \"\".")},
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
    "assignee": _nullable(dict(ID_SCHEMA, description=(
        "The user who repairs it: a user of the organization who may edit this leak."))),
    "order_number": _text(64), "after_lpm": _nullable(_dec(0, 100000, 3)),
    # Inputs of the calculated methods; the rate is then computed (rate_lpm is ignored).
    "orifice_diameter_mm": _nullable(_dec(0, 100, 3, description=(
        "Method orifice: hole diameter in mm; with pressure_bar (gauge)."))),
    "discharge_coefficient": _nullable(_dec(0, 1, 3, description=(
        "Method orifice: Cd (0.6-0.65 sharp-edged, up to 1 rounded); default 0.65."))),
    "temperature_c": _nullable(_dec(-50, 200, 1, description=(
        "Method orifice: air temperature in °C; default 20."))),
    "detector_db": _nullable(_dec(-20, 200, 2, description=(
        "Method detector: the reading in dB; with detector_distance_m and pressure_bar, "
        "read off the organization's detector table (linear interpolation, no "
        "extrapolation: outside the table is 422 naming the input)."))),
    "detector_distance_m": _nullable(_dec(0, 1000, 3, description=(
        "Method detector: distance of the reading in m."))),
}
LEAK_CREATE = component("LeakCreate", {
    "type": "object",
    "properties": {**_LEAK_INPUT,
                   "status": {"type": "string", "enum": list(leaks.INITIAL_STATUSES)},
                   "client_id": {"type": "string", "maxLength": 64, "description": (
                       "A UUID the device generated when it recorded the leak (offline "
                       "capture): sending the same id again answers 200 with the leak "
                       "already made, never a second one.")}},
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
        "after_lpm": _nullable(_dec(0, 100000, 3, description=(
            "When verifying: the leak rate re-measured after the repair; savings are then "
            "rate_lpm - after_lpm."))),
        "assignee": _nullable(dict(ID_SCHEMA, description=(
            "When planning the repair: the user who repairs it (who may edit the leak)."))),
        "order_number": _nullable(_text(64)),
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
PHOTO_LIST = component("PhotoList", _list_of(PHOTO))
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

# ------------------------------------------------------------------ query parameters

SURVEY_STATUS_QUERY = {"name": "status", "in": "query", "required": False,
                       "schema": {"type": "string", "enum": list(SURVEY_STATUSES)}}


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


# ------------------------------------------------------------------ photos

PHOTO_UPLOAD = {"required": True, "content": {"multipart/form-data": {"schema": {
    "type": "object",
    "properties": {"photos": {"type": "array", "items": {
        "type": "string", "contentMediaType": "application/octet-stream"}},
        "client_id": {"type": "string", "description": (
            "A UUID the device gave the photo (offline capture; then exactly one file): "
            "sending it again answers 200 with the stored photo, never a second one.")}},
    "required": ["photos"]}}}}
IMAGE = {"type": "string", "contentMediaType": "image/*"}
IMAGE_TYPES = ("image/jpeg", "image/png", "image/webp")

# ------------------------------------------------------------------ device ingest

_NUM_OR_TEXT = {"type": ["number", "string", "null"],
                "description": "l/min (bar for pressure); a number or a decimal string "
                               "(\"12.5\" or \"12,5\")."}
PHOTO_IN = component("FindingPhoto", {
    "type": "object",
    "description": "A photo of the finding, checked exactly like a browser upload: JPEG, PNG "
                   f"or WebP by content, at most {human_size(MAX_FILE_BYTES)} decoded and "
                   f"{MAX_PIXELS // 1_000_000} megapixels; EXIF/GPS and other metadata are "
                   "removed before it is stored.",
    "properties": {
        "filename": {"type": "string", "maxLength": 255},
        "content_base64": {"type": "string", "contentEncoding": "base64",
                           "maxLength": devices.MAX_PHOTO_BASE64,
                           "description": "The image bytes, standard base64 (line breaks "
                                          "allowed)."},
    },
    "required": ["content_base64"],
    "additionalProperties": False,
})
FINDING = component("Finding", {
    "type": "object",
    "description": "One finding; becomes a leak with status `to_review`.",
    "properties": {
        "id": {"type": "string", "minLength": 1, "maxLength": 100,
               "description": "The device's own id of the finding. A finding whose id this "
                              "device delivered before is not created again (idempotent "
                              "replay) and is listed under `duplicates`."},
        "location": {"type": "string", "maxLength": 1000,
                     "description": "The location's full path as Leakhub shows it, parts "
                                    "separated by \"/\", each part the location's code, name "
                                    "or \"code · name\" (e.g. \"Werk Süd / Halle 3 / "
                                    "Montage\" or \"W01 / H3 / M\"); or a code that is unique "
                                    "in the organization. Case and repeated spaces do not "
                                    "matter. Several matches: 422 with `candidates`."},
        "location_code": {"type": "string", "maxLength": 1000, "deprecated": True,
                          "description": "Older name of `location` (same matching)."},
        "tag": {"type": ["string", "null"], "maxLength": 32,
                "description": "Pre-printed tag; empty: the next number."},
        "found_at": {"type": ["string", "null"],
                     "description": "When found: RFC 3339 with offset "
                                    "(2024-03-31T14:30:00Z), or YYYY-MM-DD HH:MM in UTC. "
                                    "Default: now."},
        "rate_lpm": _NUM_OR_TEXT, "rate_low_lpm": _NUM_OR_TEXT, "rate_high_lpm": _NUM_OR_TEXT,
        "pressure_bar": _NUM_OR_TEXT,
        "gas": {"type": ["string", "null"], "maxLength": 32},
        "component": {"type": ["string", "null"], "enum": [*COMPONENTS, None]},
        "method": {"type": ["string", "null"], "enum": [*METHODS, None]},
        "estimate_class": {"type": ["string", "null"], "enum": [*ESTIMATE_CLASSES_CFM, None]},
        "priority": {"type": ["integer", "string", "null"], "enum": [*PRIORITIES, None]},
        "description": {"type": ["string", "null"], "maxLength": 10000},
        "photos": {"type": "array", "items": PHOTO_IN,
                   "maxItems": devices.MAX_PHOTOS_PER_FINDING},
    },
    "required": ["id"],
    "oneOf": [{"required": ["location"]}, {"required": ["location_code"]}],
    "additionalProperties": False,
})
INGEST = component("IngestRequest", {
    "type": "object",
    "properties": {"findings": {"type": "array", "items": FINDING, "minItems": 1,
                                "maxItems": devices.MAX_BATCH}},
    "required": ["findings"],
    "additionalProperties": False,
})
INGEST_RESULT = component("IngestResult", {
    "type": "object",
    "properties": {
        "created": {"type": "array", "items": {
            "type": "object",
            "properties": {"id": {"type": "string"}, "leak_id": {"type": "integer"},
                           "tag": {"type": "string"}, "photos": {"type": "integer"}},
            "required": ["id", "leak_id", "tag", "photos"]}},
        "duplicates": {"type": "array", "items": {
            "type": "object",
            "properties": {"id": {"type": "string"},
                           "leak_id": {"type": ["integer", "null"]}},
            "required": ["id", "leak_id"]}},
    },
    "required": ["created", "duplicates"],
})
INGEST_PROBLEM = component("IngestProblem", {
    "allOf": [VALIDATION_PROBLEM, {
        "type": "object",
        "properties": {"candidates": {
            "type": "object",
            "additionalProperties": {"type": "array", "items": {"type": "string"}},
            "description": "For an ambiguous location: field → the full paths of every "
                           "matching location."}},
    }],
})
