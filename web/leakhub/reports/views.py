"""`/surveys/<id>/report.pdf` and `/locations/<id>/report.pdf`."""
from __future__ import annotations

import re

from flask import Blueprint, Response

from .. import authz
from ..audit import writer
from ..core.pages import member_required
from ..identity.login import current_actor
from ..locations.models import Location
from ..surveys.models import Survey
from . import pdf, service

bp = Blueprint("reports", __name__)


def _send(actor, data, entity, name: str) -> Response:
    body = pdf.render(data)
    writer.event(actor, "report", entity=entity, details={"format": "pdf",
                                                          "leaks": len(data.rows)})
    safe = re.sub(r"[^A-Za-z0-9._-]+", "-", name).strip("-")[:80] or "report"
    resp = Response(body, mimetype="application/pdf")
    resp.headers["Content-Disposition"] = f'inline; filename="leak-report-{safe}.pdf"'
    resp.headers["Cache-Control"] = "private, no-store"
    return resp


@bp.route("/surveys/<int:survey_id>/report.pdf")
@member_required
def survey(survey_id):
    actor = current_actor()
    s = authz.get_or_404(actor, Survey, survey_id, "report")
    return _send(actor, service.survey_report(actor, s), s, s.name)


@bp.route("/locations/<int:location_id>/report.pdf")
@member_required
def location(location_id):
    actor = current_actor()
    loc = authz.get_or_404(actor, Location, location_id, "report")
    return _send(actor, service.location_report(actor, loc), loc, loc.code or loc.name)
