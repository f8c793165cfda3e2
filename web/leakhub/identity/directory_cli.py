"""`leakctl directory ldap set|show|test|sync|remove` and `leakctl directory oidc
set|show|remove`: the organization's company directory (see identity/directory.py).

Secrets never come from the command line (argv is visible to every local user and lands in
shell histories): `--bind-secret-file` / `--client-secret-file` name a file (`-` reads
standard input); without one, an interactive terminal is prompted."""
from __future__ import annotations

import sys

import click

from ..authz import Actor
from ..core.clikit import CliError, Group, OrgParam, echo_json, json_option, load
from ..core.validation import ValidationError
from ..orgs.models import Organization
from . import directory

ORG = OrgParam(Organization)

# form field → the option that sets it
OPTION = {"connection_url": "--url", "bind_dn": "--bind-dn", "bind_secret": "--bind-secret-file",
          "users_dn": "--users-dn", "preset": "--preset",
          "username_attribute": "--username-attribute",
          "user_object_classes": "--user-object-classes", "user_filter": "--user-filter",
          "groups_dn": "--groups-dn", "start_tls": "--start-tls",
          "sync_minutes": "--sync-minutes", "alias": "--alias", "display_name": "--display-name",
          "issuer": "--issuer", "client_id": "--client-id",
          "client_secret": "--client-secret-file", "discovery_url": "--discovery-url"}


def _actor(org):
    return Actor.system(org, label="leakctl")


def _invalid(exc: ValidationError) -> CliError:
    return CliError("; ".join(f"{OPTION.get(k, '--' + k)}: {v}" if k else str(v)
                              for k, v in exc.errors.items()))


def _read_secret(path: str | None, what: str, *, prompt: bool) -> str | None:
    """The secret from a file ('-': standard input), or a hidden prompt on a terminal."""
    if path == "-":
        return sys.stdin.readline().rstrip("\r\n") or None
    if path:
        try:
            with open(path, encoding="utf-8") as fh:
                return fh.readline().rstrip("\r\n") or None
        except OSError as exc:
            raise CliError(f"cannot read the {what} file {path}: "
                           f"{exc.strerror or exc}") from None
        except UnicodeDecodeError:
            raise CliError(f"the {what} file {path} is not UTF-8 text") from None
    if prompt and sys.stdin.isatty():
        return click.prompt(what, hide_input=True) or None
    return None


@click.group("directory", cls=Group)
def directory_group():
    """The company directory: LDAP / Active Directory federation, external OIDC sign-in."""


@directory_group.group("ldap", cls=Group)
def ldap_group():
    """User federation with LDAP or Active Directory (kept in Keycloak, read-only)."""


def _print_ldap(shown: dict | None, as_json: bool) -> None:
    if as_json:
        echo_json(shown)
        return
    if shown is None:
        click.echo("no directory configured")
        return
    for key in ("preset", "connection_url", "start_tls", "bind_dn", "bind_secret", "users_dn",
                "username_attribute", "user_object_classes", "user_filter", "groups_dn",
                "edit_mode", "sync_minutes"):
        click.echo(f"{key + ':':21} {shown.get(key)}")


@ldap_group.command("set")
@click.option("--org", "org", required=True, type=ORG)
@click.option("--preset", type=click.Choice(sorted(directory.PRESETS)), default=None,
              help="Attribute defaults: 'ad' (Active Directory) or 'openldap'.")
@click.option("--url", "connection_url", default=None,
              help="ldap://host:389 or ldaps://host:636 (several separated by spaces).")
@click.option("--start-tls/--no-start-tls", "start_tls", default=None)
@click.option("--bind-dn", default=None, help="The account Keycloak searches the directory as.")
@click.option("--bind-secret-file", default=None,
              help="File holding the bind password ('-': standard input); prompted on a "
                   "terminal when missing; kept when changing other settings.")
@click.option("--users-dn", default=None, help="Where the users are, e.g. ou=people,dc=…")
@click.option("--username-attribute", default=None,
              help="Default: sAMAccountName (ad) / uid (openldap).")
@click.option("--user-object-classes", default=None,
              help="Comma-separated; default: person, organizationalPerson, user (ad) / "
                   "inetOrgPerson, organizationalPerson (openldap).")
@click.option("--user-filter", default=None,
              help="Extra LDAP filter, e.g. '(!(pwdAccountLockedTime=*))'; '' removes it.")
@click.option("--groups-dn", default=None,
              help="Map the groups under this DN to Keycloak groups; '' removes the mapping.")
@click.option("--sync-minutes", default=None, type=int,
              help="Periodic synchronisation of changed users every N minutes (0: off; "
                   "users are imported at their first sign-in either way).")
@json_option
def ldap_set(org, as_json, bind_secret_file, **options):
    """Create or change the federation (the settings not given stay as they are)."""
    config = load()
    actor = _actor(org)
    current = directory.show_ldap(config, actor) or {}
    values = {k: current.get(k) for k in OPTION if k in current}
    values.update({k: v for k, v in options.items() if v is not None})
    values["bind_secret"] = _read_secret(bind_secret_file, "bind secret",
                                         prompt=not current)
    try:
        shown = directory.set_ldap(config, actor, values)
    except ValidationError as exc:
        raise _invalid(exc) from None
    if not as_json:
        click.echo(f"directory {'changed' if current else 'configured'} for {org.slug}")
    _print_ldap(shown, as_json)


