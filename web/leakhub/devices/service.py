"""Devices: add (Keycloak client with client credentials), list, disable/enable; and the
ingest of findings, which become leaks in the "to review" state.

Ingest (`ingest`) in two phases, so that a batch is all or nothing without stray files:
1. check every new finding (id, location, fields, photos decoded and cleaned exactly like a
   browser upload: sniffed type, size and pixel limits, metadata stripped) — nothing written;
2. one transaction: leaks, their photos and the receipts. Findings the device delivered
   before (IngestReceipt by the device's own finding id) are skipped, photos included.

Locations are found by `resolve_location(actor, text)`: the full path as Leakhub shows it
("W01 · Werk Süd / H3 · Halle 3 / M · Montage"), each part the location's code, name or
"code · name" label, or a code unique in the organization. Matching ignores case and runs of
white space (like the leak import); several matches are an error naming every candidate's
full path.
"""
from __future__ import annotations

import base64
import binascii
import datetime as dt
import re
import unicodedata

from flask_babel import gettext as _

from ..audit import writer
from ..authz import Actor, get_or_404, require, require_target, scope
from ..core.db import database, utcnow
from ..core.errors import Invalid
from ..core.times import parse_rfc3339
from ..core.validation import ValidationError
from ..identity.keycloak import admin_client
from ..identity.keycloak_admin import KeycloakConflict, KeycloakError
from ..leaks import service as leaks
from ..locations.models import Location
from ..photos import service as photos
from .models import Device, IngestReceipt

NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9 ._-]{0,62}$")
MAX_BATCH = 500
MAX_PHOTOS_PER_FINDING = 10
# base64 of the largest photo a browser may upload (4 characters per 3 bytes)
MAX_PHOTO_BASE64 = (photos.MAX_FILE_BYTES + 2) // 3 * 4
FINDING_FIELDS = ("tag", "rate_lpm", "rate_low_lpm", "rate_high_lpm", "pressure_bar", "gas",
                  "component", "description", "found_at", "method", "estimate_class",
                  "priority")
PHOTO_FIELDS = ("filename", "content_base64")


class DeviceError(Invalid):
    pass


class AmbiguousLocation(ValidationError):
    """More than one location matches: `candidates` are their full paths."""

    def __init__(self, message: str, field: str, candidates: list[str]):
        super().__init__(message, field)
        self.candidates = {field: candidates}


def client_id_for(name: str) -> str:
    return "device-" + re.sub(r"[^a-z0-9-]+", "-", name.lower()).strip("-")


def _check_device_form(name, model, serial) -> tuple[str, str, str]:
    name, model, serial = ((v or "").strip() if isinstance(v, str) else "" for v in
                           (name, model, serial))
    errors = {}
    if not NAME_RE.match(name):
        errors["name"] = _("Enter 1-63 letters, digits, spaces, '.', '_' or '-', starting "
                           "with a letter or digit.")
    if len(model) > 100:
        errors["model"] = _("At most %(n)d characters.", n=100)
    if len(serial) > 64:
        errors["serial"] = _("At most %(n)d characters.", n=64)
    if errors:
        raise ValidationError(errors)
    return name, model, serial


def add_device(config, actor: Actor, *, name: str, model: str = "",
               serial: str = "") -> tuple[Device, str]:
    """Create the device's Keycloak client and its row. Returns (device, client secret);
    the secret is shown once and not stored (nor logged) by Leakhub. Bad input raises
    ValidationError naming the field; Keycloak trouble DeviceError."""
    require(actor, "manage")
    name, model, serial = _check_device_form(name, model, serial)
    client_id = client_id_for(name)
    if Device.select().where((Device.organization == actor.organization)
                             & (Device.client_id == client_id)).exists():
        raise ValidationError(_("A device named %(name)s exists already.", name=name), "name")
    kc = admin_client(config)
    try:
        secret = kc.create_service_client(actor.organization.slug, client_id,
                                          description=f"Leakhub device {name}")
    except KeycloakConflict:
        raise DeviceError(_("The sign-in service already has a client %(id)s.",
                            id=client_id)) from None
    except KeycloakError as exc:
        raise DeviceError(str(exc)) from None
    try:
        device = writer.create(actor, Device, name=name, client_id=client_id, model=model,
                               serial=serial)
    except BaseException:
        kc.delete_client(actor.organization.slug, client_id)
        raise
    return device, secret


