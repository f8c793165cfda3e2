"""Shared set-up for the benchmarks: a throw-away Leakhub home with SQLite by default, or the
database named by DATABASE_URL (PostgreSQL); one new organization per run, removed at the end
unless --keep is given."""
from __future__ import annotations

import contextlib
import os
import secrets
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "web"))


@contextlib.contextmanager
def environment(keep: bool = False, home: str | None = None, slug: str | None = None):
    """Yields (app, organization) inside a request context. `home` + `slug`: reuse that
    Leakhub home and organization (created if missing, kept afterwards) so that expensive
    seeding can be skipped on the next run."""
    from leakhub.core.config import Config
    from leakhub.core.secrets import ensure_all

    if home:
        keep = True
        os.makedirs(home, exist_ok=True)
    else:
        home = tempfile.mkdtemp(prefix="leakhub-bench-")
    env = {"LEAKHUB_HOME": home, "LEAKHUB_PUBLIC_URL": "https://leakhub.bench",
           "KEYCLOAK_URL": "http://127.0.0.1:9/auth", "LEAKHUB_LOG_LEVEL": "WARNING"}
    if os.environ.get("DATABASE_URL"):
        env["DATABASE_URL"] = os.environ["DATABASE_URL"]
    if os.environ.get("LEAKHUB_DATA_KEY_FILE"):     # e.g. "off" (bench_crypto.py)
        env["LEAKHUB_DATA_KEY_FILE"] = os.environ["LEAKHUB_DATA_KEY_FILE"]
    config = Config.from_env(env)
    ensure_all(config.secrets_dir)
    from leakhub.app import create_app
    from leakhub.core.db import database
    from leakhub.orgs.models import Organization

    app = create_app(config, pool_connections=True)  # as gunicorn serves it
    with app.test_request_context():  # gettext needs a locale (request-based selector)
        database.connect(reuse_if_open=True)
        org = Organization.get_or_none(Organization.slug == slug) if slug else None
        if org is None:
            org = Organization.create(slug=slug or "bench-" + secrets.token_hex(4),
                                      name="Bench GmbH", oidc_client_secret="x",
                                      timezone="Europe/Berlin", language="de")
        try:
            yield app, org
        finally:
            if not keep:
                cleanup(org)
            print(f"database: {'PostgreSQL' if 'postgres' in config.database_url else 'SQLite'}"
                  f" ({config.database_url.split('@')[-1]})")


def cleanup(org):
    """Remove the benchmark organization (RESTRICT foreign keys: leaks, then locations
    bottom-up, then the rest by cascade)."""
    from leakhub.core.db import database
    from leakhub.leaks.models import Leak
    from leakhub.locations.models import Location

    with database.atomic():
        Leak.update(previous_leak=None).where(Leak.organization == org).execute()
        Leak.delete().where(Leak.organization == org).execute()
        for depth in range(20, -1, -1):
            Location.delete().where(Location.organization == org,
                                    Location.depth == depth).execute()
        org.delete_instance()


def system_actor(org, label="bench"):
    from leakhub.authz import Actor

    return Actor.system(org, label=label)


def seed(org, leaks: int, sites: int = 8):
    from leakhub.demo.seed import seed as demo_seed

    t = time.perf_counter()
    demo_seed(org, leaks=leaks, sites=sites, rng_seed=42)
    return time.perf_counter() - t


def seed_once(org, leaks: int, sites: int) -> int:
    """Seed the organization unless an earlier run (--home, DATABASE_URL) already did;
    returns the number of its leaks."""
    from leakhub.leaks.models import Leak

    n = Leak.select().where(Leak.organization == org).count()
    if n:
        print(f"reusing {n} seeded leaks")
        return n
    t_seed = seed(org, leaks, sites)
    n = Leak.select().where(Leak.organization == org).count()
    print(f"seeded {n} leaks at {sites} sites in {t_seed:.1f} s")
    return n


def cpu_percentiles(fn, runs: int):
    """(wall p50, wall p95, CPU p50, CPU p95) in seconds of `runs` calls after a warm-up.
    CPU time (this process) is what a call costs whatever else runs on the machine: the
    wall time of a benchmark on a shared, loaded machine is mostly waiting for a core."""
    fn()
    wall, cpu = [], []
    for _ in range(runs):
        t, c = time.perf_counter(), time.process_time()
        fn()
        cpu.append(time.process_time() - c)
        wall.append(time.perf_counter() - t)
    return percentiles(wall) + percentiles(cpu)


def percentiles(samples):
    s = sorted(samples)
    p50 = statistics.median(s)
    p95 = s[min(len(s) - 1, max(0, int(round(0.95 * len(s))) - 1))]
    return p50, p95


def timed(fn, *args, **kw):
    t = time.perf_counter()
    out = fn(*args, **kw)
    return time.perf_counter() - t, out


def measure(fn, runs: int):
    """p50, p95 (seconds) of `runs` calls after one warm-up call."""
    fn()
    out = []
    for _ in range(runs):
        t = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t)
    return percentiles(out)


@contextlib.contextmanager
def recorded_sql():
    """Every (sql, params) the application executes inside the block, in order."""
    from leakhub.core.db import database

    db = database.obj
    statements = []
    original = db.execute_sql

    def execute_sql(sql, params=None, *a, **kw):
        statements.append((sql, params))
        return original(sql, params, *a, **kw)

    db.execute_sql = execute_sql
    try:
        yield statements
    finally:
        del db.execute_sql


def load():
    """The 1-minute load average and the CPU count, for the record."""
    return f"load {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs"
