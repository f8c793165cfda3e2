"""leakctl group ...: departments (groups) of an organization — the same service functions
as the web pages, as the system actor "leakctl" (audited)."""
from __future__ import annotations

import json

import click

from ..authz import Actor
from ..authz.grants import (
    add_grant,
    find_grants,
    grant_active,
    grant_target,
    list_grants,
    location_by_code,
    revoke_grant,
)
from ..core.clikit import CliError, Group, OrgParam, json_option, load, service_errors
from ..orgs.models import Organization
from ..users import service as users
from . import service

ORG = OrgParam(Organization)
LEVEL_CHOICE = click.Choice(["view", "edit", "admin"])


def _actor(org):
    return Actor.system(org, label="leakctl")


def _errors():
    """Service errors → one readable line (`leakctl: error: ...`, exit 1)."""
    return service_errors(users.UserError)


@click.group("group", cls=Group)
def group_group():
    """Departments (groups): members, mapped directory groups, grants to groups."""


@group_group.command("list")
@click.option("--org", "org", required=True, type=ORG, help="Organization slug.")
@json_option
def list_cmd(org, as_json):
    """List the groups with their mapped directory group and member count."""
    load()
    actor = _actor(org)
    groups = service.list_groups(actor)
    counts = service.member_counts(actor)
    rows = [{"id": g.id, "name": g.name, "kc_group": g.kc_group, "members": counts.get(g.id, 0)}
            for g in groups]
    if as_json:
        click.echo(json.dumps(rows))
        return
    if not rows:
        click.echo("no groups")
    for r in rows:
        click.echo(f"{r['id']:6} {r['name']:30} {r['kc_group'] or '-':30} {r['members']} member(s)")


@group_group.command("create")
@click.option("--org", "org", required=True, type=ORG, help="Organization slug.")
@click.option("--name", required=True, help="The group's name (unique in the organization).")
@click.option("--kc-group", default="", help="Directory (Keycloak) group path, e.g. /Maintenance:"
              " members follow it at each sign-in.")
@json_option
def create_cmd(org, name, kc_group, as_json):
    """Create a group."""
    load()
    with _errors():
        group = service.create_group(_actor(org), name=name, kc_group=kc_group)
    if as_json:
        click.echo(json.dumps({"id": group.id, "name": group.name, "kc_group": group.kc_group}))
    else:
        click.echo(f"group {group.id} created: {group.name}")


@group_group.command("rename")
@click.option("--org", "org", required=True, type=ORG, help="Organization slug.")
@click.option("--name", required=True, help="The group's current name.")
@click.option("--to", "new_name", help="The new name.")
@click.option("--kc-group", default=None, help="New directory group path ('' to unmap).")
def rename_cmd(org, name, new_name, kc_group):
    """Rename a group or change its mapped directory group."""
    load()
    actor = _actor(org)
    with _errors():
        group = service.group_by_name(actor, name)
        service.update_group(actor, group, name=new_name, kc_group=kc_group)
    click.echo(f"group {group.id} saved: {group.name}")


@group_group.command("delete")
@click.option("--org", "org", required=True, type=ORG, help="Organization slug.")
@click.option("--name", required=True)
@click.option("--yes", is_flag=True, help="Do not ask.")
def delete_cmd(org, name, yes):
    """Delete a group with its memberships and grants (members lose its access at once)."""
    load()
    actor = _actor(org)
    with _errors():
        group = service.group_by_name(actor, name)
    if not yes:
        click.confirm(f"Delete group {group.name} with its grants?", abort=True)
    with _errors():
        service.delete_group(actor, group)
    click.echo(f"group {name} deleted")


@group_group.command("members")
@click.option("--org", "org", required=True, type=ORG, help="Organization slug.")
@click.option("--name", required=True)
@json_option
def members_cmd(org, name, as_json):
    """List a group's members (source: manual or directory)."""
    load()
    actor = _actor(org)
    with _errors():
        group = service.group_by_name(actor, name)
    rows = [{"email": m.user.email, "source": m.source} for m in service.members(actor, group)]
    if as_json:
        click.echo(json.dumps(rows))
        return
    for r in rows:
        click.echo(f"{r['email']:40} {r['source']}")


@group_group.command("add-member")
@click.option("--org", "org", required=True, type=ORG, help="Organization slug.")
@click.option("--name", required=True, help="The group.")
@click.option("--email", required=True, help="The user's e-mail.")
def add_member_cmd(org, name, email):
    """Add a user to a group."""
    load()
    actor = _actor(org)
    with _errors():
        group = service.group_by_name(actor, name)
        user = users.user_by_email(actor, email)
        service.add_member(actor, group, user)
    click.echo(f"{user.email} added to {group.name}")


@group_group.command("remove-member")
@click.option("--org", "org", required=True, type=ORG, help="Organization slug.")
@click.option("--name", required=True, help="The group.")
@click.option("--email", required=True, help="The user's e-mail.")
def remove_member_cmd(org, name, email):
    """Remove a user from a group: effective at the user's next request."""
    load()
    actor = _actor(org)
    with _errors():
        group = service.group_by_name(actor, name)
        user = users.user_by_email(actor, email)
        service.remove_member(actor, group, user)
    click.echo(f"{user.email} removed from {group.name}")


@group_group.command("grant")
@click.option("--org", "org", required=True, type=ORG, help="Organization slug.")
@click.option("--name", required=True, help="The group.")
@click.option("--location", "code", help="Location code (the grant covers everything below).")
@click.option("--survey", "survey_id", type=int, help="Survey id.")
@click.option("--level", required=True, type=LEVEL_CHOICE)
@click.option("--expires", help="Last valid day, YYYY-MM-DD (organization's time zone).")
@click.option("--note", default="")
def grant_cmd(org, name, code, survey_id, level, expires, note):
    """Give a group a grant on a location subtree or a survey (every member gets it)."""
    load()
    if bool(code) == (survey_id is not None):
        raise CliError("give exactly one of --location or --survey")
    actor = _actor(org)
    with _errors():
        group = service.group_by_name(actor, name)
        location_id = location_by_code(actor, code).id if code else None
        grant = add_grant(actor, group=group, location_id=location_id, survey_id=survey_id,
                          level=level, expires=expires, note=note)
    click.echo(f"grant {grant.id} given: group {group.name} {level} on {grant_target(grant)}")


@group_group.command("grants")
@click.option("--org", "org", required=True, type=ORG, help="Organization slug.")
@click.option("--name", required=True, help="The group.")
def grants_cmd(org, name):
    """List a group's grants."""
    load()
    actor = _actor(org)
    with _errors():
        group = service.group_by_name(actor, name)
    for g in list_grants(actor, group=group):
        click.echo(f"{g.id:6} {g.level:5} {grant_target(g)}"
                   + ("" if grant_active(g) else " EXPIRED"))


@group_group.command("revoke")
@click.option("--org", "org", required=True, type=ORG, help="Organization slug.")
@click.option("--name", required=True, help="The group.")
@click.option("--location", "code", required=True, help="Location code.")
@click.option("--level", type=LEVEL_CHOICE, help="Only grants of this level.")
def revoke_cmd(org, name, code, level):
    """Revoke a group's grants on a location: effective at the members' next request."""
    load()
    actor = _actor(org)
    with _errors():
        group = service.group_by_name(actor, name)
        location = location_by_code(actor, code)
        grants = find_grants(actor, group=group, location=location, level=level)
        if not grants:
            raise CliError(f"group {group.name} has no such grant")
        for grant in grants:
            revoke_grant(actor, grant)
    click.echo(f"{len(grants)} grant(s) revoked")