def set_enabled(config, actor: Actor, device: Device, enabled: bool) -> Device:
    """Disabling revokes at once: the Keycloak client stops issuing tokens and the API
    refuses tokens already issued (it checks `enabled` on every request)."""
    require(actor, "manage", device)
    with database.atomic():
        writer.update(actor, device, {"enabled": enabled},
                      action="device.enabled" if enabled else "device.disabled",
                      permission="manage")
        try:
            admin_client(config).set_client_enabled(actor.organization.slug, device.client_id,
                                                    enabled)
        except KeycloakError as exc:
            raise DeviceError(str(exc)) from None
    return device


def list_devices(actor: Actor):
    return list(scope(actor, Device, "manage").order_by(Device.name))


def by_name(actor: Actor, name: str) -> Device:
    device = scope(actor, Device, "manage").where(Device.name == name).first()
    if device is None:
        raise DeviceError(_("No device named %(name)s in %(org)s.", name=repr(name),
                            org=actor.organization.slug))
    return device



def get_device(actor: Actor, device_id) -> Device:
    """The device by id (404 for another organization's; 403 without "manage")."""
    return get_or_404(actor, Device, device_id, "manage")


# ------------------------------------------------------------------ locations by path or code

def _norm(text: str) -> str:
    """For matching: NFC, runs of white space as one blank, none around "/", caseless."""
    text = " ".join(unicodedata.normalize("NFC", text).split())
    return re.sub(r"\s*/\s*", "/", text).casefold()


class LocationFinder:
    """The organization's locations (those the actor may file findings in), loaded once per
    batch, found by full path or code."""

    def __init__(self, actor: Actor):
        rows = (scope(actor, Location, "create",
                      Location.select(Location.id, Location.parent, Location.code,
                                      Location.name))
                .order_by(Location.path).tuples())
        self.rows = {i: (parent, code, name) for i, parent, code, name in rows}
        # parent id (None: the roots) → matching key → child ids; code → ids
        self.children: dict = {}
        self.by_code: dict = {}
        for i, (parent, code, name) in self.rows.items():
            keys = self.children.setdefault(parent if parent in self.rows else None, {})
            for key in {_norm(k) for k in (code, name, Location.label_of(code, name)) if k}:
                keys.setdefault(key, []).append(i)
            if code:
                self.by_code.setdefault(_norm(code), []).append(i)
        self.longest = max((len(k) for keys in self.children.values() for k in keys),
                           default=0)

    def path(self, i: int) -> str:
        """The full path as shown: "W01 · Werk Süd / H3 · Halle 3 / M · Montage"."""
        parts = []
        while i in self.rows:
            parent, code, name = self.rows[i]
            parts.append(Location.label_of(code, name))
            i = parent
        return " / ".join(reversed(parts))

    def by_path(self, text: str) -> set[int]:
        """Every location whose path matches; a part may itself contain "/" (a name such
        as "Halle 3/4"), so each level tries the splits up to the longest stored key."""
        segments = _norm(text).split("/")
        found: set[int] = set()

        def walk(parent, start):
            keys = self.children.get(parent, {})
            candidate = ""
            for end in range(start + 1, len(segments) + 1):
                candidate = segments[start] if end == start + 1 else \
                    candidate + "/" + segments[end - 1]
                if len(candidate) > self.longest:
                    break
                for i in keys.get(candidate, ()):
                    if end == len(segments):
                        found.add(i)
                    else:
                        walk(i, end)
        if all(segments):
            walk(None, 0)
        return found

    def find(self, text: str) -> set[int]:
        return self.by_path(text) | set(self.by_code.get(_norm(text), ()))


