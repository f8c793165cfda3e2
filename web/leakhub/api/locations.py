"""`/api/v1/locations`: the location tree (sites, buildings, areas) through the locations
service, authorized by `authz` like the HTML pages."""
from __future__ import annotations

from flask import Response, g, url_for

from .. import authz
from ..audit.writer import ConflictError
from ..core.validation import ValidationError
from ..locations import service as locations
from ..locations.models import Location
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
    LOCATION,
    LOCATION_CREATE,
    LOCATION_LIST,
    LOCATION_PATCH,
    R_422,
    R_428,
    WRITE_ERRORS,
)
from .serializers import location_json


@bp.get("/locations")
@operation(summary="List locations", tag="locations", errors=(401, 403),
           description="Every location you may see, depth-first by path.",
           responses={200: ("The locations.", LOCATION_LIST), 422: R_422})
@api_auth("user")
def list_locations():
    query_args()
    return items([location_json(loc) for loc in locations.all_locations(g.actor)])


@bp.get(f"/locations/<{ID}:location_id>")
@operation(summary="Get a location", tag="locations",
           responses={200: ("The location.", LOCATION, "application/json", ETAG_HEADERS)})
@api_auth("user")
def get_location(location_id):
    loc = authz.get_or_404(g.actor, Location, location_id)
    return saved(location_json(loc), loc)


@bp.post("/locations")
@operation(summary="Create a location", tag="locations", errors=(401, 403),
           description="A site (no parent), a building (in a site) or an area (in a building "
                       "or area). Codes are unique among siblings.",
           body=json_body(LOCATION_CREATE),
           responses={201: ("Created.", LOCATION, "application/json", CREATED_HEADERS),
                      **WRITE_ERRORS})
@api_auth("user")
def create_location():
    actor = g.actor
    authz.require(actor, "create")
    values = locations.parse_location_form(body(), creating=True)
    loc = locations.create_location(actor, **values)
    return created(location_json(loc), loc, url_for("api.get_location", location_id=loc.id))


@bp.patch(f"/locations/<{ID}:location_id>")
@operation(summary="Change a location", tag="locations", headers=[IF_MATCH],
           body=json_body(LOCATION_PATCH),
           description="Code, name and notes; kind and parent do not change.",
           responses={200: ("Saved.", LOCATION, "application/json", ETAG_HEADERS),
                      409: ("Changed by someone else meanwhile.", conflict_problem(LOCATION)),
                      428: R_428, **WRITE_ERRORS})
@api_auth("user")
def patch_location(location_id):
    actor = g.actor
    loc = authz.get_or_404(actor, Location, location_id, "edit")
    data = body()
    version = expected_version(data, required=True)
    if version != loc.version:
        return conflict(location_json(loc))
    merged = {"code": loc.code, "name": loc.name, "notes": loc.notes, **data}
    values = locations.parse_location_form(merged, creating=False)
    try:
        loc = locations.update_location(actor, loc, expected_version=version, **values)
    except ConflictError:
        return conflict(location_json(authz.get_or_404(actor, Location, location_id)))
    return saved(location_json(loc), loc)


@bp.delete(f"/locations/<{ID}:location_id>")
@operation(summary="Delete a location", tag="locations",
           responses={204: ("Deleted.", None),
                      409: ("Locations below it or leaks recorded at it.", PROBLEM)})
@api_auth("user")
def delete_location(location_id):
    actor = g.actor
    loc = authz.get_or_404(actor, Location, location_id, "delete")
    try:
        locations.delete_location(actor, loc)
    except ValidationError as exc:
        return in_use(exc)
    return Response(status=204)

