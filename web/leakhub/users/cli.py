"""`leakctl user invite|list|set-role|disable|enable|sign-out|access` and
`leakctl grant add|list|revoke`. The actor is the system ("leakctl")."""
from __future__ import annotations

import json

import click

from .. import authz
from ..authz import Actor
from ..authz.access import effective_access, find_leak
from ..authz.grants import (
    add_grant,
    find_grants,
    grant_active,
    grant_holder,
    grant_target,
    grant_valid_through,
    list_grants,
    location_by_code,
    revoke_grant,
)
from ..authz.models import Grant
from ..core.clikit import CliError, Group, OrgParam, json_option, load, service_errors
from ..core.times import utc_iso
from ..identity.signout import sign_out_everywhere
from ..orgs.models import Organization
from ..surveys.models import Survey
from . import service

ROLE_CHOICE = click.Choice(["admin", "manager", "editor", "viewer", "external"])
LEVEL_CHOICE = click.Choice(["view", "edit", "admin"])
ORG = OrgParam(Organization)


def _actor(org):
    return Actor.system(org, label="leakctl")


def _errors():
    """Service errors → one readable line (`leakctl: error: ...`, exit 1)."""
    return service_errors(service.UserError)


def _user_json(u):
    return {"id": u.id, "email": u.email, "name": u.name, "role": u.role, "enabled": u.enabled,
            "created_at": utc_iso(u.created_at), "last_login_at": utc_iso(u.last_login_at)}


@click.group("user", cls=Group)
def user_group():
    """Users of an organization: invite, roles, disable/enable, sign-out."""


@user_group.command("invite")
@click.option("--org", "org", required=True, type=ORG, help="Organization slug.")
@click.option("--email", required=True)
@click.option("--role", required=True, type=ROLE_CHOICE)
@click.option("--name", default="", help="Optional display name.")
@json_option
def invite(org, email, role, name, as_json):
    """Create the user in Keycloak and Leakhub. Without SMTP a one-time password is printed
    ONCE (it is not stored); with LEAKHUB_SMTP_HOST Keycloak e-mails the invitation."""
    config = load()
    with _errors():
        result = service.invite(config, _actor(org), email=email, role=role, name=name)
    login_url = f"{config.public_url}/login/{org.slug}"
    if as_json:
        click.echo(json.dumps({"email": result.user.email, "role": result.user.role,
                               "user_id": result.user.id, "delivery": result.delivery,
                               "one_time_password": result.one_time_password,
                               "warning": result.warning, "login_url": login_url}))
        return
    if result.warning:
        click.echo(f"warning: {result.warning}", err=True)
    if result.one_time_password:
        click.echo(f"{result.user.email} invited as {role}; sign in at {login_url} with one-time "
                   f"password {result.one_time_password} (shown once; a new password must be "
                   "chosen at first sign-in)")
    else:
        click.echo(f"{result.user.email} invited as {role}; Keycloak e-mailed the invitation")


@user_group.command("list")
@click.option("--org", "org", required=True, type=ORG, help="Organization slug.")
@json_option
def list_cmd(org, as_json):
    """Users with role, state and last sign-in; users waiting for access (role none) last."""
    load()
    actor = _actor(org)
    rows = service.list_users(actor) + service.pending_users(actor)
    if as_json:
        click.echo(json.dumps([_user_json(u) for u in rows]))
        return
    if not rows:
        click.echo("no users")
    for u in rows:
        last = u.last_login_at.strftime("%Y-%m-%d %H:%M UTC") if u.last_login_at else "never"
        click.echo(f"{u.email:40} {u.role or 'WAITING':9} "
                   f"{'enabled' if u.enabled else 'DISABLED':9} last sign-in {last}")