def resolve_location(actor: Actor, text, field: str = "location", *,
                     finder: LocationFinder | None = None) -> Location:
    """A location from its full path or a code unique in the organization (see the module
    docstring). ValidationError naming `field` when nothing matches; AmbiguousLocation
    (a ValidationError) naming every candidate's full path when several do."""
    if not isinstance(text, str) or not text.strip():
        raise ValidationError(_("Give the location's full path or its code."), field)
    if len(text) > 1000:
        raise ValidationError(_("At most %(n)d characters.", n=1000), field)
    finder = finder or LocationFinder(actor)
    ids = finder.find(text)
    if not ids:
        raise ValidationError(
            _("No location %(text)s: give its full path (e.g. \"Werk Süd / Halle 3 / "
              "Montage\") or a code that is unique in the organization.",
              text=f"\"{text.strip()}\""), field)
    if len(ids) > 1:
        candidates = sorted(finder.path(i) for i in ids)
        raise AmbiguousLocation(
            _("%(text)s matches %(n)d locations; send the full path of one of them: "
              "%(paths)s", text=f"\"{text.strip()}\"", n=len(candidates),
              paths="; ".join(candidates)), field, candidates)
    return Location.get_by_id(ids.pop())


# ------------------------------------------------------------------ ingest

def _photos_of(finding: dict, where: str) -> list[tuple[str, photos.CleanImage]]:
    """Decode and clean a finding's photos exactly like a browser upload (or raise
    ValidationError naming the finding and photo index)."""
    raw = finding.get("photos")
    if raw is None:
        return []
    if not isinstance(raw, list):
        raise ValidationError(_("Expected a list."), f"{where}.photos")
    if len(raw) > MAX_PHOTOS_PER_FINDING:
        raise ValidationError(_("At most %(n)d photos per finding.", n=MAX_PHOTOS_PER_FINDING),
                              f"{where}.photos")
    out = []
    for j, item in enumerate(raw):
        at = f"{where}.photos[{j}]"
        if not isinstance(item, dict):
            raise ValidationError(_("Expected an object with filename and content_base64."), at)
        unknown = sorted(set(item) - set(PHOTO_FIELDS))
        if unknown:
            raise ValidationError(_("Unknown field(s): %(names)s", names=", ".join(unknown)), at)
        filename = item.get("filename", "")
        if not isinstance(filename, str) or len(filename) > 255:
            raise ValidationError(_("Expected a string of at most %(n)d characters.", n=255),
                                  f"{at}.filename")
        name = photos.sanitize_filename(filename or f"photo-{j + 1}")
        content = item.get("content_base64")
        if not isinstance(content, str) or not content.strip():
            raise ValidationError(_("Give the image as base64."), f"{at}.content_base64")
        content = "".join(content.split())
        if len(content) > MAX_PHOTO_BASE64:
            raise ValidationError(_("%(name)s is larger than %(limit)s.", name=name,
                                    limit=photos.human_size(photos.MAX_FILE_BYTES)), at)
        try:
            data = base64.b64decode(content, validate=True)
        except (binascii.Error, ValueError):
            raise ValidationError(_("Not valid base64."), f"{at}.content_base64") from None
        try:
            out.append((name, photos.clean_image(data, name)))
        except photos.PhotoError as exc:
            raise ValidationError(str(exc), at) from None
    return out


def _as_form(finding: dict, where: str) -> dict:
    unknown = set(finding) - set(FINDING_FIELDS) - {"id", "location", "location_code", "photos"}
    if unknown:
        raise ValidationError(_("Unknown field(s): %(names)s", names=", ".join(sorted(unknown))),
                              where)
    form = {}
    for k in FINDING_FIELDS:
        v = finding.get(k)
        if isinstance(v, (dict, list, bool)):
            raise ValidationError(_("Expected a string or a number."), f"{where}.{k}")
        if k in finding:
            form[k] = "" if v is None else str(v)
    stamp = parse_rfc3339(form.get("found_at", ""))
    if stamp is not None:   # with offset → UTC; without, parse_leak_form reads it as UTC
        form["found_at"] = (stamp.astimezone(dt.UTC).replace(tzinfo=None)
                            .strftime("%Y-%m-%dT%H:%M:%S"))
    return form


