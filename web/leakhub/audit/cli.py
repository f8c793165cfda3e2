"""`leakctl audit verify`."""
from __future__ import annotations

import click

from ..core.clikit import Group, OrgParam, echo_json, json_option, load
from ..orgs.models import Organization
from .verify import verify_org


@click.group("audit", cls=Group)
def audit_group():
    """The audit trail."""


@audit_group.command("verify")
@click.option("--org", "org", type=OrgParam(Organization),
              help="Only this organization (default: all).")
@json_option
def verify_cmd(org, as_json):
    """Check the hash chain; names the first broken entry and exits 1 if there is one."""
    load()
    orgs = [org] if org else Organization.select().order_by(Organization.slug)
    reports = [verify_org(o) for o in orgs]
    if as_json:
        echo_json([r.__dict__ for r in reports])
    else:
        for r in reports:
            click.echo(f"{r.organization}: {r.entries} entries, "
                       + ("chain intact" if r.ok else f"BROKEN: {r.problem}"))
    if not all(r.ok for r in reports):
        raise SystemExit(1)
