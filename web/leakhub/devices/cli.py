"""`leakctl device add|list|disable|enable`."""
from __future__ import annotations

import json

import click

from ..core.validation import ValidationError
from . import service


def _actor(slug):
    from ..authz import Actor
    from ..cli import CliError
    from ..orgs.models import Organization

    org = Organization.get_or_none(Organization.slug == slug)
    if org is None:
        raise CliError(f"no organization {slug!r}")
    return Actor.system(org, label="leakctl")


@click.group("device")
def device_group():
    """Leak detectors and plant hubs that send findings through the API."""


@device_group.command("add")
@click.option("--org", "slug", required=True)
@click.option("--name", required=True, help="Unique per organization, e.g. 'LD500 Hall 3'.")
@click.option("--model", default="", help="Detector model, e.g. 'CS Instruments LD 500'.")
@click.option("--serial", default="", help="Serial number.")
@click.option("--json", "as_json", is_flag=True)
def add(slug, name, model, serial, as_json):
    """Create the device's Keycloak client; prints its client id and secret ONCE."""
    from ..cli import CliError, load

    config = load()
    try:
        device, secret = service.add_device(config, _actor(slug), name=name, model=model,
                                            serial=serial)
    except service.DeviceError as exc:
        raise CliError(str(exc)) from None
    except ValidationError as exc:
        raise CliError("; ".join(f"--{k}: {v}" if k else v for k, v in exc.errors.items())) \
            from None
    token_url = f"{config.issuer_for(slug)}/protocol/openid-connect/token"
    if as_json:
        click.echo(json.dumps({"name": device.name, "client_id": device.client_id,
                               "client_secret": secret, "token_url": token_url}))
    else:
        click.echo(f"device {device.name!r} added\n  client id:     {device.client_id}\n"
                   f"  client secret: {secret}   (shown once; store it in the device)\n"
                   f"  token URL:     {token_url}")


@device_group.command("list")
@click.option("--org", "slug", required=True)
@click.option("--json", "as_json", is_flag=True)
def list_cmd(slug, as_json):
    """List the organization's devices."""
    from ..cli import load

    load()
    rows = service.list_devices(_actor(slug))
    if as_json:
        click.echo(json.dumps([{"name": d.name, "client_id": d.client_id, "enabled": d.enabled,
                                "last_contact_at": d.last_contact_at.isoformat() + "Z"
                                if d.last_contact_at else None} for d in rows]))
        return
    for d in rows:
        click.echo(f"{d.name:30} {d.client_id:36} {'enabled' if d.enabled else 'DISABLED'}")


def _toggle(slug, name, enabled):
    from ..cli import CliError, load

    config = load()
    actor = _actor(slug)
    try:
        service.set_enabled(config, actor, service.by_name(actor, name), enabled)
    except service.DeviceError as exc:
        raise CliError(str(exc)) from None
    click.echo(f"device {name!r} {'enabled' if enabled else 'disabled'}")


@device_group.command("disable")
@click.option("--org", "slug", required=True)
@click.option("--name", required=True)
def disable(slug, name):
    """Revoke a device at once (its tokens stop working at the next request)."""
    _toggle(slug, name, False)


@device_group.command("enable")
@click.option("--org", "slug", required=True)
@click.option("--name", required=True)
def enable(slug, name):
    """Allow a disabled device again."""
    _toggle(slug, name, True)