@user_group.command("set-role")
@click.option("--org", "org", required=True, type=ORG, help="Organization slug.")
@click.option("--email", required=True)
@click.option("--role", required=True, type=ROLE_CHOICE)
def set_role(org, email, role):
    """Change a user's role, or approve a user waiting for access."""
    config = load()
    actor = _actor(org)
    with _errors():
        user = service.user_by_email(actor, email)
        old = user.role
        service.set_role(config, actor, user, role)
    click.echo(f"{user.email}: role {old or 'none'} -> {role}")


def _toggle(org, email, enabled):

    config = load()
    actor = _actor(org)
    with _errors():
        user = service.set_enabled(config, actor, service.user_by_email(actor, email), enabled)
    click.echo(f"{user.email} {'enabled' if enabled else 'disabled; sessions ended'}")


@user_group.command("disable")
@click.option("--org", "org", required=True, type=ORG, help="Organization slug.")
@click.option("--email", required=True)
def disable(org, email):
    """Disable at once: ends the user's Leakhub and Keycloak sessions, blocks sign-in."""
    _toggle(org, email, False)


@user_group.command("enable")
@click.option("--org", "org", required=True, type=ORG, help="Organization slug.")
@click.option("--email", required=True)
def enable(org, email):
    """Enable a disabled user again."""
    _toggle(org, email, True)


@user_group.command("sign-out")
@click.option("--org", "org", required=True, type=ORG, help="Organization slug.")
@click.option("--email", required=True)
def sign_out(org, email):
    """End all sessions of a user (Leakhub and Keycloak); they may sign in again."""
    config = load()
    actor = _actor(org)
    with _errors():
        user = service.user_by_email(actor, email)
    ended, kc_error = sign_out_everywhere(config, actor, user)
    if kc_error:
        raise CliError(f"{ended} Leakhub session(s) ended, but Keycloak failed: {kc_error}")
    click.echo(f"{user.email}: {ended} Leakhub session(s) and the Keycloak sessions ended")


@user_group.command("access")
@click.option("--org", "org", required=True, type=ORG, help="Organization slug.")
@click.option("--email", required=True)
@click.option("--leak", "tag", help="Leak tag number.")
@click.option("--leak-id", type=int, help="Leak id (instead of --leak).")
@json_option
def access(org, email, tag, leak_id, as_json):
    """Explain whether a user can see and edit a leak, and why."""
    load()
    if not tag and leak_id is None:
        raise CliError("--leak or --leak-id is required")
    actor = _actor(org)
    with _errors():
        user = service.user_by_email(actor, email)
        leak = find_leak(actor, tag=tag, leak_id=leak_id)
        result = effective_access(actor, user, leak)
    if as_json:
        click.echo(json.dumps({
            "user": user.email, "leak": {"id": leak.id, "tag": leak.tag},
            "security_mode": result.mode,
            "decisions": [{"action": d.action, "allowed": d.allowed, "reason": d.reason,
                           "grant_id": d.grant.id if d.grant else None}
                          for d in result.decisions],
            "grants": [{"id": g.grant.id, "target": g.target, "level": g.grant.level,
                        "active": g.active, "valid_through":
                            g.valid_through.isoformat() if g.valid_through else None,
                        "gives": g.gives} for g in result.grants]}))
        return
    for d in result.decisions:
        click.echo(f"{d.action:5} {'YES' if d.allowed else 'no ':3}  {d.reason}")


# --------------------------------------------------------------------------- grants

@click.group("grant", cls=Group)
def grant_group():
    """Grants: a user × a location subtree or a survey × view/edit, optionally until a date."""


def _grant_json(g, tz):
    return {"id": g.id, "user": g.user.email if g.user_id else None,
            "group": g.group.name if g.group_id else None, "level": g.level,
            "location": (g.location.code or g.location.name) if g.location_id else None,
            "survey_id": g.survey_id, "survey": g.survey.name if g.survey_id else None,
            "expires_at": utc_iso(g.expires_at),
            "valid_through": (grant_valid_through(g, tz).isoformat()
                              if g.expires_at else None),
            "active": grant_active(g), "note": g.note}


