"""`leakctl setup` (the compose `setup` service): secrets, migrations, Keycloak's service
client, the first organization — everything a first start needs, idempotent."""
from __future__ import annotations

import json
import time

import click
import requests

from ..backups.restore import rehost_if_pending
from ..core import migrations
from ..core.clikit import CliError, Group, load
from ..core.db import database
from ..core.errors import Unavailable
from ..core.secrets import ensure_all, read_secret, write_secret
from ..identity import keycloak
from ..orgs import tokens
from ..orgs.models import Organization
from ..orgs.service import create_organization

FIRST_ADMIN_FILE = "first-admin.json"


def _wait(what, probe, deadline):
    last = None
    while True:
        try:
            probe()
            return
        except Exception as exc:  # any failure means "not yet"
            last = exc
        if time.monotonic() > deadline:
            raise CliError(f"{what} not reachable: {type(last).__name__}: "
                           f"{str(last).splitlines()[0] if str(last) else ''}")
        time.sleep(2)


def _while_unavailable(what, step, deadline):
    """Run `step`, again while it fails because `what` is unavailable (a restart in progress:
    e.g. `docker compose up -d` after a change re-creates PostgreSQL under a running
    Keycloak) until the deadline; any other failure at once."""
    while True:
        try:
            return step()
        except Unavailable as exc:
            if time.monotonic() > deadline:
                raise CliError(f"{what} not available: {exc}") from None
        time.sleep(2)


@click.group("setup", invoke_without_command=True, cls=Group)
@click.option("--wait", "wait_seconds", type=int, default=0, show_default=True,
              help="Seconds to wait for the database and Keycloak to come up.")
@click.pass_context
def setup_group(ctx, wait_seconds):
    """First start (idempotent): secrets, migrations, Keycloak service client, first
    organization."""
    if ctx.invoked_subcommand is not None:
        return
    config = load(db=False)
    created = ensure_all(config.secrets_dir, config=config)
    click.echo(f"secrets: {'created ' + ', '.join(created) if created else 'all present'}")
    load(db=True)
    deadline = time.monotonic() + wait_seconds

    def db_probe():
        database.connect(reuse_if_open=True)
        database.execute_sql("SELECT 1")

    _wait("database", db_probe, deadline)
    applied = migrations.migrate(config.data_dir, log=click.echo)
    click.echo(f"database: schema version {migrations.head()} ({len(applied)} applied)")

    def kc_probe():
        requests.get(f"{config.keycloak_url}/realms/master", timeout=5).raise_for_status()

    _wait("Keycloak", kc_probe, deadline)
    click.echo(f"keycloak: service client "
               f"{_while_unavailable('Keycloak', lambda: keycloak.bootstrap(config), deadline)}")

    _while_unavailable("Keycloak", lambda: _reapply_app_clients(config), deadline)
    if config.first_org_slug and config.first_admin_email:
        result = create_organization(config, slug=config.first_org_slug,
                                     name=config.first_org_name,
                                     admin_email=config.first_admin_email, exist_ok=True)
        if result.admin_password:
            write_secret(config.secrets_dir, FIRST_ADMIN_FILE, json.dumps({
                "organization": result.organization.slug, "email": result.admin_email,
                "one_time_password": result.admin_password}), overwrite=True)
            click.echo(f"organization {result.organization.slug!r} created")
            _print_first_admin(config)
        else:
            click.echo(f"organization {result.organization.slug!r} exists")
    rehosted = rehost_if_pending(config)   # after a restore: Keycloak clients -> this URL
    if rehosted:
        click.echo(f"restore: {rehosted}")
    click.echo(f"ready: open {config.public_url}/")


def _reapply_app_clients(config):
    """Redirect and back-channel URLs follow the configured public/internal URLs (a new
    hostname or port), and the password policy (blocklist, notUsername, notEmail) and
    "Forgot password?" (only with LEAKHUB_SMTP_HOST) follow the template and the mail settings,
    and so do the languages of Keycloak's pages (internationalization on, de and en) and the
    organization's token settings (orgs.tokens):
    re-applied to every organization's realm on each setup run."""
    kc = keycloak.admin_client(config)
    for org in Organization.select():
        kc.update_app_client(org.slug, public_url=config.public_url,
                             internal_url=config.internal_url, secret=org.oidc_client_secret,
                             template_path=config.realm_template)
        kc.update_realm_policies(org.slug, template_path=config.realm_template,
                                 reset_password_allowed=config.smtp is not None)
        # The organization's token settings, incl. single-use refresh tokens: a realm made
        # before they existed (or changed in Keycloak's console) follows the stored values.
        kc.set_token_settings(org.slug, tokens.realm_settings(tokens.current(org)))


def _print_first_admin(config):
    try:
        info = json.loads(read_secret(config.secrets_dir, FIRST_ADMIN_FILE))
    except Exception:
        raise CliError("no first-admin credential recorded (setup has not created an "
                       "organization)") from None
    click.echo(f"First sign-in at {config.public_url}/ : organization {info['organization']}, "
               f"user {info['email']}, one-time password {info['one_time_password']} "
               "(you must choose a new password at first sign-in)")


@setup_group.command("show-first-admin")
def show_first_admin():
    """Print the first administrator's e-mail and one-time password again."""
    _print_first_admin(load(db=False))
