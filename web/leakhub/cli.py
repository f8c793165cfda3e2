"""`leakctl`: the admin CLI. Each feature folder contributes a click group (its cli.py);
this module only assembles them and turns known failures into one readable line."""
from __future__ import annotations

import sys

import click
import peewee as pw

from .core.config import ConfigError, get_config
from .core.db import database, init_database
from .core.migrations import MigrationError
from .core.secrets import SecretMissing


class CliError(click.ClickException):
    """Raise for a failure the operator must read; printed as `leakctl: error: ...`."""


def load(*, db: bool = True):
    """Config (and the database handle) for a command."""
    config = get_config()
    if db:
        init_database(config)
    return config


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="leakhub", prog_name="leakctl")
def cli():
    """Administer a Leakhub installation: setup, organizations, migrations, backups."""


def _register():
    from .backups.cli import backup_group
    from .core.cli import migrate_cmd, secrets_group, setup_group
    from .audit.cli import audit_group
    from .demo.cli import demo_group
    from .devices.cli import device_group
    from .ops.cli import deployments_group, status_group, tls_group
    from .orgs.cli import org_group
    from .security.cli import security_group
    from .users.cli import grant_group, user_group

    cli.add_command(secrets_group)
    cli.add_command(migrate_cmd)
    cli.add_command(setup_group)
    cli.add_command(org_group)
    cli.add_command(audit_group)
    cli.add_command(status_group)
    cli.add_command(tls_group)
    cli.add_command(deployments_group)
    cli.add_command(demo_group)
    cli.add_command(device_group)
    cli.add_command(security_group)
    cli.add_command(backup_group)
    cli.add_command(user_group)
    cli.add_command(grant_group)


def _register_reporting():
    from .dashboard.cli import dashboard_group
    from .imports.cli import import_group

    cli.add_command(import_group)
    cli.add_command(dashboard_group)


_register()
_register_reporting()


def main(argv=None):
    from .identity.keycloak_admin import KeycloakError
    from .orgs.service import OrgError

    try:
        cli.main(args=argv, prog_name="leakctl", standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("leakctl: aborted", err=True)
        sys.exit(1)
    except click.ClickException as exc:
        click.echo(f"leakctl: error: {exc.format_message()}", err=True)
        sys.exit(exc.exit_code if exc.exit_code else 1)
    except (ConfigError, SecretMissing, MigrationError, OrgError, KeycloakError) as exc:
        click.echo(f"leakctl: error: {exc}", err=True)
        sys.exit(1)
    except pw.OperationalError as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        click.echo(f"leakctl: error: database not reachable: {first}", err=True)
        sys.exit(1)
    finally:
        if database.obj is not None and not database.is_closed():
            database.close()