@grant_group.command("add")
@click.option("--org", "org", required=True, type=ORG, help="Organization slug.")
@click.option("--email", required=True, help="The user's e-mail.")
@click.option("--location", "code", help="Location code (the grant covers everything below).")
@click.option("--survey", "survey_id", type=int, help="Survey id.")
@click.option("--level", required=True, type=LEVEL_CHOICE)
@click.option("--expires", help="Last valid day, YYYY-MM-DD (organization's time zone).")
@click.option("--note", default="", help="Why (e.g. the audit order).")
@json_option
def grant_add(org, email, code, survey_id, level, expires, note, as_json):
    """Give a user a grant on a location subtree or a survey."""
    load()
    if bool(code) == (survey_id is not None):
        raise CliError("give exactly one of --location or --survey")
    actor = _actor(org)
    with _errors():
        user = service.user_by_email(actor, email)
        location_id = location_by_code(actor, code).id if code else None
        grant = add_grant(actor, user, location_id=location_id, survey_id=survey_id,
                                  level=level, expires=expires, note=note)
    if as_json:
        click.echo(json.dumps(_grant_json(grant, actor.organization.timezone)))
    else:
        click.echo(f"grant {grant.id} given: {user.email} {level} on {grant_target(grant)}"
                   + (f", valid through {expires}" if expires else ""))


@grant_group.command("list")
@click.option("--org", "org", required=True, type=ORG, help="Organization slug.")
@click.option("--email", help="Only this user's grants.")
@json_option
def grant_list(org, email, as_json):
    """List grants (expired ones too, marked)."""
    load()
    actor = _actor(org)
    with _errors():
        user = service.user_by_email(actor, email) if email else None
    rows = list_grants(actor, user)
    tz = actor.organization.timezone
    if as_json:
        click.echo(json.dumps([_grant_json(g, tz) for g in rows]))
        return
    if not rows:
        click.echo("no grants")
    for g in rows:
        through = grant_valid_through(g, tz)
        state = "" if grant_active(g) else " EXPIRED"
        click.echo(f"{g.id:6} {grant_holder(g):40} {g.level:5} {grant_target(g)}"
                   + (f" through {through.isoformat()}" if through else "") + state)


@grant_group.command("revoke")
@click.option("--org", "org", required=True, type=ORG, help="Organization slug.")
@click.option("--id", "grant_id", type=int, help="Grant id (see `grant list`).")
@click.option("--email", help="The user's e-mail (with --location or --survey).")
@click.option("--location", "code", help="Location code.")
@click.option("--survey", "survey_id", type=int, help="Survey id.")
@click.option("--level", type=LEVEL_CHOICE, help="Only grants of this level.")
def grant_revoke(org, grant_id, email, code, survey_id, level):
    """Revoke a grant by id, or a user's grants on a location or survey. Effective at the
    user's next request."""
    load()
    actor = _actor(org)
    with _errors():
        if grant_id is not None:
            grant = authz.scope(actor, Grant, "manage_users").where(
                Grant.id == grant_id).first()
            if grant is None:
                raise CliError(f"no grant {grant_id} in {org.slug}")
            grants = [grant]
        else:
            if not email or bool(code) == (survey_id is not None):
                raise CliError("give --id, or --email with exactly one of --location or --survey")
            user = service.user_by_email(actor, email)
            location = location_by_code(actor, code) if code else None
            survey = None
            if survey_id is not None:
                survey = authz.scope(actor, Survey, "view").where(
                    Survey.id == survey_id).first()
                if survey is None:
                    raise CliError(f"no survey {survey_id} in {org.slug}")
            grants = find_grants(actor, user, location=location, survey=survey,
                                         level=level)
            if not grants:
                raise CliError(f"{user.email} has no such grant")
        for grant in grants:
            revoke_grant(actor, grant)
    click.echo(f"{len(grants)} grant(s) revoked")
