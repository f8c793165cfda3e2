"""`leakctl security review|sync|retention`: the worker's jobs, run now (recorded as job runs)."""
from __future__ import annotations

import datetime as dt

import click

from ..core.clikit import CliError, Group, echo_json, json_option, load
from ..jobs.service import run_recorded
from .keycloak_sync import sync_keycloak_events
from .retention import apply_retention
from .review import review_security_events


def _parse_now(_ctx, _param, value):
    if value is None:
        return None
    try:
        parsed = dt.datetime.fromisoformat(value)
    except ValueError:
        raise click.BadParameter(
            f"{value!r} is not an ISO 8601 time like 2025-03-31T02:00:00Z") from None
    if parsed.tzinfo is not None:
        parsed = parsed.astimezone(dt.UTC).replace(tzinfo=None)
    return parsed


_now_option = click.option(
    "--now", callback=_parse_now, metavar="ISO",
    help="Act as if it were this time (ISO 8601; without an offset it is UTC).")


def _run(job: str, func, as_json: bool, **kwargs):
    config = load()
    run = run_recorded(job, func, config=config, **kwargs)
    if as_json:
        echo_json({"job": job, "status": run.status, "message": run.message,
                   "duration_ms": run.duration_ms})
    elif run.status == "ok":
        click.echo(f"{job}: {run.message}")
    if run.status != "ok":
        raise CliError(f"{job} failed: {run.message}")


@click.group("security", cls=Group)
def security_group():
    """Security events: Keycloak sync, review (findings, digest), retention."""


@security_group.command("sync")
@json_option
def sync_cmd(as_json):
    """Pull new login and admin events from Keycloak for every organization."""
    _run("keycloak-event-sync", sync_keycloak_events, as_json)


@security_group.command("review")
@_now_option
@json_option
def review_cmd(now, as_json):
    """Apply the review rules (findings) and send due digest e-mails."""
    _run("security-review", review_security_events, as_json, now=now)


@security_group.command("retention")
@_now_option
@json_option
def retention_cmd(now, as_json):
    """Delete data older than the retention periods and shorten old IP addresses."""
    _run("retention", apply_retention, as_json, now=now)