def _location_text(finding: dict, where: str) -> tuple[str, object]:
    if "location" in finding and "location_code" in finding:
        raise ValidationError(_("Give either location or location_code."), f"{where}.location")
    key = "location_code" if "location_code" in finding else "location"
    return f"{where}.{key}", finding.get(key)


def _rekeyed(exc: ValidationError, where: str) -> ValidationError:
    return ValidationError({f"{where}.{k}" if k else where: v for k, v in exc.errors.items()})


def ingest(actor: Actor, findings: list[dict]) -> dict:
    """Create one leak per new finding ("to review"), with its photos, idempotent by the
    device's finding id. All or nothing: one invalid finding or photo rejects the whole batch,
    naming its index and field (see the module docstring)."""
    if actor.kind != "device":
        raise ValidationError(_("Only devices ingest findings."), "findings")
    if not isinstance(findings, list) or not findings:
        raise ValidationError(_("Give a non-empty list of findings."), "findings")
    if len(findings) > MAX_BATCH:
        raise ValidationError(_("At most %(n)d findings per request.", n=MAX_BATCH), "findings")
    device = actor.device
    seen: set[str] = set()
    for index, finding in enumerate(findings):
        where = f"findings[{index}]"
        if not isinstance(finding, dict):
            raise ValidationError(_("Expected an object."), where)
        external_id = finding.get("id")
        if not isinstance(external_id, str) or not 1 <= len(external_id) <= 100:
            raise ValidationError(_("Give the finding's id: 1-100 characters."), f"{where}.id")
        if external_id in seen:
            raise ValidationError(_("The id %(id)s occurs twice in this batch.",
                                    id=repr(external_id)), f"{where}.id")
        seen.add(external_id)
    delivered = {r.external_id: r.leak_id for r in IngestReceipt.select().where(
        (IngestReceipt.device == device) & IngestReceipt.external_id.in_(list(seen)))}

    # Phase 1: check everything new; nothing is written.
    finder = None
    todo = []
    for index, finding in enumerate(findings):
        where = f"findings[{index}]"
        if finding["id"] in delivered:
            continue
        form = _as_form(finding, where)
        field, text = _location_text(finding, where)
        finder = finder or LocationFinder(actor)
        location = resolve_location(actor, text, field, finder=finder)
        require_target(actor, "create", location, field)   # the decision point, per finding
        form["location"] = str(location.id)
        if not form.get("found_at"):
            form["found_at"] = utcnow().strftime("%Y-%m-%dT%H:%M")
        try:
            values = leaks.parse_leak_form(form, tzname="UTC", creating=True)
        except ValidationError as exc:
            raise _rekeyed(exc, where) from None
        values["location"] = location
        values.update(status="to_review", source="device",
                      device_serial=device.serial or device.name)
        todo.append((index, finding["id"], values, _photos_of(finding, where)))

    # Phase 2: one transaction.
    created, duplicates = [], []
    with database.atomic():
        # Queued behind the organization's other writers (the audit chain head): a second
        # delivery of the same batch at the same moment waits here and then sees the
        # receipts of the first, instead of failing on their unique index.
        writer.begin(actor)
        again = {r.external_id: r.leak_id for r in IngestReceipt.select().where(
            (IngestReceipt.device == device) & IngestReceipt.external_id.in_(list(seen)))}
        new = []
        for index, external_id, values, images in todo:
            if external_id in again:   # delivered meanwhile by a concurrent request
                continue
            try:
                leak = leaks.create_leak(actor, **values)
            except ValidationError as exc:
                raise _rekeyed(exc, f"findings[{index}]") from None
            IngestReceipt.create(organization=actor.organization, device=device,
                                 external_id=external_id, leak_id=leak.id)
            new.append((leak, images))
            created.append({"id": external_id, "leak_id": leak.id, "tag": leak.tag,
                            "photos": len(images)})
        # Files last: nothing is stored when a finding above was refused.
        for leak, images in new:
            if images:
                photos.store_photos(actor, leak, images)
    duplicates = [{"id": f["id"], "leak_id": again[f["id"]]} for f in findings
                  if f["id"] in again]
    return {"created": created, "duplicates": duplicates}
