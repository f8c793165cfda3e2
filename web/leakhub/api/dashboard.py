"""`/api/v1/dashboard`: the dashboard's figures over the leaks the caller may see."""
from __future__ import annotations

from flask import g

from .. import authz
from ..dashboard import service as dashboard
from .auth import api_auth
from .common import bp, query_args
from .openapi import operation
from .problems import json_response
from .schemas import DASHBOARD, R_422
from .serializers import dashboard_json


@bp.get("/dashboard")
@operation(summary="Dashboard figures", tag="dashboard", errors=(401, 403),
           description="Open leaks and realised savings (cost, energy, CO2 per year), by site, "
                       "by component and per month, over the leaks you may see.",
           responses={200: ("The figures.", DASHBOARD), 422: R_422})
@api_auth("user")
def get_dashboard():
    query_args()
    actor = g.actor
    authz.require(actor, "view")
    return json_response(dashboard_json(dashboard.compute(actor)))
