"""`/api/v1/leaks/{id}/photos` and `/api/v1/photos/{id}`: a leak's photos (metadata, upload,
the image bytes), authorized through the leak, through the photos service."""
from __future__ import annotations

from flask import abort, g, request

from .. import authz
from ..core.validation import ValidationError
from ..leaks import service as leaks
from ..leaks.models import Leak
from ..photos import service as photos
from ..photos.views import send_photo
from .auth import api_auth
from .common import ID, bp, items
from .openapi import PROBLEM, VALIDATION_PROBLEM, operation
from .schemas import CREATED_HEADERS, IMAGE, IMAGE_TYPES, PHOTO_LIST, PHOTO_UPLOAD
from .serializers import photo_json


@bp.get(f"/leaks/<{ID}:leak_id>/photos")
@operation(summary="List a leak's photos", tag="photos",
           responses={200: ("Photo metadata, oldest first.", PHOTO_LIST)})
@api_auth("user")
def list_photos(leak_id):
    leak = authz.get_or_404(g.actor, Leak, leak_id)
    return items([photo_json(p) for p in photos.photos_of(g.actor, leak)])


@bp.post(f"/leaks/<{ID}:leak_id>/photos")
@operation(summary="Upload photos", tag="photos",
           description="multipart/form-data with one or more files in `photos` (JPEG, PNG or "
                       "WebP; metadata such as EXIF/GPS is removed). All or nothing.",
           body=PHOTO_UPLOAD,
           responses={201: ("The stored photos.", PHOTO_LIST, "application/json",
                            CREATED_HEADERS),
                      413: ("Too large.", PROBLEM), 415: ("Not multipart/form-data.", PROBLEM),
                      200: ("Stored before under this `client_id`; nothing changed.",
                            PHOTO_LIST),
                      409: ("The `client_id` is used by a photo of another leak.", PROBLEM),
                      422: ("Not an acceptable image; `errors.photos` says which file.",
                            VALIDATION_PROBLEM)})
@api_auth("user", session=True)
def upload_photos(leak_id):
    actor = g.actor
    leak = authz.get_or_404(actor, Leak, leak_id, "edit")
    if request.mimetype != "multipart/form-data":
        abort(415, description="Send the photos as multipart/form-data in the field `photos`.")
    # Touching request.files enforces MAX_CONTENT_LENGTH (413 for the whole request).
    files = [(f.filename or "", f.read()) for f in request.files.getlist("photos")
             if f and (f.filename or f.content_length)]
    client_id = leaks.parse_client_id(request.form.get("client_id"))
    if client_id:
        if len(files) != 1:
            raise ValidationError({"photos": "Send exactly one photo with a client_id."})
        photo, new = photos.add_photo_once(actor, leak, client_id, *files[0])
        stored = [photo_json(photo)]
        return items(stored, 201 if new else 200, headers={"Location": stored[0]["url"]})
    stored = [photo_json(p) for p in photos.add_photos(actor, leak, files)]
    return items(stored, 201, headers={"Location": stored[0]["url"]})


@bp.get(f"/photos/<{ID}:photo_id>")
@operation(summary="Get a photo's image", tag="photos",
           description="The stored image (metadata removed). Authorized through its leak.",
           responses={200: ("The image.", IMAGE, IMAGE_TYPES),
                      304: ("Not modified (If-None-Match).", None)})
@api_auth("user")
def get_photo(photo_id):
    photo = photos.get_photo(g.actor, photo_id)
    return send_photo(photo, photo.sha256, photo.content_type, photo.original_filename or "photo")
