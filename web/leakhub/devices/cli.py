"""`leakctl device add|list|disable|enable`."""
from __future__ import annotations

import click

from ..authz import Actor
from ..core.clikit import CliError, Group, OrgParam, echo_json, json_option, load
from ..core.times import utc_iso
from ..core.validation import ValidationError
from ..orgs.models import Organization
from . import service

ORG = OrgParam(Organization)


def _actor(org):
    return Actor.system(org, label="leakctl")


@click.group("device", cls=Group)
def device_group():
    """Leak detectors and plant hubs that send findings through the API."""


@device_group.command("add")
@click.option("--org", "org", required=True, type=ORG)
@click.option("--name", required=True, help="Unique per organization, e.g. 'LD500 Hall 3'.")
@click.option("--model", default="", help="Detector model, e.g. 'CS Instruments LD 500'.")
@click.option("--serial", default="", help="Serial number.")
@json_option
def add(org, name, model, serial, as_json):
    """Create the device's Keycloak client; prints its client id and secret ONCE."""

    config = load()
    try:
        device, secret = service.add_device(config, _actor(org), name=name, model=model,
                                            serial=serial)
    except service.DeviceError as exc:
        raise CliError(str(exc)) from None
    except ValidationError as exc:
        raise CliError("; ".join(f"--{k}: {v}" if k else v for k, v in exc.errors.items())) \
            from None
    token_url = f"{config.issuer_for(org.slug)}/protocol/openid-connect/token"
    if as_json:
        echo_json({"name": device.name, "client_id": device.client_id,
                   "client_secret": secret, "token_url": token_url})
    else:
        click.echo(f"device {device.name!r} added\n  client id:     {device.client_id}\n"
                   f"  client secret: {secret}   (shown once; store it in the device)\n"
                   f"  token URL:     {token_url}")


@device_group.command("list")
@click.option("--org", "org", required=True, type=ORG)
@json_option
def list_cmd(org, as_json):
    """List the organization's devices."""

    load()
    rows = service.list_devices(_actor(org))
    if as_json:
        echo_json([{"name": d.name, "client_id": d.client_id, "enabled": d.enabled,
                    "last_contact_at": utc_iso(d.last_contact_at)} for d in rows])
        return
    for d in rows:
        click.echo(f"{d.name:30} {d.client_id:36} {'enabled' if d.enabled else 'DISABLED'}")


def _toggle(org, name, enabled):

    config = load()
    actor = _actor(org)
    try:
        service.set_enabled(config, actor, service.by_name(actor, name), enabled)
    except service.DeviceError as exc:
        raise CliError(str(exc)) from None
    click.echo(f"device {name!r} {'enabled' if enabled else 'disabled'}")


@device_group.command("disable")
@click.option("--org", "org", required=True, type=ORG)
@click.option("--name", required=True)
def disable(org, name):
    """Revoke a device at once (its tokens stop working at the next request)."""
    _toggle(org, name, False)


@device_group.command("enable")
@click.option("--org", "org", required=True, type=ORG)
@click.option("--name", required=True)
def enable(org, name):
    """Allow a disabled device again."""
    _toggle(org, name, True)
