"""`POST /api/v1/ingest/findings`: device tokens only (client credentials)."""
from __future__ import annotations

from flask import Blueprint, abort, g, jsonify, request

from ..api.auth import api_auth
from ..core.validation import ValidationError
from . import service

bp = Blueprint("devices_api", __name__, url_prefix="/api/v1")


@bp.route("/ingest/findings", methods=["POST"])
@api_auth("device")
def ingest_findings():
    body = request.get_json(silent=True)
    if body is None:
        abort(400, description="The body must be JSON.")
    findings = body.get("findings") if isinstance(body, dict) and "findings" in body else (
        body if isinstance(body, list) else [body])
    try:
        result = service.ingest(g.actor, findings)
    except ValidationError as exc:
        resp = jsonify({"type": "about:blank", "title": "Unprocessable", "status": 422,
                        "detail": str(exc), "errors": exc.errors})
        resp.status_code = 422
        resp.mimetype = "application/problem+json"
        return resp
    status = 201 if result["created"] else 200
    return jsonify(result), status
