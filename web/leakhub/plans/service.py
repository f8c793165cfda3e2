"""Floor plans: checking and storing a plan image per location, placing leaks on it (pins as
fractions 0..1 of the plan's width and height), replacing a plan (pins kept only when the
user confirms, else cleared; audited), and the plans with their pins for the PDF reports.

An upload is accepted when its bytes are a PNG or JPEG image (re-encoded without metadata by
photos.service.clean_image, with the same size and pixel limits as photos) or a PDF, whose
first page is rendered with PDFium (pypdfium2) to a PNG of at most MAX_EDGE pixels.

Which leaks a plan shows: those in its location's subtree, except those below a deeper
location that has its own plan (a leak belongs to the plan nearest to it)."""
from __future__ import annotations

import io
import math
import re
from dataclasses import dataclass

import pypdfium2 as pdfium
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l

from .. import authz
from ..audit import writer
from ..core.db import after_commit, database, utcnow
from ..leaks.models import Leak
from ..locations.models import Location
from ..photos.service import (
    MAX_EDGE,
    MAX_FILE_BYTES,
    PhotoError,
    clean_image,
    human_size,
    sanitize_filename,
    sniff,
)
from ..photos.storage import FileStorage, uploads_root
from .models import FloorPlan

# Pin colour and shape per status: the shape and the legend carry the meaning too, so the
# plan does not rely on colour alone (open: circle, planned/deferred: diamond, fixed: square,
# to review / not a leak: triangle).
STATUS_STYLE = {
    "to_review": ("#6b7280", "triangle"),
    "open": ("#d62728", "circle"),
    "repair_planned": ("#ff7f0e", "diamond"),
    "deferred": ("#9467bd", "diamond"),
    "repaired": ("#1f77b4", "square"),
    "verified": ("#2ca02c", "square"),
    "not_a_leak": ("#9ca3af", "triangle"),
}
SHAPE_LABELS = {"circle": _l("circle"), "diamond": _l("diamond"), "square": _l("square"),
                "triangle": _l("triangle")}
# A PDF page is rendered at most at this many pixels per inch (before the MAX_EDGE cap).
PDF_DPI = 200


class PlanError(PhotoError):
    """A refused plan upload or pin (status 413 or 422), naming the file or field."""


def plan_storage(organization, config=None) -> FileStorage:
    """Plans live beside photos but in their own folder: the photo garbage collector only
    knows photo rows and must never see a plan's file."""
    org_id = organization if isinstance(organization, int) else organization.id
    return FileStorage(uploads_root(config) / "plans" / str(int(org_id)), config)


def _render_pdf(data: bytes, shown: str) -> bytes:
    """The first page of a PDF as PNG bytes."""
    try:
        pdf = pdfium.PdfDocument(data)
    except pdfium.PdfiumError:
        # PDFium refuses a document without pages outright; say so when its page tree is
        # visibly empty, else the file is damaged or not a PDF.
        counts = re.findall(rb"/Count\s*(\d+)", data[:1_000_000])
        if counts and not any(int(n) for n in counts):
            raise PlanError(_("%(name)s has no pages.", name=shown), 422) from None
        raise PlanError(_("%(name)s could not be read as a PDF.", name=shown), 422) from None
    try:
        if len(pdf) < 1:
            raise PlanError(_("%(name)s has no pages.", name=shown), 422)
        page = pdf[0]
        width, height = page.get_size()
        if not (width > 0 and height > 0) or not math.isfinite(width * height):
            raise PlanError(_("%(name)s has an empty first page.", name=shown), 422)
        scale = min(PDF_DPI / 72, MAX_EDGE / max(width, height))
        bitmap = page.render(scale=scale, fill_color=(255, 255, 255, 255))
        img = bitmap.to_pil()
        out = io.BytesIO()
        img.convert("RGB").save(out, "PNG", compress_level=1)  # re-encoded by clean_image
        return out.getvalue()
    except pdfium.PdfiumError:
        raise PlanError(_("%(name)s could not be rendered.", name=shown), 422) from None
    finally:
        pdf.close()


