"""Photos of leaks: checking, cleaning and storing uploads; listing and deleting.

An upload is accepted only when its bytes are a JPEG, PNG or WebP image (the file name and
the browser's content type are not trusted). It is decoded, turned upright (EXIF orientation
applied), and re-encoded by Pillow without any metadata — EXIF, GPS, XMP, comments and ICC
profiles are dropped (DESIGN §3.8). A 320 px JPEG thumbnail is made beside it. Both are stored
under the sha256 of the stored bytes; rows are created and deleted through the audit writer.
"""
from __future__ import annotations

import datetime as dt
import io
import re
import unicodedata
import warnings
from dataclasses import dataclass

import peewee as pw
from flask_babel import gettext as _
from PIL import Image, ImageOps, UnidentifiedImageError

from .. import authz
from ..audit import writer
from ..core.db import database, utcnow
from ..core.errors import Conflict, Invalid
from ..leaks.models import Leak
from ..orgs.models import Organization
from .models import Photo
from .storage import photo_storage

FORMATS = {"JPEG": "image/jpeg", "PNG": "image/png", "WEBP": "image/webp"}
MB = 1024 * 1024
# One file; the whole request is limited by LEAKHUB_MAX_UPLOAD_MB (Flask MAX_CONTENT_LENGTH).
MAX_FILE_BYTES = 15 * MB
# Decoded size: guards against decompression bombs (a small file that expands to gigabytes).
MAX_PIXELS = 50_000_000
# Stored images are scaled down to this long edge (detail enough for a leak; data economy).
MAX_EDGE = 4096
THUMB_EDGE = 320
MAX_PHOTOS_PER_LEAK = 50


class PhotoError(Invalid):
    """A refused upload. `status` is the HTTP status (413 too large, 422 not acceptable)."""

    def __init__(self, message: str, status: int = 422, filename: str = ""):
        super().__init__(message)
        self.status = status
        self.filename = filename


def human_size(n: int) -> str:
    return f"{n / MB:.0f} MB" if n >= MB else f"{max(1, n // 1024)} KB"


def sniff(data: bytes) -> str | None:
    """The image format from the first bytes (magic numbers), or None."""
    if data[:3] == b"\xff\xd8\xff":
        return "JPEG"
    if data[:8] == b"\x89PNG\r\n\x1a\n":
        return "PNG"
    if len(data) >= 12 and data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "WEBP"
    return None


_UNSAFE = re.compile(r"[^\w .()+,-]", re.UNICODE)


def sanitize_filename(name: str | None) -> str:
    """The last path component, NFC, without control or special characters, ≤ 200 chars."""
    name = unicodedata.normalize("NFC", name or "")
    name = re.split(r"[/\\]", name)[-1]
    name = "".join(c for c in name if unicodedata.category(c)[0] != "C")
    name = _UNSAFE.sub("_", name).strip(" .")
    if len(name) > 200:
        stem, dot, ext = name.rpartition(".")
        name = (stem[:190] + dot + ext[:9]) if dot and len(ext) <= 9 else name[:200]
    return name or "photo"


@dataclass
class CleanImage:
    data: bytes
    thumb: bytes
    content_type: str
    width: int
    height: int


def _flatten(img: Image.Image) -> Image.Image:
    """RGB for JPEG (transparent areas on white)."""
    if img.mode in ("RGB", "L"):
        return img
    if img.mode in ("RGBA", "LA", "P", "PA") or "transparency" in img.info:
        rgba = img.convert("RGBA")
        bg = Image.new("RGB", rgba.size, (255, 255, 255))
        bg.paste(rgba, mask=rgba.getchannel("A"))
        return bg
    return img.convert("RGB")


