"""`/api/v1/leaks`: the leak register (the leak list's filters, one page at a time) and the
status workflow (`POST /leaks/{id}/status`), through the leaks service."""
from __future__ import annotations

from flask import Response, g, url_for
from werkzeug.datastructures import MultiDict

from .. import authz
from ..audit.writer import ConflictError
from ..core.validation import Fields, ValidationError
from ..leaks import service as leaks
from ..leaks.models import Leak
from .auth import api_auth
from .common import (
    ID,
    body,
    bp,
    conflict,
    created,
    etag,
    expected_version,
    query_args,
    rfc3339,
    saved,
)
from .openapi import PROBLEM, conflict_problem, json_body, operation
from .problems import json_response
from .schemas import (
    CREATED_HEADERS,
    ETAG_HEADERS,
    IF_MATCH,
    LEAK,
    LEAK_CREATE,
    LEAK_PAGE,
    LEAK_PATCH,
    LEAK_QUERY,
    R_422,
    R_428,
    STATUS_CHANGE,
    WRITE_ERRORS,
)
from .serializers import leak_json, leak_out


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
    return json_response({"items": [leak_json(r.leak, r.figures) for r in rows],
                          "total": page.total, "page": requested, "per_page": per_page,
                          "pages": page.pages})


@bp.get(f"/leaks/<{ID}:leak_id>")
@operation(summary="Get a leak", tag="leaks",
           responses={200: ("The leak.", LEAK, "application/json", ETAG_HEADERS)})
@api_auth("user")
def get_leak(leak_id):
    leak = authz.get_or_404(g.actor, Leak, leak_id)
    return saved(leak_out(g.actor, leak), leak)


@bp.post("/leaks")
@operation(summary="Record a leak", tag="leaks", errors=(401, 403),
           description="Without `tag` the organization's next tag number is assigned. With "
                       "`client_id` (offline capture) the call is idempotent: the same id "
                       "again answers 200 with the leak made the first time. The signed-in "
                       "browser session may call this too, with its CSRF token in "
                       "`X-CSRF-Token`.",
           body=json_body(LEAK_CREATE),
           responses={200: ("Recorded before under this `client_id`; nothing changed.",
                            LEAK, "application/json", CREATED_HEADERS),
                      201: ("Created.", LEAK, "application/json", CREATED_HEADERS),
                      409: ("The `client_id` is used by a record you may not see.", PROBLEM),
                      **WRITE_ERRORS})
@api_auth("user", session=True)
def create_leak():
    actor = g.actor
    authz.require(actor, "create")
    data = body()
    client_id = leaks.parse_client_id(data.pop("client_id", None))
    rfc3339(data, "found_at")
    values = leaks.parse_leak_form(data, tzname="UTC", creating=True)
    leak, new = leaks.record_leak_once(actor, client_id, **values)
    if not client_id or new:
        return created(leak_out(actor, leak), leak, url_for("api.get_leak", leak_id=leak.id))
    return json_response(leak_out(actor, leak), 200,
                         headers={"Location": url_for("api.get_leak", leak_id=leak.id),
                                  **etag(leak)})


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
        return conflict(leak_out(actor, leak))
    rfc3339(data, "found_at")
    sent = set(data)
    data.setdefault("location", leak.location_id)
    parsed = leaks.parse_leak_form(data, tzname="UTC", creating=False)
    values = {k: v for k, v in parsed.items() if k in sent}
    try:
        leak = leaks.update_leak(actor, leak, expected_version=version, **values)
    except ConflictError:
        return conflict(leak_out(actor, authz.get_or_404(actor, Leak, leak_id)))
    leak = authz.get_or_404(actor, Leak, leak_id)
    return saved(leak_out(actor, leak), leak)


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
        return conflict(leak_out(actor, leak))
    values = leaks.parse_status_form(data)
    to_status = values.pop("to_status")
    try:
        leaks.change_status(actor, leak, to_status, expected_version=version, **values)
    except ConflictError:
        return conflict(leak_out(actor, authz.get_or_404(actor, Leak, leak_id)))
    leak = authz.get_or_404(actor, Leak, leak_id)
    return saved(leak_out(actor, leak), leak)

