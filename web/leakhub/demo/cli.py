"""`leakctl demo seed`: realistic demo data for trying Leakhub and for benchmarks."""
from __future__ import annotations

import click

from ..core import migrations
from ..core.clikit import CliError, Group, OrgParam, echo_json, json_option, load
from ..orgs.models import Organization
from .seed import SeedError, seed


@click.group("demo", cls=Group)
def demo_group():
    """Demo data."""


@demo_group.command("seed")
@click.option("--org", "org", required=True, type=OrgParam(Organization),
              help="Slug of an existing organization.")
@click.option("--leaks", type=click.IntRange(0, 2_000_000), default=500, show_default=True,
              help="How many leaks to create.")
@click.option("--sites", type=click.IntRange(1, 500), default=3, show_default=True,
              help="How many sites (plants), each with buildings and areas.")
@click.option("--seed", "rng_seed", type=int, default=None,
              help="Random seed for reproducible data.")
@json_option
def seed_cmd(org, leaks, sites, rng_seed, as_json):
    """Fill an organization with demo locations, energy settings, surveys and leaks
    (all or nothing, with audit entries). Adds to what is there; meant for demo and test
    organizations."""
    load()
    if migrations.pending():
        raise CliError("the database schema is not up to date; run `leakctl migrate` first")
    try:
        if as_json:
            result = seed(org, leaks=leaks, sites=sites, rng_seed=rng_seed)
        else:
            with click.progressbar(length=leaks, label="seeding leaks", show_pos=True) as bar:
                result = seed(org, leaks=leaks, sites=sites, rng_seed=rng_seed,
                              progress=bar.update)
    except SeedError as exc:
        raise CliError(str(exc)) from None
    if as_json:
        echo_json(result.__dict__)
    else:
        click.echo(f"organization {org.slug!r}: {result.sites} sites, "
                   f"{result.locations} locations, "
                   f"{result.surveys} surveys, {result.leaks} leaks, "
                   f"{result.status_changes} status changes, {result.audit_entries} audit "
                   f"entries in {result.seconds:.1f} s")
