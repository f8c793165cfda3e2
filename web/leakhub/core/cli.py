"""`leakctl secrets`, `leakctl migrate`: the commands that need nothing but core."""
from __future__ import annotations

import click

from . import migrations
from .clikit import Group, load
from .secrets import ensure_all


@click.group("secrets", cls=Group)
def secrets_group():
    """Secrets generated on this machine (files, mode 0600)."""


@secrets_group.command("init")
def secrets_init():
    """Generate every missing secret; never overwrites an existing one."""
    config = load(db=False)
    created = ensure_all(config.secrets_dir)
    click.echo(f"secrets in {config.secrets_dir}: "
               + (f"created {', '.join(created)}" if created else "all present"))


@click.command("migrate")
@click.option("--status", is_flag=True, help="Only show the schema version and what is pending.")
def migrate_cmd(status):
    """Apply pending schema migrations (under a database-wide lock)."""
    config = load()
    if status:
        click.echo(f"schema version {migrations.current_version()} of {migrations.head()}; "
                   f"pending: {[m.version for m in migrations.pending()] or 'none'}")
        return
    applied = migrations.migrate(config.data_dir, log=click.echo)
    click.echo(f"schema at version {migrations.head()}"
               + (f" ({len(applied)} applied)" if applied else " (nothing to do)"))
