"""`/leaks/export.csv` and `/leaks/export.xlsx`: the leak list's current filter as a file.
Up to jobs.DIRECT_MAX_ROWS rows the file is the response; a larger export becomes a job for
the worker and the user is sent to its page (progress, then the download link)."""
from __future__ import annotations

import unicodedata
from urllib.parse import quote

from flask import Blueprint, Response, abort, redirect, render_template, request, send_file, url_for
from flask_babel import gettext as _

from ..core.pages import member_required
from ..identity.login import current_actor
from ..leaks import service as leaks
from . import jobs, service

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
    opts = service.parse_options(request.args)
    total = jobs.count(actor, flt, tzname=tz)
    if total > jobs.DIRECT_MAX_ROWS and actor.user is not None:
        job = jobs.request_export(actor, flt, fmt=fmt, opts=opts, total=total)
        return redirect(url_for("exports.job", job_id=job.uid), 303)
    out, _n = service.export(actor, flt, fmt=fmt, tzname=tz, opts=opts)
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


@bp.route("/exports/<job_id>")
@member_required
def job(job_id):
    """The job's progress (the page reloads itself while it runs), then its download link."""
    actor = current_actor()
    found = jobs.own_job(actor, job_id)
    if found is None:
        abort(404)
    resp = render_template("exports/job.html", job=found,
                           ready=jobs.file_path(found) is not None,
                           retention_hours=int(jobs.RETENTION.total_seconds() // 3600))
    return resp, 200, {"Cache-Control": "private, no-store"}


def _file_name(name: str) -> dict:
    """Content-Disposition's file name as send_file writes it: an ASCII fallback and the
    UTF-8 name (RFC 5987) when the organization's name has umlauts."""
    try:
        name.encode("ascii")
    except UnicodeEncodeError:
        simple = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode("ascii")
        return {"filename": simple, "filename*": f"UTF-8''{quote(name, safe='!#$&+-.^_`|~')}"}
    return {"filename": name}


@bp.route("/exports/<job_id>/download")
@member_required
def download(job_id):
    actor = current_actor()
    found = jobs.own_job(actor, job_id)
    chunks = jobs.open_file(found) if found is not None else None
    if chunks is None:
        abort(404)
    name = service.filename(actor.organization, found.fmt, found.created_at.date())
    resp = Response(chunks, mimetype=MIMETYPES[found.fmt], direct_passthrough=True)
    resp.headers.set("Content-Disposition", "attachment", **_file_name(name))
    if found.size:
        resp.headers["Content-Length"] = str(found.size)
    resp.headers["Cache-Control"] = "private, no-store"
    return resp