def clean_plan(data: bytes, filename: str = ""):
    """A checked, metadata-free plan image (photos.service.CleanImage). Raises PlanError."""
    shown = filename or _("the file")
    if len(data) > MAX_FILE_BYTES:
        raise PlanError(_("%(name)s is larger than %(limit)s.", name=shown,
                          limit=human_size(MAX_FILE_BYTES)), 413)
    if data[:5] == b"%PDF-":
        data = _render_pdf(data, shown)
    elif sniff(data) not in ("PNG", "JPEG"):
        raise PlanError(_("%(name)s is not a PNG or JPEG image or a PDF.", name=shown), 422)
    try:
        return clean_image(data, filename)
    except PhotoError as exc:
        raise PlanError(str(exc), exc.status) from None


def plan_of(actor, location: Location) -> FloorPlan | None:
    return (authz.scope(actor, FloorPlan, "view").where(FloorPlan.location == location.id)
            .first())


def _planned_below(actor, location: Location) -> list[str]:
    """Paths of the locations strictly below `location` that have a plan of their own."""
    return [path for (path,) in authz.scope(
        actor, Location, "view", Location.select(Location.path))
        .join(FloorPlan, on=(FloorPlan.location == Location.id))
        .where(Location.path.startswith(location.path), Location.id != location.id).tuples()]


def plan_leaks(actor, location: Location) -> list[Leak]:
    """The visible leaks a plan of `location` shows (see the module docstring)."""
    below = _planned_below(actor, location)
    sub = (authz.scope(actor, Location, "view", Location.select(Location.id))
           .where(Location.path.startswith(location.path)))
    query = (authz.scope(actor, Leak, "view").where(Leak.location.in_(sub))
             .order_by(Leak.tag_number, Leak.tag))
    if below:
        paths = {loc.id: loc.path for loc in authz.scope(actor, Location, "view").where(
            Location.path.startswith(location.path))}
        return [lk for lk in query if not any(paths.get(lk.location_id, "").startswith(p)
                                              for p in below)]
    return list(query)


def plan_for_leak(actor, leak: Leak) -> FloorPlan | None:
    """The plan a leak belongs to: that of its nearest location (itself or above) with one."""
    ids = leak.location.ancestor_ids
    plans = {p.location_id: p for p in authz.scope(actor, FloorPlan, "view").where(
        FloorPlan.location.in_(ids))}
    return next((plans[i] for i in reversed(ids) if i in plans), None)


def is_pinned(leak: Leak, plan: FloorPlan | None) -> bool:
    return (plan is not None and leak.plan_x is not None and leak.plan_y is not None
            and leak.plan_version == plan.version)


def upload_plan(actor, location: Location, filename: str, data: bytes, *,
                keep_pins: bool = False) -> FloorPlan:
    """Create or replace the plan of `location`. On replacement the pins on the old plan
    move to the new version when `keep_pins`, else they are cleared. All or nothing."""
    authz.require(actor, "edit", location)
    name = sanitize_filename(filename or "plan")
    if not data:
        raise PlanError(_("Choose a plan file (PNG, JPEG or PDF)."), 422)
    img = clean_plan(data, name)
    store = plan_storage(actor.organization)
    key = store.put(img.data)
    fields = dict(sha256=key, content_type=img.content_type, size=len(img.data),
                  width=img.width, height=img.height, original_filename=name,
                  uploaded_by=actor.user if actor.kind == "user" else None,
                  uploaded_at=utcnow())
    try:
        with database.atomic():
            # The new file stays only if a committed plan row points at it (an enclosing
            # transaction or savepoint may still roll this back).
            after_commit(lambda: _release(actor.organization.id, key), also_on_rollback=True)
            old = plan_of(actor, location)
            if old is None:
                return writer.create(actor, FloorPlan, permission="edit", location=location,
                                     version=1, **fields)
            old_key = old.sha256
            pinned = [lk for lk in plan_leaks(actor, location) if is_pinned(lk, old)]
            plan = writer.update(actor, old, fields, action="floor_plan.replaced")
            if keep_pins:
                writer.update_many(actor, pinned, {"plan_version": plan.version})
            else:
                writer.update_many(actor, pinned, {"plan_x": None, "plan_y": None,
                                                   "plan_version": None})
            writer.event(actor, "floor_plan.pins_kept" if keep_pins
                         else "floor_plan.pins_cleared",
                         entity=plan, details={"pins": len(pinned), "version": plan.version})
            if old_key != key:
                release_after_commit(actor.organization, old_key)
    except Exception:
        _release(actor.organization, key)  # all or nothing: no file without its row
        raise
    return plan


