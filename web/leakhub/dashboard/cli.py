"""`leakctl dashboard check|recount`: the dashboard's per-day counts against the leaks."""
from __future__ import annotations

import json

import click


@click.group("dashboard")
def dashboard_group():
    """The dashboard's per-day counts (kept by the database)."""


def _organizations(slug):
    from ..cli import CliError
    from ..orgs.models import Organization

    if slug is None:
        return list(Organization.select().order_by(Organization.slug))
    org = Organization.get_or_none(Organization.slug == slug)
    if org is None:
        raise CliError(f"organization {slug!r} does not exist (see `leakctl org list`)")
    return [org]


@dashboard_group.command("check")
@click.option("--org", "slug", default=None, help="Only this organization (default: all).")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def check_cmd(slug, as_json):
    """Count the leaks again and compare; exit 1 when the per-day counts differ."""
    from ..cli import load
    from .counts import differences

    load()
    report = {}
    for org in _organizations(slug):
        diff = differences(org.id)
        report[org.slug] = [{"row": list(map(str, k)), "kept": v[0], "counted": v[1]}
                            for k, v in diff.items()]
    if as_json:
        click.echo(json.dumps(report))
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
@click.option("--org", "slug", required=True, help="Slug of the organization.")
def recount_cmd(slug):
    """Rewrite the organization's per-day counts from its leaks (one transaction)."""
    from ..cli import load
    from .counts import recount

    load()
    org = _organizations(slug)[0]
    fixed = recount(org)
    click.echo(f"{slug}: per-day counts rewritten from the leaks ({fixed} rows differed)")
