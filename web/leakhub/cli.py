"""`leakctl`: the admin CLI. Each feature folder contributes a click group (its cli.py, built
with core.clikit); this module only assembles them and turns every failure into one readable
line. Nothing imports this module back."""
from __future__ import annotations

import logging
import os
import sys
import traceback

import click
import peewee as pw
from werkzeug.exceptions import HTTPException

from .audit.cli import audit_group
from .backups.cli import backup_group
from .core.cli import keys_group, migrate_cmd, secrets_group
from .core.db import database
from .core.errors import LeakhubError
from .dashboard.cli import dashboard_group
from .demo.cli import demo_group
from .departments.cli import group_group
from .devices.cli import device_group
from .identity.directory_cli import directory_group
from .imports.cli import import_group
from .ops.cli import deployments_group, status_group, tls_group
from .orgs.cli import org_group
from .privacy.cli import USER_COMMANDS as privacy_user_commands
from .privacy.cli import privacy_group
from .security.cli import security_group
from .setup.cli import setup_group
from .users.cli import grant_group, user_group

log = logging.getLogger("leakhub.cli")


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="leakhub", prog_name="leakctl")
def cli():
    """Administer a Leakhub installation: setup, organizations, migrations, backups."""


for _command in (secrets_group, migrate_cmd, setup_group, org_group, audit_group, status_group,
                 tls_group, deployments_group, demo_group, device_group, security_group,
                 backup_group, user_group, grant_group, import_group, dashboard_group,
                 directory_group, group_group):
    cli.add_command(_command)
cli.add_command(keys_group)     # encryption at rest (core/keys.py)
cli.add_command(privacy_group)  # data protection (privacy/)
for _command in privacy_user_commands:  # leakctl user unlock|erase|export
    user_group.add_command(_command)


DEBUG_ENV = "LEAKHUB_DEBUG"


def _fail(message: str, code: int = 1):
    """One line on stderr, whatever the message holds (click's "Did you mean" hints, a
    multi-line exception text), then exit `code`."""
    text = " ".join(part.strip() for part in str(message).splitlines() if part.strip())
    click.echo(f"leakctl: error: {text or 'failed'}", err=True)
    sys.exit(code or 1)


def main(argv=None):
    """Every failure is one line `leakctl: error: ...` and a non-zero exit, never a traceback:
    usage errors (exit 2), known failures (a CliError or any core.errors.LeakhubError: its
    exit code, 1), and anything unexpected (1, naming the exception; the traceback goes to the
    log at debug level, and to stderr with LEAKHUB_DEBUG=1)."""
    try:
        cli.main(args=argv, prog_name="leakctl", standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("leakctl: aborted", err=True)
        sys.exit(1)
    except KeyboardInterrupt:
        click.echo("leakctl: aborted", err=True)
        sys.exit(130)
    except click.ClickException as exc:
        _fail(exc.format_message(), exc.exit_code)
    except LeakhubError as exc:
        _fail(str(exc), exc.exit_code)
    except pw.OperationalError as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        _fail(f"database not reachable: {first}")
    except HTTPException as exc:  # a service's refusal (403/404 from authz)
        _fail(f"{exc.name}: {exc.description}" if exc.description else exc.name)
    except OSError as exc:
        _fail(str(exc) or type(exc).__name__)
    except Exception as exc:  # noqa: BLE001 - the last line of defence, see the docstring
        log.debug("leakctl failed", exc_info=True)
        if os.environ.get(DEBUG_ENV, "") not in ("", "0"):
            traceback.print_exc()
        hint = "" if os.environ.get(DEBUG_ENV, "") not in ("", "0") else \
            f" (set {DEBUG_ENV}=1 for the traceback)"
        _fail(f"unexpected {type(exc).__name__}: {exc}{hint}")
    finally:
        if database.obj is not None and not database.is_closed():
            database.close()
