"""`leakctl org create|list`."""
from __future__ import annotations

import click

from ..core.clikit import Group, echo_json, json_option, load
from ..core.times import utc_iso
from .service import create_organization, list_organizations


@click.group("org", cls=Group)
def org_group():
    """Organizations (one Keycloak realm each)."""


@org_group.command("create")
@click.option("--slug", required=True, help="Short id, also the Keycloak realm name (e.g. acme).")
@click.option("--name", required=True, help='Display name, e.g. "ACME GmbH".')
@click.option("--admin-email", required=True, help="E-mail of the organization's first admin.")
@json_option
def create(slug, name, admin_email, as_json):
    """Create the realm, Leakhub's OIDC client and the first admin (one-time password)."""
    config = load()
    result = create_organization(config, slug=slug, name=name, admin_email=admin_email)
    if as_json:
        echo_json({"slug": result.organization.slug, "name": result.organization.name,
                   "admin_email": result.admin_email,
                   "one_time_password": result.admin_password,
                   "login_url": f"{config.public_url}/login/{slug}"})
    else:
        click.echo(f"organization {slug!r} created; sign in at {config.public_url}/login/{slug} "
                   f"as {result.admin_email} with one-time password {result.admin_password} "
                   "(a new password must be chosen at first sign-in)")


@org_group.command("list")
@json_option
def list_cmd(as_json):
    """List organizations."""
    load()
    orgs = list_organizations()
    if as_json:
        echo_json([{"slug": o.slug, "name": o.name,
                    "created_at": utc_iso(o.created_at)} for o in orgs])
        return
    if not orgs:
        click.echo("no organizations")
    for o in orgs:
        click.echo(f"{o.slug:20} {o.name}")
