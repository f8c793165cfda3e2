"""The OpenAPI 3.1 description of `/api/v1`, served at `/api/v1/openapi.json`.

In sync by construction:
- every API view declares its operation next to its code (`@operation(...)` between
  `@bp.route` and `@api_auth`); the document is assembled from the app's url_map, so paths,
  methods and path parameters (with their converters' bounds) come from the routes themselves;
- the request-body schemas an operation declares (api/schemas.py) are the ones its view checks
  JSON input against (`check_json`: unknown fields and wrong JSON types → 422 naming the
  field); the values are then parsed by core.validation through the feature services, as
  for the HTML forms;
- a unit test fails for an /api/ route without an operation.

Each resource module (api/locations.py, surveys, leaks, photos, dashboard, ingest) declares
its operations this way, with the schemas of api/schemas.py:

    @bp.post("/leaks")
    @operation(summary="Record a leak", tag="leaks", body=json_body(LEAK_CREATE),
               responses={201: ("Created.", LEAK, "application/json", CREATED_HEADERS)})
    @api_auth("user")
    def create_leak(): ...
"""
from __future__ import annotations

import copy
import datetime as dt
import re
from dataclasses import dataclass, field

from flask import current_app
from werkzeug.routing import IntegerConverter

from ..core.times import parse_rfc3339
from ..core.validation import ValidationError

API_PREFIX = "/api/v1"
VERSION = "1.0.0"
PROBLEM_JSON = "application/problem+json"

# ------------------------------------------------------------------ components

COMPONENTS: dict[str, dict] = {}


def component(name: str, schema: dict) -> dict:
    """Register a named schema (components/schemas) and return a $ref to it."""
    COMPONENTS[name] = schema
    return ref(name)


def ref(name: str) -> dict:
    return {"$ref": f"#/components/schemas/{name}"}


def resolve(schema: dict) -> dict:
    while "$ref" in schema:
        schema = COMPONENTS[schema["$ref"].rsplit("/", 1)[-1]]
    return schema


PROBLEM = component("Problem", {
    "type": "object",
    "description": "RFC 9457 problem details.",
    "properties": {
        "type": {"type": "string"},
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "detail": {"type": "string"},
        "instance": {"type": "string"},
    },
    "required": ["title", "status"],
})
VALIDATION_PROBLEM = component("ValidationProblem", {
    "allOf": [PROBLEM, {
        "type": "object",
        "properties": {"errors": {
            "type": "object", "additionalProperties": {"type": "string"},
            "description": "Field name (or query parameter) → message. The key \"\" is a "
                           "message about the whole request."}},
        "required": ["errors"],
    }],
})


def conflict_problem(current: dict) -> dict:
    """409 with the current representation of the record (`current`)."""
    return {"allOf": [PROBLEM, {"type": "object", "properties": {"current": current}}]}


# Responses most operations can give; views add their own success and specific errors.
STANDARD_ERRORS = {
    401: ("No, an invalid, expired or revoked bearer token.", PROBLEM),
    403: ("The token's user may not do this (role, grants, pending access, device token).",
          PROBLEM),
    404: ("No such record in your organization (other organizations' ids give 404).",
          PROBLEM),
    405: ("Method not allowed.", PROBLEM),
}

# ------------------------------------------------------------------ operations


def json_body(schema: dict, *, required: bool = True, description: str = "") -> dict:
    return {"content": {"application/json": {"schema": schema}}, "required": required,
            **({"description": description} if description else {})}


