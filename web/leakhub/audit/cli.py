"""`leakctl audit verify`."""
from __future__ import annotations

import json

import click

from ..orgs.models import Organization
from .verify import verify_org


@click.group("audit")
def audit_group():
    """The audit trail."""


@audit_group.command("verify")
@click.option("--org", "slug", help="Only this organization (default: all).")
@click.option("--json", "as_json", is_flag=True)
def verify_cmd(slug, as_json):
    """Check the hash chain; names the first broken entry and exits 1 if there is one."""
    from ..cli import CliError, load

    load()
    orgs = Organization.select().order_by(Organization.slug)
    if slug:
        orgs = orgs.where(Organization.slug == slug)
        if not orgs.exists():
            raise CliError(f"no organization {slug!r}")
    reports = [verify_org(o) for o in orgs]
    if as_json:
        click.echo(json.dumps([r.__dict__ for r in reports]))
    else:
        for r in reports:
            click.echo(f"{r.organization}: {r.entries} entries, "
                       + ("chain intact" if r.ok else f"BROKEN: {r.problem}"))
    if not all(r.ok for r in reports):
        raise SystemExit(1)
