"""`/leaks/export.csv` and `/leaks/export.xlsx`: the leak list's current filter as a file."""
from __future__ import annotations

from flask import Blueprint, abort, request, send_file
from flask_babel import gettext as _

from ..core.pages import member_required
from ..identity.login import current_actor
from ..leaks import service as leaks
from . import service

bp = Blueprint("exports", __name__)

# Werkzeug appends "; charset=utf-8" to every text/* type itself (once).
MIMETYPES = {"csv": "text/csv",
             "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"}


def _export(fmt):
    actor = current_actor()
    flt = leaks.parse_filter(request.args)
    if flt.errors:
        # Exporting without the unreadable filter value would export more than was asked for.
        abort(400, description=_("The export was not made: %(errors)s", errors="; ".join(
            f"{k}: {v}" for k, v in flt.errors.items())))
    tz = actor.organization.timezone
    out, _n = service.export(actor, flt, fmt=fmt, tzname=tz,
                             opts=service.parse_options(request.args))
    resp = send_file(out, mimetype=MIMETYPES[fmt], as_attachment=True,
                     download_name=service.filename(actor.organization, fmt))
    resp.headers["Cache-Control"] = "private, no-store"
    return resp


@bp.route("/leaks/export.csv")
@member_required
def export_csv():
    return _export("csv")


@bp.route("/leaks/export.xlsx")
@member_required
def export_xlsx():
    return _export("xlsx")
