"""Dashboard benchmark: N demo leaks (`leakctl demo seed`'s service), then the dashboard's
server time p50/p95 (service and full request) and its ratio to the raw SQL it needs.

Readers: an admin, served from the per-day counts the database keeps (leak_daily); an
external user granted every site as a whole (the same per-day counts, through the grants);
external users granted two buildings and every building (the leaks the grants reach, counted
one by one; every building is the worst case: 97 % of the leaks, no site as a whole); one
granted every survey (one by one too); one with 1,000 grants (bench_list.py's: 70 % location
subtrees, 30 % surveys, some expired).

    .venv/bin/python bench/bench_dashboard.py [--leaks 20000] [--sites 8] [--runs 20]
"""
from __future__ import annotations

import argparse
import os
import random

from _common import cpu_percentiles, environment, load, seed_once, system_actor
from bench_list import seed_grants


def external_granted(org, sub: str, kind: str, limit: int | None = None):
    """An external user (always limited to grants) with a view grant on every location of
    `kind` ("site": whole sites; "building": every building, i.e. all leaks of the demo seed
    but no site as a whole), or on the first `limit` of them."""
    from leakhub.authz import Actor
    from leakhub.authz.models import Grant
    from leakhub.identity.models import User
    from leakhub.locations.models import Location

    user = User.get_or_none(User.organization == org, User.sub == sub) or User.create(
        organization=org, sub=sub, email=f"{sub}@example.com", role="external")
    have = {g.location_id for g in Grant.select().where(Grant.user == user)}
    for loc in (Location.select().where(Location.organization == org, Location.kind == kind)
                .order_by(Location.id).limit(limit)):
        if loc.id not in have:
            Grant.create(organization=org, user=user, location=loc, level="view")
    return Actor(organization=org, kind="user", user=user)


def external_surveys(org, sub: str):
    """An external user with a view grant on every survey."""
    from leakhub.authz import Actor
    from leakhub.authz.models import Grant
    from leakhub.identity.models import User
    from leakhub.surveys.models import Survey

    user = User.get_or_none(User.organization == org, User.sub == sub) or User.create(
        organization=org, sub=sub, email=f"{sub}@example.com", role="external")
    have = {g.survey_id for g in Grant.select().where(Grant.user == user)}
    for survey in Survey.select().where(Survey.organization == org, ~Survey.name.startswith(
            "Bench ")).order_by(Survey.id):
        if survey.id not in have:
            Grant.create(organization=org, user=user, survey=survey, level="view")
    return Actor(organization=org, kind="user", user=user)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--leaks", type=int, default=20_000)
    ap.add_argument("--sites", type=int, default=8)
    ap.add_argument("--runs", type=int, default=20)
    ap.add_argument("--only", default="", help="comma-separated reader numbers (0 admin, 1 "
                    "sites, 2 two buildings, 3 buildings, 4 surveys, 5 1,000 grants)")
    ap.add_argument("--home", default="", help="keep/reuse the seeded data in this Leakhub "
                    "home (SQLite) or organization (DATABASE_URL) between runs")
    args = ap.parse_args()
    slug = f"bench-dash-{args.leaks}" if args.home or os.environ.get("DATABASE_URL") else None
    with environment(home=args.home or None, slug=slug,
                     keep=bool(args.home)) as (app, org):
        from leakhub.core.db import database
        from leakhub.dashboard import service
        from leakhub.identity.models import User

        seed_once(org, args.leaks, args.sites)
        actor = system_actor(org, "bench dashboard")
        from leakhub.core.db import is_postgres
        if is_postgres():
            # Steady state as autovacuum would leave it (fresh rows: statistics, hint bits).
            for table in ("leak", "leak_daily", "location", "energy_settings", "grant"):
                database.execute_sql(f'VACUUM ANALYZE "{table}"')

        import datetime as dt
        months = service._months(dt.date.today(), service.TREND_MONTHS)

        def run(fn):
            wall50, wall95, cpu50, cpu95 = cpu_percentiles(fn, args.runs)
            return wall50, wall95, f"(CPU p50 {cpu50 * 1000:6.1f} ms  p95 {cpu95 * 1000:6.1f} ms)"

        readers = [actor, external_granted(org, "bench-external-sites", "site"),
                   external_granted(org, "bench-external-2-buildings", "building", 2),
                   external_granted(org, "bench-external-buildings", "building"),
                   external_surveys(org, "bench-external-surveys")]
        from leakhub.authz import Actor
        many, n_grants = seed_grants(org, 1000, random.Random(7))
        readers.append(Actor(organization=org, kind="user", user=many))
        labels = ("admin (per-day counts)", "external, every site granted (per-day counts)",
                  "external, 2 buildings granted (leaks one by one)",
                  "external, every building granted (leaks one by one)",
                  "external, every survey granted (leaks one by one)",
                  f"external, {n_grants} grants (locations and surveys, one by one)")
        sql50s = {}
        only = {int(x) for x in args.only.split(",") if x} or set(range(len(readers)))
        pairs = [(who, label) for i, (who, label) in enumerate(zip(readers, labels,
                                                                    strict=False)) if i in only]
        for who, label in pairs:
            # The raw SQL the dashboard needs (same statements, executed directly).
            boundaries = service.period_boundaries(who)
            statements = [q.sql() for _what, q in service.queries(who, boundaries, months)]

            def raw_sql(statements=statements):
                for sql, params in statements:
                    database.execute_sql(sql, params).fetchall()

            for _ in range(2):  # warm caches for both before measuring either
                raw_sql()
                service.compute(who)
            sql50, sql95, sql_cpu = run(raw_sql)
            svc50, svc95, svc_cpu = run(lambda who=who: service.compute(who))
            d = service.compute(who)
            print(f"-- {label}: groups (site, period, status class, component) {d.groups} "
                  f"(open {d.open.count}, repaired/verified {d.fixed.count}; "
                  f"{len(boundaries)} settings periods); {load()}")
            print(f"raw SQL (grouped + trend queries)   : p50 {sql50 * 1000:7.1f} ms  "
                  f"p95 {sql95 * 1000:7.1f} ms  {sql_cpu}")
            print(f"dashboard service:                   p50 {svc50 * 1000:7.1f} ms  "
                  f"p95 {svc95 * 1000:7.1f} ms  {svc_cpu}  ratio to SQL {svc50 / sql50:4.2f}")
            sql50s[label] = sql50

        admin = User.get_or_none(User.organization == org, User.sub == "bench") or \
            User.create(organization=org, sub="bench", email="bench@example.com", role="admin")
        users = [admin] + [r.user for r in readers[1:]]
        for user, label in [(u, lab) for i, (u, lab) in enumerate(zip(users, labels,
                                                                      strict=False))
                            if i in only]:
            client = app.test_client()
            with client.session_transaction() as s:
                s["org_id"] = org.id
                s["_user_id"] = str(user.id)
                s["_fresh"] = True

            def http(client=client):
                with app.app_context():  # fresh `g` per request, as in a server
                    resp = client.get("/dashboard", base_url="https://localhost")
                assert resp.status_code == 200, resp.status_code
            web50, web95, web_cpu = run(http)
            print(f"GET /dashboard, {label} (server, incl. page): p50 {web50 * 1000:7.1f} ms  "
                  f"p95 {web95 * 1000:7.1f} ms  {web_cpu}  ratio to its SQL "
                  f"{web50 / sql50s[label]:4.2f}  {load()}")
        print(load())


if __name__ == "__main__":
    main()