def clean_image(data: bytes, filename: str = "") -> CleanImage:
    """Validate and re-encode without metadata. Raises PhotoError naming the file."""
    shown = filename or _("the file")
    if len(data) > MAX_FILE_BYTES:
        raise PhotoError(_("%(name)s is larger than %(limit)s.", name=shown,
                           limit=human_size(MAX_FILE_BYTES)), 413, filename)
    fmt = sniff(data)
    if fmt is None:
        raise PhotoError(_("%(name)s is not a JPEG, PNG or WebP image.", name=shown), 422,
                         filename)
    too_many_pixels = PhotoError(_("%(name)s has too many pixels (at most %(mp)d megapixels).",
                                   name=shown, mp=MAX_PIXELS // 1_000_000), 422, filename)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            Image.init()
            allowed = [fmt, "MPO"] if fmt == "JPEG" and "MPO" in Image.OPEN else [fmt]
            img = Image.open(io.BytesIO(data), formats=allowed)
            if img.width * img.height > MAX_PIXELS:
                raise too_many_pixels
            img.seek(0)
            img.load()
            img = ImageOps.exif_transpose(img)
    except PhotoError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        # Pillow's own guard (above its MAX_IMAGE_PIXELS) fires inside open(), before the
        # size check above: the same limit, named.
        raise too_many_pixels from None
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError, EOFError):
        raise PhotoError(_("%(name)s could not be read as an image.", name=shown), 422,
                         filename) from None
    if max(img.size) > MAX_EDGE:
        img.thumbnail((MAX_EDGE, MAX_EDGE), Image.Resampling.LANCZOS)
    # A fresh image without `info`: nothing of the original's metadata can be carried over.
    if fmt == "JPEG":
        img = _flatten(img) if img.mode not in ("RGB", "L", "CMYK") else img
        if img.mode == "CMYK":
            img = img.convert("RGB")
    elif img.mode not in ("RGB", "RGBA", "L", "LA", "P", "1", "I;16", "I"):
        img = img.convert("RGBA")
    clean = img.copy()
    clean.info = {}
    if fmt == "WEBP" and clean.mode not in ("RGB", "RGBA"):
        clean = clean.convert("RGBA" if "A" in clean.mode or clean.mode == "P" else "RGB")
    out = io.BytesIO()
    if fmt == "JPEG":
        clean.save(out, "JPEG", quality=88, optimize=True)
    elif fmt == "PNG":
        clean.save(out, "PNG")
    else:
        clean.save(out, "WEBP", quality=88)
    thumb_img = _flatten(clean)
    thumb_img = thumb_img.copy()
    thumb_img.thumbnail((THUMB_EDGE, THUMB_EDGE), Image.Resampling.LANCZOS)
    thumb_img.info = {}
    tout = io.BytesIO()
    thumb_img.save(tout, "JPEG", quality=80, optimize=True)
    return CleanImage(data=out.getvalue(), thumb=tout.getvalue(), content_type=FORMATS[fmt],
                      width=clean.width, height=clean.height)


def add_photos(actor, leak: Leak, files: list[tuple[str, bytes]], client_id: str = ""
               ) -> list[Photo]:
    """All or nothing: every file is checked first; one bad file refuses the whole upload
    with a PhotoError naming it."""
    authz.require(actor, "edit", leak)
    if not files:
        raise PhotoError(_("Choose at least one photo."), 422)
    existing = authz.scope(actor, Photo, "view").where(Photo.leak == leak.id).count()
    if existing + len(files) > MAX_PHOTOS_PER_LEAK:
        raise PhotoError(_("A leak can have at most %(n)d photos.", n=MAX_PHOTOS_PER_LEAK), 422)
    cleaned = [(sanitize_filename(name), clean_image(data, sanitize_filename(name)))
               for name, data in files]
    return store_photos(actor, leak, cleaned, client_id)


def add_photo_once(actor, leak: Leak, client_id: str, name: str, data: bytes
                   ) -> tuple[Photo, bool]:
    """Offline sync: the one photo the device queued under `client_id` (a UUID) for `leak`,
    stored on the first call and found on every repeat — (photo, created). The id used for a
    photo of another leak (or one the caller may not see) is a Conflict; nothing is stored."""
    authz.require(actor, "edit", leak)

    def existing():
        photo = Photo.get_or_none((Photo.organization == actor.organization.id)
                                  & (Photo.client_id == client_id))
        if photo is not None and photo.leak_id != leak.id:
            raise Conflict(_("This client id is already used by a photo of another leak."))
        return photo

    found = existing()
    if found is not None:
        return found, False
    try:
        return add_photos(actor, leak, [(name, data)], client_id=client_id)[0], True
    except pw.IntegrityError:
        # A concurrent replay of the same upload stored it first (the unique index).
        found = existing()
        if found is None:
            raise
        return found, False


def store_photos(actor, leak: Leak, cleaned: list[tuple[str, CleanImage]],
                 client_id: str = "") -> list[Photo]:
    """Store images already checked by `clean_image` and create their rows (one
    transaction). For `add_photos` and for device ingest, which checks a whole batch of
    findings first and files their photos with the new leaks."""
    store = photo_storage(actor.organization)
    created = []
    with database.atomic():
        for name, img in cleaned:
            key = store.put(img.data)
            thumb_key = store.put(img.thumb)
            created.append(writer.create(
                actor, Photo, leak=leak, sha256=key, thumb_sha256=thumb_key,
                content_type=img.content_type, size=len(img.data), width=img.width,
                height=img.height, original_filename=name,
                uploaded_by=actor.user if actor.kind == "user" else None,
                uploaded_at=utcnow(), **({"client_id": client_id} if client_id else {})))
    return created


def photos_of(actor, leak_or_id) -> list[Photo]:
    leak_id = leak_or_id.id if isinstance(leak_or_id, Leak) else int(leak_or_id)
    return list(authz.scope(actor, Photo, "view").where(Photo.leak == leak_id)
                .order_by(Photo.uploaded_at, Photo.id))


def photos_by_leak(actor, leak_ids) -> dict[int, list[Photo]]:
    """Photos of many leaks in one query (reports)."""
    out: dict[int, list[Photo]] = {}
    ids = list(leak_ids)
    for i in range(0, len(ids), 500):
        for p in (authz.scope(actor, Photo, "view").where(Photo.leak.in_(ids[i:i + 500]))
                  .order_by(Photo.leak, Photo.uploaded_at, Photo.id)):
            out.setdefault(p.leak_id, []).append(p)
    return out


def get_photo(actor, photo_id, action: str = "view") -> Photo:
    """The photo, authorized through its leak (404 for another organization's photo or one
    whose leak the actor may not see)."""
    photo = authz.get_or_404(actor, Photo, photo_id)
    authz.get_or_404(actor, Leak, photo.leak_id, action)
    return photo


# Files written within this window are kept even when unreferenced: a concurrent upload of
# the same bytes may be about to insert its row.
_GRACE = dt.timedelta(seconds=120)


def release_files(organization, keys, *, grace: dt.timedelta = dt.timedelta(0)) -> int:
    """Delete stored files no longer referenced by any photo of the organization (and not
    written within `grace`)."""
    store = photo_storage(organization)
    system = authz.Actor.system(organization, label="photo storage")
    removed = 0
    for key in set(keys):
        used = authz.scope(system, Photo, "view").where(
            (Photo.sha256 == key) | (Photo.thumb_sha256 == key)).exists()
        if used:
            continue
        mtime = store.modified_at(key)
        if grace and mtime is not None and utcnow() - mtime < grace:
            continue
        store.delete(key)
        removed += 1
    return removed


def delete_photo(actor, photo: Photo) -> None:
    authz.get_or_404(actor, Leak, photo.leak_id, "edit")
    keys = (photo.sha256, photo.thumb_sha256)
    writer.delete(actor, photo)
    release_files(actor.organization, keys)


def collect_garbage(organization) -> int:
    """Remove stored files that no photo references any more (e.g. after a leak was deleted,
    which cascades to its photo rows). For the worker or leakctl."""
    store = photo_storage(organization)
    return release_files(organization, list(store.keys()), grace=_GRACE)


def collect_garbage_everywhere() -> str:
    """Worker job: files left behind when leaks were deleted (their photo rows go by cascade,
    outside the photo service) are removed for every organization."""
    removed = {org.slug: collect_garbage(org) for org in Organization.select()}
    total = sum(removed.values())
    detail = ", ".join(f"{slug}: {n}" for slug, n in removed.items() if n)
    return f"{total} unreferenced photo file(s) removed" + (f" ({detail})" if detail else "")
