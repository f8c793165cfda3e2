"""`leakctl org create|list|set`."""
from __future__ import annotations

import click

from ..authz import Actor
from ..core.clikit import Group, OrgParam, echo_json, json_option, load
from ..core.times import utc_iso
from . import tokens
from .models import Organization
from .service import create_organization, list_organizations

ORG = OrgParam(Organization)


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


@org_group.command("set")
@click.option("--org", "org", required=True, type=ORG, help="Organization slug.")
@click.option("--access-token-minutes", type=int,
              help="Lifetime of an access token, 1-15 minutes (default 5).")
@click.option("--session-hours", type=int,
              help="Longest sign-in session without \"keep me signed in\", 1-24 hours.")
@click.option("--remember-me", type=click.Choice(["on", "off"]),
              help="Offer \"keep me signed in\" on the sign-in page.")
@click.option("--remember-me-days", type=int,
              help="Longest session with \"keep me signed in\", 1-30 days.")
@json_option
def set_cmd(org, access_token_minutes, session_hours, remember_me, remember_me_days, as_json):
    """Show or change an organization's token settings (applied to its Keycloak realm;
    refresh tokens are always single-use)."""
    config = load()
    form = tokens.current(org)
    form["remember_me"] = "on" if form["remember_me"] else "off"
    given = {"access_token_minutes": access_token_minutes, "session_hours": session_hours,
             "remember_me": remember_me, "remember_me_days": remember_me_days}
    changes = {k: v for k, v in given.items() if v is not None}
    if changes:
        form.update(changes)
        org = tokens.set_token_settings(config, Actor.system(org, label="leakctl"), form)
    data = {"organization": org.slug, **tokens.current(org)}
    if as_json:
        echo_json(data)
    else:
        click.echo(f"{org.slug}: access token {data['access_token_minutes']} min, session "
                   f"{data['session_hours']} h, keep me signed in "
                   f"{'on' if data['remember_me'] else 'off'} "
                   f"({data['remember_me_days']} days), refresh tokens single-use")
