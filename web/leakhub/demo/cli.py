"""`leakctl demo seed`: realistic demo data for trying Leakhub and for benchmarks."""
from __future__ import annotations

import json

import click


@click.group("demo")
def demo_group():
    """Demo data."""


@demo_group.command("seed")
@click.option("--org", "slug", required=True, help="Slug of an existing organization.")
@click.option("--leaks", type=click.IntRange(0, 2_000_000), default=500, show_default=True,
              help="How many leaks to create.")
@click.option("--sites", type=click.IntRange(1, 500), default=3, show_default=True,
              help="How many sites (plants), each with buildings and areas.")
@click.option("--seed", "rng_seed", type=int, default=None,
              help="Random seed for reproducible data.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def seed_cmd(slug, leaks, sites, rng_seed, as_json):
    """Fill an organization with demo locations, energy settings, surveys and leaks
    (all or nothing, with audit entries). Adds to what is there; meant for demo and test
    organizations."""
    from ..cli import CliError, load
    from ..core import migrations
    from ..orgs.models import Organization
    from .seed import SeedError, seed

    load()
    if migrations.pending():
        raise CliError("the database schema is not up to date; run `leakctl migrate` first")
    org = Organization.get_or_none(Organization.slug == slug)
    if org is None:
        raise CliError(f"organization {slug!r} does not exist (see `leakctl org list`)")
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
        click.echo(json.dumps(result.__dict__))
    else:
        click.echo(f"organization {slug!r}: {result.sites} sites, {result.locations} locations, "
                   f"{result.surveys} surveys, {result.leaks} leaks, "
                   f"{result.status_changes} status changes, {result.audit_entries} audit "
                   f"entries in {result.seconds:.1f} s")