def _release(organization, key: str) -> None:
    """Remove a plan file no plan row points at (any more)."""
    if not FloorPlan.select().where(FloorPlan.organization == organization,
                                    FloorPlan.sha256 == key).exists():
        plan_storage(organization).delete(key)


def release_after_commit(organization, key: str) -> None:
    """Remove the file of a replaced or deleted plan once the change has committed: a change
    that rolls back removes nothing (the row still points at its file then)."""
    org_id = organization if isinstance(organization, int) else organization.id
    after_commit(lambda: _release(org_id, key))


def release_files_of(location: Location) -> None:
    """Before `location` is deleted (its plan row goes with it, ON DELETE CASCADE): its plan's
    file is removed after the deletion commits."""
    for (org_id, key) in FloorPlan.select(FloorPlan.organization, FloorPlan.sha256).where(
            FloorPlan.location == location.id).tuples():
        release_after_commit(org_id, key)


def delete_plan(actor, location: Location) -> None:
    """Remove the plan; the pins on it are cleared (audited)."""
    authz.require(actor, "edit", location)
    plan = plan_of(actor, location)
    if plan is None:
        return
    with database.atomic():
        pinned = [lk for lk in plan_leaks(actor, location) if is_pinned(lk, plan)]
        writer.update_many(actor, pinned, {"plan_x": None, "plan_y": None,
                                           "plan_version": None})
        writer.delete(actor, plan, permission="edit")
        release_after_commit(actor.organization, plan.sha256)


def parse_fraction(value, field: str) -> float:
    try:
        f = float(str(value).strip().replace(",", "."))
    except (TypeError, ValueError):
        f = math.nan
    if not math.isfinite(f) or f < 0 or f > 1:
        raise PlanError(_("%(field)s must be a number from 0 to 1.", field=field), 422)
    return round(f, 5)


def set_pin(actor, location: Location, leak_id, x, y) -> Leak:
    """Place (or move) a leak's pin on the plan of `location`."""
    plan = plan_of(actor, location)
    if plan is None:
        raise PlanError(_("This location has no floor plan."), 422)
    leak = authz.get_or_404(actor, Leak, leak_id, "edit")
    if leak.id not in {lk.id for lk in plan_leaks(actor, location)}:
        raise PlanError(_("Leak %(tag)s is not at this location.", tag=leak.tag), 422)
    px, py = parse_fraction(x, "x"), parse_fraction(y, "y")
    return writer.update(actor, leak, {"plan_x": px, "plan_y": py,
                                       "plan_version": plan.version})


def clear_pin(actor, leak_id) -> Leak:
    leak = authz.get_or_404(actor, Leak, leak_id, "edit")
    return writer.update(actor, leak, {"plan_x": None, "plan_y": None, "plan_version": None})


@dataclass
class Pin:
    leak: Leak
    x: float
    y: float
    colour: str
    shape: str


@dataclass
class PlanPins:
    location: Location
    plan: FloorPlan
    pins: list


def pin_of(leak: Leak) -> Pin:
    colour, shape = STATUS_STYLE.get(leak.status, ("#000000", "circle"))
    return Pin(leak, leak.plan_x, leak.plan_y, colour, shape)


def plans_for_leaks(actor, leaks) -> list[PlanPins]:
    """For reports: each plan that one of `leaks` is pinned on (the plan of the leak's
    nearest planned location), with those pins; ordered by location path."""
    leaks = [lk for lk in leaks if lk.plan_x is not None and lk.plan_version is not None]
    if not leaks:
        return []
    plans = {p.location_id: p for p in authz.scope(actor, FloorPlan, "view")}
    if not plans:
        return []
    locations = {loc.id: loc for loc in authz.scope(actor, Location, "view").where(
        Location.id.in_(list(plans)))}
    out: dict[int, PlanPins] = {}
    for lk in leaks:
        for loc_id in reversed(lk.location.ancestor_ids):
            plan = plans.get(loc_id)
            if plan is None or loc_id not in locations:
                continue
            if is_pinned(lk, plan):
                out.setdefault(loc_id, PlanPins(locations[loc_id], plan, [])).pins.append(
                    pin_of(lk))
            break
    return sorted(out.values(), key=lambda pp: pp.location.path)
