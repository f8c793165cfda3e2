"""`/api/v1` by resource, for Keycloak bearer tokens: locations, surveys, leaks (with the status
workflow), photos, dashboard figures (blueprint `api`) and device ingest (blueprint
`devices_api`); this module gathers them and serves the OpenAPI document.

Every endpoint authenticates with `@api_auth` (api/auth.py), authorizes through `authz` and
calls the same feature services as the HTML views; nothing here queries organization data
without `authz.scope`. Shared plumbing: api/common.py (blueprint, request body and query,
versions); api/schemas.py (request/response schemas), api/serializers.py (records → JSON),
api/problems.py (the one RFC 9457 problem builder and error mapping), api/openapi.py (the
document, assembled from each view's `@operation`).
"""
from __future__ import annotations

from . import capture, dashboard, leaks, locations, openapi, photos, surveys  # noqa: F401 (routes)
from .common import bp
from .ingest import bp as ingest_bp
from .openapi import operation
from .problems import json_response

__all__ = ["bp", "ingest_bp"]


@bp.get("/openapi.json")
@operation(summary="This OpenAPI document", tag="meta", security=None, errors=(),
           responses={200: ("OpenAPI 3.1 document.", {"type": "object"})})
def openapi_json():
    return json_response(openapi.document(), headers={"Cache-Control": "no-cache"})
