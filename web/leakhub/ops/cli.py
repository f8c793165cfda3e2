"""`leakctl status`."""
from __future__ import annotations

import json

import click

from .status import all_checks, check_worker


@click.group("status", invoke_without_command=True)
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.pass_context
def status_group(ctx, as_json):
    """Health of the installation; exits 1 when something needs attention."""
    if ctx.invoked_subcommand is not None:
        return
    from ..cli import load

    config = load()
    checks = all_checks(config)
    ok = all(c.ok for c in checks)
    if as_json:
        click.echo(json.dumps({"ok": ok, "checks": [c.as_dict() for c in checks]}))
    else:
        for c in checks:
            click.echo(f"{'ok  ' if c.ok else 'FAIL'} {c.name:16} {c.detail}")
    if not ok:
        raise SystemExit(1)


@status_group.command("worker")
def worker_cmd():
    """Exit 0 if the worker's heartbeat is recent (the worker container's health check)."""
    from ..cli import load

    load()
    check = check_worker()
    click.echo(f"worker: {check.detail}")
    if not check.ok:
        raise SystemExit(1)
