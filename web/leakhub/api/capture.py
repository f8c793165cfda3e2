"""`/api/v1/capture`: what the offline capture page keeps on the device — the surveys and
locations the caller may record in, the organization's next tag number, and (for the signed-in
browser session only, when the sync asks with `X-Leakhub-Sync: 1`) the session's CSRF token
for the sync's POSTs."""
from __future__ import annotations

from flask import g, request

from .. import authz
from ..core.web import csrf_token
from ..leaks import service as leaks
from ..locations import service as locations
from ..surveys.models import Survey
from .auth import api_auth
from .common import bp, query_args
from .openapi import operation
from .problems import json_response

CAPTURE = {
    "type": "object",
    "properties": {
        "user": {"type": "object", "properties": {"id": {"type": "integer"},
                                                  "name": {"type": "string"}}},
        "organization": {"type": "string"},
        "next_tag": {"type": "integer"},
        "locations": {"type": "array", "items": {"type": "object", "properties": {
            "id": {"type": "integer"}, "label": {"type": "string"}}}},
        "surveys": {"type": "array", "items": {"type": "object", "properties": {
            "id": {"type": "integer"}, "label": {"type": "string"}}}},
        "csrf_token": {"type": "string", "description": (
            "The browser session's CSRF token, only when asked with `X-Leakhub-Sync: 1`.")},
    },
    "required": ["user", "organization", "next_tag", "locations", "surveys"],
}


@bp.get("/capture")
@operation(summary="Data for offline capture", tag="leaks", errors=(401, 403),
           description="The surveys and locations you may record leaks in and the next tag "
                       "number, for the offline capture page to keep on the device.",
           responses={200: ("The data.", CAPTURE)})
@api_auth("user", session=True)
def capture_data():
    query_args()
    actor = g.actor
    authz.require(actor, "create")
    surveys = [{"id": sid, "label": f"{name} ({start.isoformat()})"} for sid, name, start in
               authz.scope(actor, Survey, "view",
                           Survey.select(Survey.id, Survey.name, Survey.period_start))
               .order_by(Survey.period_start.desc()).limit(200).tuples()]
    data = {"user": {"id": actor.user.id, "name": actor.user.display_name},
            "organization": actor.organization.slug,
            "next_tag": leaks.next_tag_number(actor),
            "locations": [{"id": i, "label": label}
                          for i, label in locations.tree_options(actor)],
            "surveys": surveys}
    if "Authorization" not in request.headers and request.headers.get("X-Leakhub-Sync") == "1":
        # Only to the sync itself, which the service worker never stores.
        data["csrf_token"] = csrf_token()
    return json_response(data)
