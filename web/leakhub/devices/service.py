"""Devices: add (Keycloak client with client credentials), list, disable/enable; and the
ingest of findings, which become leaks in the "to review" state."""
from __future__ import annotations

import re

import peewee as pw

from ..audit import writer
from ..authz import Actor, require, scope
from ..core.db import database
from ..core.validation import ValidationError
from ..identity.keycloak import admin_client
from ..identity.keycloak_admin import KeycloakConflict, KeycloakError
from .models import Device, IngestReceipt

NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9 ._-]{0,62}$")
MAX_BATCH = 500


class DeviceError(Exception):
    pass


def client_id_for(name: str) -> str:
    return "device-" + re.sub(r"[^a-z0-9-]+", "-", name.lower()).strip("-")


def add_device(config, actor: Actor, *, name: str, model: str = "", serial: str = "") -> tuple[Device, str]:
    """Create the device's Keycloak client and its row. Returns (device, client secret);
    the secret is shown once and not stored by Leakhub."""
    require(actor, "manage")
    if not NAME_RE.match(name or ""):
        raise DeviceError("device name must be 1-63 letters, digits, spaces, '.', '_' or '-'")
    client_id = client_id_for(name)
    if Device.select().where((Device.organization == actor.organization)
                             & (Device.client_id == client_id)).exists():
        raise DeviceError(f"a device named {name!r} exists already")
    kc = admin_client(config)
    try:
        secret = kc.create_service_client(actor.organization.slug, client_id,
                                          description=f"Leakhub device {name}")
    except KeycloakConflict:
        raise DeviceError(f"Keycloak already has a client {client_id!r}") from None
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
        raise DeviceError(f"no device named {name!r} in {actor.organization.slug}")
    return device


def ingest(actor: Actor, findings: list[dict]) -> dict:
    """Create one leak per finding ("to review"), idempotent by the device's finding id.
    All-or-nothing: one invalid finding rejects the whole batch, naming its index and field."""
    from ..leaks import service as leaks
    from ..locations.models import Location

    if actor.kind != "device":
        raise ValidationError("only devices ingest findings", "findings")
    if not isinstance(findings, list) or not findings:
        raise ValidationError("findings must be a non-empty list", "findings")
    if len(findings) > MAX_BATCH:
        raise ValidationError(f"at most {MAX_BATCH} findings per request", "findings")
    device = actor.device
    created, duplicates = [], []
    with database.atomic():
        for index, finding in enumerate(findings):
            where = f"findings[{index}]"
            if not isinstance(finding, dict):
                raise ValidationError("must be an object", where)
            external_id = finding.get("id")
            if not isinstance(external_id, str) or not 1 <= len(external_id) <= 100:
                raise ValidationError("must be a string of 1-100 characters", f"{where}.id")
            receipt = IngestReceipt.get_or_none((IngestReceipt.device == device)
                                                & (IngestReceipt.external_id == external_id))
            if receipt is not None:
                duplicates.append({"id": external_id, "leak_id": receipt.leak_id})
                continue
            code = finding.get("location_code")
            location = None
            if isinstance(code, str) and code:
                # "create" scope: the locations this device may file findings in.
                location = scope(actor, Location, "create").where(Location.code == code).first()
            if location is None:
                raise ValidationError(f"unknown location code {code!r}", f"{where}.location_code")
            form = _as_form(finding, where)
            form["location"] = str(location.id)
            form.setdefault("found_at", _now_iso())
            try:
                values = leaks.parse_leak_form(form, tzname="UTC", creating=True)
            except ValidationError as exc:
                raise ValidationError({f"{where}.{k}" if k else where: v
                                       for k, v in exc.errors.items()}) from None
            values["location"] = location
            values.update(status="to_review", source="device",
                          device_serial=device.serial or device.name)
            leak = leaks.create_leak(actor, **values)
            IngestReceipt.create(organization=actor.organization, device=device,
                                 external_id=external_id, leak_id=leak.id)
            created.append({"id": external_id, "leak_id": leak.id, "tag": leak.tag})
    return {"created": created, "duplicates": duplicates}


def _now_iso() -> str:
    from ..core.db import utcnow

    return utcnow().strftime("%Y-%m-%dT%H:%M")


def _as_form(finding: dict, where: str) -> dict:
    allowed = {"tag", "rate_lpm", "rate_low_lpm", "rate_high_lpm", "pressure_bar", "gas",
               "component", "description", "found_at", "method", "estimate_class", "priority"}
    unknown = set(finding) - allowed - {"id", "location_code"}
    if unknown:
        raise ValidationError(f"unknown field(s): {', '.join(sorted(unknown))}", where)
    return {k: ("" if v is None else str(v)) for k, v in finding.items() if k in allowed}
