"""Devices: `POST /api/v1/ingest/findings` (device tokens only, client credentials) and the
administrators' Devices page (/devices: list, add with the secret shown once, disable/enable).

Ingest is described in the OpenAPI document like the rest of /api/v1 (its `@operation`
below) and answers errors with the same RFC 9457 problem documents (api.views.problem)."""
from __future__ import annotations

from flask import (Blueprint, current_app, flash, g, redirect, render_template, request,
                   url_for)
from flask_babel import gettext as _
from flask_login import current_user

from .. import authz
from ..api import openapi
from ..api.auth import api_auth
from ..api.views import body, problem
from ..core.pages import install, member_required
from ..core.validation import ValidationError
from ..identity.login import current_actor
from ..leaks.models import COMPONENTS, ESTIMATE_CLASSES_CFM, METHODS, PRIORITIES
from ..photos.service import MAX_FILE_BYTES, MAX_PIXELS, human_size
from ..security.events import record_http_error
from . import service

bp = Blueprint("devices_api", __name__, url_prefix=openapi.API_PREFIX)
pages = Blueprint("devices", __name__)
install(pages)


# ------------------------------------------------------------------ ingest API

@bp.errorhandler(ValidationError)
def _invalid(exc: ValidationError):
    detail = "; ".join(f"{k}: {v}" if k else str(v) for k, v in exc.errors.items())
    extra = {"candidates": exc.candidates} if isinstance(exc, service.AmbiguousLocation) else {}
    return problem(422, "Unprocessable", detail,
                   errors={k: str(v) for k, v in exc.errors.items()}, **extra)


@bp.errorhandler(authz.TargetForbidden)
def _target_refused(exc: authz.TargetForbidden):
    # A location the device may not file findings in: 403 naming the finding's field.
    record_http_error(403)
    return problem(403, "Forbidden", f"{exc.field}: {exc.message}",
                   errors={exc.field: exc.message})


@bp.after_request
def _www_authenticate(response):
    if response.status_code == 401:   # RFC 6750, as the rest of /api/v1
        response.headers.setdefault("WWW-Authenticate",
                                    'Bearer realm="leakhub", error="invalid_token"')
    return response


_NUM_OR_TEXT = {"type": ["number", "string", "null"],
                "description": "l/min (bar for pressure); a number or a decimal string "
                               "(\"12.5\" or \"12,5\")."}
