"""`leakctl dashboard check|recount`: the dashboard's per-day counts against the leaks."""
from __future__ import annotations

import click

from ..core.clikit import Group, OrgParam, echo_json, json_option, load
from ..orgs.models import Organization
from .counts import differences, recount

ORG = OrgParam(Organization)


@click.group("dashboard", cls=Group)
def dashboard_group():
    """The dashboard's per-day counts (kept by the database)."""


@dashboard_group.command("check")
@click.option("--org", "org", default=None, type=ORG,
              help="Only this organization (default: all).")
@json_option
def check_cmd(org, as_json):
    """Count the leaks again and compare; exit 1 when the per-day counts differ."""
    load()
    report = {}
    for one in [org] if org else Organization.select().order_by(Organization.slug):
        diff = differences(one.id)
        report[one.slug] = [{"row": list(map(str, k)), "kept": v[0], "counted": v[1]}
                            for k, v in diff.items()]
    if as_json:
        echo_json(report)
    else:
        for org_slug, rows in report.items():
            click.echo(f"{org_slug}: " + ("counts match the leaks" if not rows else
                                           f"{len(rows)} rows differ; run `leakctl dashboard "
                                           f"recount --org {org_slug}`"))
            for row in rows[:20]:
                click.echo(f"  {' '.join(row['row'])}: kept {row['kept']}, "
                           f"counted {row['counted']}")
    if any(report.values()):
        raise SystemExit(1)


@dashboard_group.command("recount")
@click.option("--org", "org", required=True, type=ORG, help="Slug of the organization.")
def recount_cmd(org):
    """Rewrite the organization's per-day counts from its leaks (one transaction)."""
    load()
    fixed = recount(org)
    click.echo(f"{org.slug}: per-day counts rewritten from the leaks ({fixed} rows differed)")