@dataclass
class Operation:
    summary: str
    tag: str
    description: str = ""
    security: str | None = "user"   # "user" / "device" bearer tokens, None: public
    query: list = field(default_factory=list)      # OpenAPI parameter objects (in: query)
    headers: list = field(default_factory=list)    # OpenAPI parameter objects (in: header)
    body: dict | None = None                       # OpenAPI requestBody object
    responses: dict = field(default_factory=dict)  # status -> (description, schema|None[, media])
    errors: tuple = (401, 403, 404)                # which STANDARD_ERRORS apply

    def json_schema(self) -> dict | None:
        if not self.body:
            return None
        media = self.body["content"].get("application/json")
        return media["schema"] if media else None

    def to_openapi(self, operation_id: str, path_params: list) -> dict:
        out: dict = {"operationId": operation_id, "summary": self.summary, "tags": [self.tag]}
        if self.description:
            out["description"] = self.description
        params = list(path_params) + list(self.query) + list(self.headers)
        if params:
            out["parameters"] = copy.deepcopy(params)
        if self.body:
            out["requestBody"] = copy.deepcopy(self.body)
        responses = {}
        merged = {code: STANDARD_ERRORS[code] for code in self.errors if code in STANDARD_ERRORS}
        if not self.security:
            merged.pop(401, None)
            merged.pop(403, None)
        merged.update(self.responses)
        for code in sorted(merged, key=str):
            spec = merged[code]
            description, schema = spec[0], spec[1]
            media = spec[2] if len(spec) > 2 else (
                PROBLEM_JSON if str(code)[0] in "45" else "application/json")
            entry: dict = {"description": description}
            if len(spec) > 3:
                entry["headers"] = copy.deepcopy(spec[3])
            if schema is not None:
                medias = (media,) if isinstance(media, str) else tuple(media)
                entry["content"] = {m: {"schema": copy.deepcopy(schema)} for m in medias}
            responses[str(code)] = entry
        out["responses"] = responses
        out["security"] = [{"bearerAuth": []}] if self.security else []
        if self.security == "device":
            out.setdefault("description", "")
            out["description"] = (out["description"] + "\n\nDevice tokens only "
                                  "(client credentials of the device's Keycloak client).").strip()
        return out


def operation(**kwargs):
    """Declare the OpenAPI operation of a view (between @bp.route and @api_auth)."""
    op = Operation(**kwargs)

    def deco(view):
        view._openapi = op
        return view
    return deco


def operation_of(view) -> Operation | None:
    while view is not None:
        op = getattr(view, "_openapi", None)
        if op is not None:
            return op
        view = getattr(view, "__wrapped__", None)
    return None


def api_rules(app):
    """Every url_map rule under /api/ (what the document must describe)."""
    return [r for r in app.url_map.iter_rules() if r.rule.startswith("/api/")]


_VARIABLE = re.compile(r"<(?:[a-zA-Z_][a-zA-Z0-9_]*(?:\([^)]*\))?:)?([a-zA-Z_][a-zA-Z0-9_]*)>")


def _path_of(rule) -> tuple[str, list]:
    """Flask rule → OpenAPI path template and its path parameters (types and bounds from
    the rule's converters)."""
    params = []
    for name in _VARIABLE.findall(rule.rule):
        conv = rule._converters.get(name)
        schema: dict = {"type": "string"}
        if getattr(conv, "openapi_schema", None):
            schema = dict(conv.openapi_schema)
        elif isinstance(conv, IntegerConverter):
            schema = {"type": "integer"}
            if conv.min is not None:
                schema["minimum"] = conv.min
            if conv.max is not None:
                schema["maximum"] = conv.max
        params.append({"name": name, "in": "path", "required": True, "schema": schema})
    return _VARIABLE.sub(lambda m: "{" + m.group(1) + "}", rule.rule), params


def document(app=None) -> dict:
    app = app or current_app
    paths: dict = {}
    for rule in sorted(api_rules(app), key=lambda r: (r.rule, r.endpoint)):
        op = operation_of(app.view_functions.get(rule.endpoint))
        if op is None:
            continue
        path, params = _path_of(rule)
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
            op_id = rule.endpoint.replace(".", "_")
            if len(rule.methods - {"HEAD", "OPTIONS"}) > 1:
                op_id += "_" + method.lower()
            paths.setdefault(path, {})[method.lower()] = op.to_openapi(op_id, params)
    return {
        "openapi": "3.1.0",
        "jsonSchemaDialect": "https://spec.openapis.org/oas/3.1/dialect/base",
        "info": {
            "title": "Leakhub API",
            "version": VERSION,
            "description": (
                "The JSON API of Leakhub. Authenticate with a Keycloak access token of your "
                "organization's realm (`Authorization: Bearer …`): users through the `leakhub` "
                "client, devices through their own clients; the token must carry the audience "
                "`leakhub-api`. Authorization is decided from Leakhub's database on every "
                "request (roles, grants, security mode): the same rules as the web pages. "
                "Errors are RFC 9457 problem documents. Decimals are JSON numbers (`6000`, "
                "`12.5`), never localized text; a number sent as a string (a query parameter) "
                "is read in English whatever the user's language: `.` is the decimal point and "
                "`,` groups thousands, so \"6,000\" is six thousand and \"6.000\" six. Times are "
                "ISO 8601 in UTC (`…Z`); input times without an offset are taken as UTC. "
                "Ids of other organizations answer 404."),
        },
        "servers": [{"url": "/"}],
        "paths": paths,
        "components": {
            "schemas": copy.deepcopy(COMPONENTS),
            "securitySchemes": {"bearerAuth": {
                "type": "http", "scheme": "bearer", "bearerFormat": "JWT",
                "description": "A Keycloak access token (RS256/PS256/ES256) of the "
                               "organization's realm with audience leakhub-api."}},
        },
        "tags": [{"name": t} for t in sorted({op_tag for op_tag in _tags(app)})],
    }


