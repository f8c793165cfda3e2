"""Photo routes. Photos are served only here, after authorization on the photo's leak —
never from a static route — with `Cache-Control: private`."""
from __future__ import annotations

import logging

from flask import Blueprint, abort, flash, jsonify, redirect, request, send_file
from flask_babel import gettext as _

from .. import authz
from ..core.crypto import DataKeyError
from ..core.pages import member_required
from ..core.web import safe_next
from ..identity.login import current_actor
from ..leaks.models import Leak
from . import service
from .storage import photo_storage

bp = Blueprint("photos", __name__)
log = logging.getLogger("leakhub.photos")


def _wants_json() -> bool:
    best = request.accept_mimetypes.best_match(["application/json", "text/html"])
    return best == "application/json" and request.accept_mimetypes[best] > \
        request.accept_mimetypes["text/html"]


def _photo_json(p):
    return {"id": p.id, "leak": p.leak_id, "content_type": p.content_type, "size": p.size,
            "width": p.width, "height": p.height, "filename": p.original_filename,
            "url": f"/photos/{p.id}", "thumb_url": f"/photos/{p.id}/thumb"}


@bp.app_template_global()
def leak_photos(leak):
    """For templates/photos/_section.html (included on the leak page)."""
    try:
        return service.photos_of(current_actor(), leak)
    except Exception:  # noqa: BLE001 - a photo problem must not break the leak page
        return []


@bp.route("/leaks/<int:leak_id>/photos", methods=["POST"])
@member_required
def upload(leak_id):
    actor = current_actor()
    leak = authz.get_or_404(actor, Leak, leak_id, "edit")
    # Touching request.files enforces MAX_CONTENT_LENGTH (413 for the whole request).
    files = [(f.filename or "", f.read()) for f in request.files.getlist("photos")
             if f and (f.filename or f.content_length)]
    try:
        photos = service.add_photos(actor, leak, files)
    except service.PhotoError as exc:
        if _wants_json():
            resp = jsonify({"title": _("Photo refused"), "status": exc.status,
                            "detail": str(exc), "file": exc.filename})
            resp.status_code = exc.status
            resp.mimetype = "application/problem+json"
            return resp
        abort(exc.status, description=str(exc))
    if _wants_json():
        return jsonify([_photo_json(p) for p in photos]), 201
    flash(_("%(n)d photo(s) added.", n=len(photos)), "success")
    return redirect(safe_next(request.form.get("next"), default="/"))


def send_photo(photo, key, content_type, download_name):
    """The stored file `key` of `photo` as the answer (web page and API alike): cacheable by
    the browser only, never sniffed or run (CSP sandbox); 404 when the file is gone."""
    store = photo_storage(photo.organization_id)
    try:
        fh = store.open(key)
    except FileNotFoundError:
        abort(404)
    except DataKeyError as exc:
        # Tampered, damaged or from a lost key: the operator reads the file's path in the log
        # (docs/encryption.md, Recovery); the user gets no server paths.
        log.error("photo %s: %s", photo.id, exc)
        abort(500, description=_("This photo cannot be decrypted on the server; the "
                                 "administrators find the details in the log."))
    resp = send_file(fh, mimetype=content_type, download_name=download_name,
                     as_attachment=False, etag=key, conditional=True, max_age=3600)
    # The bytes behind an id never change; only the browser (not shared caches) may keep them.
    resp.headers["Cache-Control"] = "private, max-age=3600"
    resp.headers["X-Content-Type-Options"] = "nosniff"
    resp.headers["Content-Security-Policy"] = "default-src 'none'; sandbox"
    return resp


@bp.route("/photos/<int:photo_id>")
@member_required
def show(photo_id):
    photo = service.get_photo(current_actor(), photo_id)
    return send_photo(photo, photo.sha256, photo.content_type, photo.original_filename or "photo")


@bp.route("/photos/<int:photo_id>/thumb")
@member_required
def thumb(photo_id):
    photo = service.get_photo(current_actor(), photo_id)
    return send_photo(photo, photo.thumb_sha256, "image/jpeg", "thumb.jpg")


@bp.route("/photos/<int:photo_id>/delete", methods=["POST"])
@member_required
def delete(photo_id):
    actor = current_actor()
    photo = service.get_photo(actor, photo_id, "edit")
    service.delete_photo(actor, photo)
    if _wants_json():
        return "", 204
    flash(_("Photo deleted."), "success")
    return redirect(safe_next(request.form.get("next"), default="/"))
