"""`/api/v1/surveys`: surveys with their scope (location ids) through the surveys service."""
from __future__ import annotations

from flask import Response, g, url_for

from .. import authz
from ..audit.writer import ConflictError
from ..core.validation import ValidationError
from ..surveys import service as surveys
from ..surveys.models import STATUSES as SURVEY_STATUSES
from ..surveys.models import Survey
from .auth import api_auth
from .common import (
    ID,
    body,
    bp,
    conflict,
    created,
    expected_version,
    in_use,
    items,
    query_args,
    saved,
)
from .openapi import PROBLEM, conflict_problem, json_body, operation
from .schemas import (
    CREATED_HEADERS,
    ETAG_HEADERS,
    IF_MATCH,
    R_422,
    R_428,
    SURVEY,
    SURVEY_CREATE,
    SURVEY_LIST,
    SURVEY_PATCH,
    SURVEY_STATUS_QUERY,
    WRITE_ERRORS,
)
from .serializers import scopes_of, survey_json, survey_out


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
    scopes = scopes_of(g.actor, [s.id for s in rows])
    return items([survey_json(s, scopes.get(s.id, [])) for s in rows])


@bp.get(f"/surveys/<{ID}:survey_id>")
@operation(summary="Get a survey", tag="surveys",
           responses={200: ("The survey.", SURVEY, "application/json", ETAG_HEADERS)})
@api_auth("user")
def get_survey(survey_id):
    survey = authz.get_or_404(g.actor, Survey, survey_id)
    return saved(survey_out(g.actor, survey), survey)


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
    return created(survey_out(actor, survey), survey,
                   url_for("api.get_survey", survey_id=survey.id))


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
        return conflict(survey_out(actor, survey))
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
        return conflict(survey_out(actor, survey))
    survey = authz.get_or_404(actor, Survey, survey_id)
    return saved(survey_out(actor, survey), survey)


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
        return in_use(exc)
    return Response(status=204)