def _tags(app):
    for rule in api_rules(app):
        op = operation_of(app.view_functions.get(rule.endpoint))
        if op is not None:
            yield op.tag


# ------------------------------------------------------------------ JSON input checks

_TYPES = {
    "string": lambda v: isinstance(v, str),
    "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "number": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
    "boolean": lambda v: isinstance(v, bool),
    "null": lambda v: v is None,
    "array": lambda v: isinstance(v, list),
    "object": lambda v: isinstance(v, dict),
}
_TYPE_WORDS = {"string": "a string", "integer": "a whole number", "number": "a number",
               "boolean": "true or false", "null": "null", "array": "a list",
               "object": "an object"}


def _type_error(types) -> str:
    words = [_TYPE_WORDS.get(t, t) for t in types]
    return "Expected " + " or ".join(words) + "."


DATE_MESSAGE = "Enter a date as YYYY-MM-DD."
DATE_TIME_MESSAGE = "Enter a date and time with offset, e.g. 2024-03-31T14:30:00Z."
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


def parse_date(text: str):
    """A JSON Schema `date` (RFC 3339 full-date), or None."""
    if not isinstance(text, str) or not _DATE.match(text):
        return None
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        return None


def _format_error(schema: dict, value) -> str | None:
    fmt = schema.get("format")
    if fmt == "date" and parse_date(value) is None:
        return DATE_MESSAGE
    if fmt == "date-time" and parse_rfc3339(value) is None:
        return DATE_TIME_MESSAGE
    return None


def _check_value(schema: dict, value, name: str, errors: dict) -> None:
    schema = resolve(schema)
    types = schema.get("type")
    if types is not None:
        types = [types] if isinstance(types, str) else list(types)
        if not any(_TYPES[t](value) for t in types):
            errors[name] = _type_error(types)
            return
    if isinstance(value, str):
        message = _format_error(schema, value)
        if message:
            errors[name] = message
            return
    if isinstance(value, int) and not isinstance(value, bool):
        # Bounds of ids and counts are checked here: the database must never see an
        # integer it cannot store (SQLite raises on > 2**63).
        lo, hi = schema.get("minimum"), schema.get("maximum")
        if ("integer" in (types or [])) and ((lo is not None and value < lo)
                                             or (hi is not None and value > hi)):
            errors[name] = f"Must be between {lo} and {hi}."
            return
    if isinstance(value, list) and "items" in schema:
        item_errors: dict = {}
        for i, item in enumerate(value):
            _check_value(schema["items"], item, f"{name}[{i}]", item_errors)
        if item_errors:
            errors[name] = next(iter(item_errors.values()))
        if "maxItems" in schema and len(value) > schema["maxItems"]:
            errors[name] = f"At most {schema['maxItems']} entries."


def check_json(schema: dict, data) -> dict:
    """Structure and JSON types of a request body against its declared schema: the body is
    an object, has no unknown fields, and every field has its declared JSON type. Raises
    ValidationError naming every offending field (values are parsed later by the services'
    core.validation parsers)."""
    schema = resolve(schema)
    if not isinstance(data, dict):
        raise ValidationError({"": "The request body must be a JSON object."})
    props = schema.get("properties", {})
    errors: dict[str, str] = {}
    for name in data:
        if name not in props:
            errors[name] = "Unknown field."
    for name, sub in props.items():
        if name in data:
            _check_value(sub, data[name], name, errors)
    if errors:
        raise ValidationError(errors)
    return data


def check_query(op: Operation, args) -> None:
    """Unknown query parameters → 422 naming them; repeated single-valued ones too."""
    known = {p["name"]: p for p in op.query}
    errors = {}
    for name in args.keys():
        if name not in known:
            errors[name] = "Unknown query parameter."
            continue
        schema = known[name]["schema"]
        values = args.getlist(name)
        if schema.get("type") != "array" and len(values) > 1:
            errors[name] = "Give this parameter once."
            continue
        item_schema = schema.get("items", {}) if schema.get("type") == "array" else schema
        for value in values:
            if value == "":
                errors[name] = "Give a value or leave the parameter out."
            elif _format_error(item_schema, value):
                errors[name] = _format_error(item_schema, value)
    if errors:
        raise ValidationError(errors)