PHOTO_IN = openapi.component("FindingPhoto", {
    "type": "object",
    "description": "A photo of the finding, checked exactly like a browser upload: JPEG, PNG "
                   f"or WebP by content, at most {human_size(MAX_FILE_BYTES)} decoded and "
                   f"{MAX_PIXELS // 1_000_000} megapixels; EXIF/GPS and other metadata are "
                   "removed before it is stored.",
    "properties": {
        "filename": {"type": "string", "maxLength": 255},
        "content_base64": {"type": "string", "contentEncoding": "base64",
                           "maxLength": service.MAX_PHOTO_BASE64,
                           "description": "The image bytes, standard base64 (line breaks "
                                          "allowed)."},
    },
    "required": ["content_base64"],
    "additionalProperties": False,
})
FINDING = openapi.component("Finding", {
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
                   "maxItems": service.MAX_PHOTOS_PER_FINDING},
    },
    "required": ["id"],
    "oneOf": [{"required": ["location"]}, {"required": ["location_code"]}],
    "additionalProperties": False,
})
INGEST = openapi.component("IngestRequest", {
    "type": "object",
    "properties": {"findings": {"type": "array", "items": FINDING, "minItems": 1,
                                "maxItems": service.MAX_BATCH}},
    "required": ["findings"],
    "additionalProperties": False,
})
INGEST_RESULT = openapi.component("IngestResult", {
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
INGEST_PROBLEM = openapi.component("IngestProblem", {
    "allOf": [openapi.VALIDATION_PROBLEM, {
        "type": "object",
        "properties": {"candidates": {
            "type": "object",
            "additionalProperties": {"type": "array", "items": {"type": "string"}},
            "description": "For an ambiguous location: field → the full paths of every "
                           "matching location."}},
    }],
})


@bp.route("/ingest/findings", methods=["POST"])
@openapi.operation(
    summary="File findings", tag="devices", security="device", errors=(401, 403),
    description="A batch of findings from a leak detector or plant hub, all or nothing: one "
                "invalid finding or photo refuses the whole batch with 422, `errors` naming "
                "it (e.g. `findings[2].rate_lpm`, `findings[0].photos[1]`). Replaying a batch "
                "creates nothing new (photos included): findings are matched by `id`. Photos "
                "travel base64-encoded inside their finding; the whole request is limited by "
                "LEAKHUB_MAX_UPLOAD_MB.",
    body=openapi.json_body(INGEST),
    responses={201: ("At least one finding was new.", INGEST_RESULT),
               200: ("Every finding was delivered before; nothing new.", INGEST_RESULT),
               400: ("The body is not valid JSON.", openapi.PROBLEM),
               413: ("The request is larger than the upload limit.", openapi.PROBLEM),
               415: ("The body is not application/json.", openapi.PROBLEM),
               403: ("Not a device token, or a location the device may not file findings "
                     "in (`errors` names the finding's field).", openapi.PROBLEM),
               422: ("Invalid input; `errors` names each finding's field or photo; "
                     "`candidates` lists the matches of an ambiguous location.",
                     INGEST_PROBLEM)})
@api_auth("device")
def ingest_findings():
    data = body()
    result = service.ingest(g.actor, data["findings"])
    return result, (201 if result["created"] else 200)


# ------------------------------------------------------------------ admin page

def _config():
    return current_app.config["LEAKHUB"]


def _admin():
    actor = current_actor()
    authz.require(actor, "manage")
    return actor


@pages.app_template_global("devices_nav_links")
def devices_nav_links():
    """(href, label, test id) of the Devices page for administrators."""
    if not current_user.is_authenticated or current_user.is_pending:
        return []
    if not authz.can(current_actor(), "manage"):
        return []
    return [(url_for("devices.index"), _("Devices"), "nav-devices")]


def _urls(actor) -> dict:
    """Where a device gets its token and sends its findings."""
    return {"token_url": f"{_config().issuer_for(actor.organization.slug)}"
                         "/protocol/openid-connect/token",
            "ingest_url": _config().public_url + url_for("devices_api.ingest_findings")}


@pages.route("/devices")
@member_required
def index():
    actor = _admin()
    return render_template("devices/index.html", devices=service.list_devices(actor),
                           **_urls(actor))


@pages.route("/devices/add", methods=["GET", "POST"])
@member_required
def add():
    actor = _admin()
    form, errors = {}, {}
    if request.method == "POST":
        form = {k: request.form.get(k, "") for k in ("name", "model", "serial")}
        try:
            device, secret = service.add_device(_config(), actor, **form)
        except ValidationError as exc:
            errors = exc.errors
        except service.DeviceError as exc:
            errors = {"": str(exc)}
        else:
            # Rendered, never redirected or stored: the secret exists only in this response.
            response = current_app.make_response(render_template(
                "devices/added.html", device=device, secret=secret, **_urls(actor)))
            response.headers["Cache-Control"] = "no-store"
            return response
    return render_template("devices/add.html", form=form, errors=errors), \
        (422 if errors else 200)


def _toggle(device_id, enabled: bool):
    actor = _admin()
    try:
        device = service.get_device(actor, device_id)
        service.set_enabled(_config(), actor, device, enabled)
    except service.DeviceError as exc:
        flash(str(exc), "error")
    else:
        flash(_("%(name)s is enabled; it can get tokens again.", name=device.name) if enabled
              else _("%(name)s is disabled; its tokens are refused from now on.",
                     name=device.name), "success")
    return redirect(url_for("devices.index"))


@pages.route("/devices/<int:device_id>/disable", methods=["POST"])
@member_required
def disable(device_id):
    return _toggle(device_id, False)


@pages.route("/devices/<int:device_id>/enable", methods=["POST"])
@member_required
def enable(device_id):
    return _toggle(device_id, True)
