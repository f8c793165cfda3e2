"""`leakctl user unlock|erase|export` (added to the `user` group by the CLI wiring) and
`leakctl privacy settings|mask`. The actor is the system ("leakctl")."""
from __future__ import annotations

import json
import os

import click

from ..authz import Actor
from ..core.clikit import CliError, Group, OrgParam, echo_json, json_option, load
from ..orgs.models import Organization
from . import service

ORG = OrgParam(Organization)


def _actor(org):
    return Actor.system(org, label="leakctl")


def _confirm(yes: bool, question: str) -> None:
    if yes:
        return
    try:
        ok = click.confirm(question, default=False)
    except click.exceptions.Abort:  # no answer (no terminal): no
        ok = False
    if not ok:
        raise CliError("not confirmed; nothing was changed (pass --yes to skip the question)")


@click.command("unlock")
@click.option("--org", "org", required=True, type=ORG, help="Organization slug.")
@click.option("--email", required=True, help="The user's e-mail.")
@click.option("--reset-password", is_flag=True,
              help="Also give the user a one-time password (printed once) to change at the "
                   "next sign-in.")
def unlock_cmd(org, email, reset_password):
    """End a user's lock-out after failed sign-ins (temporary or permanent)."""
    config = load()
    actor = _actor(org)
    user = service.user_by_email(actor, email)
    password = service.unlock(config, actor, user, reset_password=reset_password)
    click.echo(f"{user.email}: unlocked")
    if password:
        click.echo(f"one-time password (shown once): {password}")


@click.command("erase")
@click.option("--org", "org", required=True, type=ORG, help="Organization slug.")
@click.option("--email", required=True, help="The user's e-mail.")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@json_option
def erase_cmd(org, email, yes, as_json):
    """Erase a user for good (GDPR article 17).

    Deleted in Keycloak, pseudonymised in Leakhub ("former user #N" in leaks and the audit
    trail, which still verifies). Cannot be undone."""
    config = load()
    actor = _actor(org)
    user = service.user_by_email(actor, email)
    _confirm(yes, f"Erase {user.email} from {org.slug}? This cannot be undone.")
    counts = service.erase_user(config, actor, user)
    if as_json:
        echo_json({"user_id": user.id, "pseudonym": service.pseudonym(user.id), **counts})
        return
    click.echo(f"{email}: erased; now {service.pseudonym(user.id)} ("
               + ", ".join(f"{k.replace('_', ' ')}: {v}" for k, v in counts.items()) + ")")


@click.command("export")
@click.option("--org", "org", required=True, type=ORG, help="Organization slug.")
@click.option("--email", required=True, help="The user's e-mail.")
@click.option("--output", "-o", type=click.Path(dir_okay=False, writable=True),
              help="Write the JSON to this file (mode 0600) instead of standard output.")
def export_cmd(org, email, output):
    """Everything Leakhub holds about a user, as JSON (GDPR article 15)."""
    load()
    actor = _actor(org)
    data = service.export_user(actor, service.user_by_email(actor, email))
    text = json.dumps(data, indent=2, ensure_ascii=False, sort_keys=True)
    if output:
        fd = os.open(output, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text + "\n")
        click.echo(f"wrote {output}", err=True)
    else:
        click.echo(text)


USER_COMMANDS = (unlock_cmd, erase_cmd, export_cmd)


@click.group("privacy", cls=Group)
def privacy_group():
    """Data protection: lock-out mode, profiling rules, masking of test copies."""


@privacy_group.command("settings")
@click.option("--org", "org", required=True, type=ORG, help="Organization slug.")
@click.option("--lockout", type=click.Choice(service.LOCKOUT_MODES),
              help="After 3 failed sign-ins: temporary (a growing wait) or permanent (until "
                   "an administrator unlocks).")
@click.option("--profiling-rules", type=click.Choice(["on", "off"]),
              help='The review rules "unusual hours" and "new network".')
@json_option
def settings_cmd(org, lockout, profiling_rules, as_json):
    """Show or change an organization's lock-out mode and profiling rules."""
    config = load()
    if lockout is not None or profiling_rules is not None:
        form = {"lockout": lockout or service.lockout_mode(org),
                "profiling_rules": profiling_rules or ("on" if org.profiling_rules else "off")}
        org = service.set_privacy_settings(config, _actor(org), form)
    data = {"organization": org.slug, "lockout": service.lockout_mode(org),
            "profiling_rules": "on" if org.profiling_rules else "off"}
    if as_json:
        echo_json(data)
    else:
        click.echo(f"{org.slug}: lock-out {data['lockout']}, profiling rules "
                   f"{data['profiling_rules']}")


@privacy_group.command("mask")
@click.option("--org", "org", type=ORG, help="Organization slug.")
@click.option("--all", "all_orgs", is_flag=True, help="Every organization.")
@click.option("--skip-keycloak", is_flag=True,
              help="Leave Keycloak's users alone (Leakhub only).")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@json_option
def mask_cmd(org, all_orgs, skip_keycloak, yes, as_json):
    """Replace names, e-mail addresses and IP addresses with stable fakes, in Leakhub and the
    organizations' Keycloak users. For a restored TEST copy (env-copy); never on production.
    The audit trail still verifies."""
    if bool(org) == bool(all_orgs):
        raise click.UsageError("give exactly one of --org SLUG or --all")
    config = load()
    orgs = [org] if org else list(Organization.select().order_by(Organization.id))
    _confirm(yes, "Mask personal data of " + ", ".join(o.slug for o in orgs)
             + "? Only for a test copy; this cannot be undone.")
    faker = service.Faker()
    results = {}
    for o in orgs:
        results[o.slug] = service.mask_org(config, o, faker=faker,
                                           keycloak_too=not skip_keycloak)
    if as_json:
        echo_json(results)
        return
    for slug, counts in results.items():
        click.echo(f"{slug}: masked " + ", ".join(
            f"{v} {k.replace('_', ' ')}" for k, v in counts.items()))