@ldap_group.command("show")
@click.option("--org", "org", required=True, type=ORG)
@json_option
def ldap_show(org, as_json):
    """The federation's settings as Keycloak keeps them (the secret only as set / not set)."""
    config = load()
    _print_ldap(directory.show_ldap(config, _actor(org)), as_json)


@ldap_group.command("test")
@click.option("--org", "org", required=True, type=ORG)
@click.option("--bind-secret-file", default=None,
              help="Test this bind password instead of the stored one ('-': standard input).")
def ldap_test(org, bind_secret_file):
    """Connect and bind as the bind DN; exit 1 with the reason when the directory refuses."""
    config = load()
    actor = _actor(org)
    values = None
    secret = _read_secret(bind_secret_file, "bind secret", prompt=False)
    if secret is not None:
        values = directory.show_ldap(config, actor)
        if values is None:
            raise CliError(f"no directory is configured for {org.slug}")
        values = dict(values, bind_secret=secret)
    try:
        directory.test_ldap(config, actor, values)
    except ValidationError as exc:
        raise _invalid(exc) from None
    click.echo("connection and bind OK")


@ldap_group.command("sync")
@click.option("--org", "org", required=True, type=ORG)
@json_option
def ldap_sync(org, as_json):
    """Import every directory user now (Keycloak's full synchronisation)."""
    config = load()
    result = directory.sync_ldap(config, _actor(org))
    if as_json:
        echo_json(result)
    else:
        click.echo(result.get("status") or " ".join(f"{k}={v}" for k, v in result.items()))


@ldap_group.command("remove")
@click.option("--org", "org", required=True, type=ORG)
@click.option("--yes", is_flag=True, help="Do not ask.")
def ldap_remove(org, yes):
    """Remove the federation; its users can no longer sign in (their Leakhub records stay)."""
    config = load()
    if not yes:
        click.confirm(f"Remove the directory of {org.slug}? Its users can no longer sign in",
                      abort=True)
    removed = directory.remove_ldap(config, _actor(org))
    click.echo("directory removed" if removed else "no directory configured")


# ------------------------------------------------------------------ OIDC brokering

@directory_group.group("oidc", cls=Group)
def oidc_group():
    """Sign-in through an external OpenID Connect provider (e.g. Microsoft Entra ID)."""


@oidc_group.command("set")
@click.option("--org", "org", required=True, type=ORG)
@click.option("--alias", default="company", show_default=True,
              help="Short name of the provider in the realm (lower case, digits, '-').")
@click.option("--display-name", default=None, help="Button text on the sign-in page.")
@click.option("--issuer", required=True,
              help="e.g. https://login.microsoftonline.com/<tenant id>/v2.0")
@click.option("--client-id", required=True, help="The application (client) id.")
@click.option("--client-secret-file", default=None,
              help="File holding the client secret ('-': standard input); prompted on a "
                   "terminal when missing; kept when changing an existing provider.")
@click.option("--discovery-url", default=None,
              help="Where Keycloak reads the OpenID configuration (default: "
                   "<issuer>/.well-known/openid-configuration).")
@json_option
def oidc_set(org, alias, display_name, issuer, client_id, client_secret_file, discovery_url,
             as_json):
    """Create or change the provider; its users get no rights until granted."""
    config = load()
    actor = _actor(org)
    known = {p["alias"] for p in directory.list_oidc(config, actor)}
    values = {"alias": alias, "display_name": display_name, "issuer": issuer,
              "client_id": client_id, "discovery_url": discovery_url,
              "client_secret": _read_secret(client_secret_file, "client secret",
                                            prompt=alias not in known)}
    try:
        shown = directory.set_oidc(config, actor, values)
    except ValidationError as exc:
        raise _invalid(exc) from None
    if as_json:
        echo_json(shown)
    else:
        click.echo(f"identity provider {shown['alias']!r} "
                   f"{'changed' if alias in known else 'added'} for {org.slug}")


@oidc_group.command("show")
@click.option("--org", "org", required=True, type=ORG)
@json_option
def oidc_show(org, as_json):
    """The organization's external OpenID Connect providers."""
    config = load()
    rows = directory.list_oidc(config, _actor(org))
    if as_json:
        echo_json(rows)
        return
    if not rows:
        click.echo("no identity provider configured")
    for p in rows:
        click.echo(f"{p['alias']:16} {p['issuer']}  client {p['client_id']}  "
                   f"secret {p['client_secret']}  "
                   f"{'enabled' if p['enabled'] else 'DISABLED'}")


@oidc_group.command("remove")
@click.option("--org", "org", required=True, type=ORG)
@click.option("--alias", default="company", show_default=True)
def oidc_remove(org, alias):
    """Remove the provider; its users can no longer sign in through it."""
    config = load()
    removed = directory.remove_oidc(config, _actor(org), alias)
    click.echo(f"identity provider {alias!r} removed" if removed else
               f"no identity provider {alias!r}")
