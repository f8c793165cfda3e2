"""`POST /api/v1/ingest/findings`: device ingest (device tokens only, client credentials).

A batch of findings becomes leaks with status `to_review` through the devices service, all or
nothing; described in the OpenAPI document and answered with the same problem documents as
the rest of /api/v1. Its own blueprint (`devices_api`) because its callers are devices, not
users; its operation id stays `devices_api_ingest_findings`.
"""
from __future__ import annotations

from flask import g

from ..devices import service as devices
from .auth import api_auth
from .common import blueprint, body
from .openapi import PROBLEM, json_body, operation
from .problems import json_response
from .schemas import INGEST, INGEST_PROBLEM, INGEST_RESULT

bp = blueprint("devices_api")


@bp.route("/ingest/findings", methods=["POST"])
@operation(
    summary="File findings", tag="devices", security="device", errors=(401, 403),
    description="A batch of findings from a leak detector or plant hub, all or nothing: one "
                "invalid finding or photo refuses the whole batch with 422, `errors` naming "
                "it (e.g. `findings[2].rate_lpm`, `findings[0].photos[1]`). Replaying a batch "
                "creates nothing new (photos included): findings are matched by `id`. Photos "
                "travel base64-encoded inside their finding; the whole request is limited by "
                "LEAKHUB_MAX_UPLOAD_MB.",
    body=json_body(INGEST),
    responses={201: ("At least one finding was new.", INGEST_RESULT),
               200: ("Every finding was delivered before; nothing new.", INGEST_RESULT),
               400: ("The body is not valid JSON.", PROBLEM),
               413: ("The request is larger than the upload limit.", PROBLEM),
               415: ("The body is not application/json.", PROBLEM),
               403: ("Not a device token, or a location the device may not file findings "
                     "in (`errors` names the finding's field).", PROBLEM),
               422: ("Invalid input; `errors` names each finding's field or photo; "
                     "`candidates` lists the matches of an ambiguous location.",
                     INGEST_PROBLEM)})
@api_auth("device")
def ingest_findings():
    result = devices.ingest(g.actor, body()["findings"])
    return json_response(result, 201 if result["created"] else 200)
