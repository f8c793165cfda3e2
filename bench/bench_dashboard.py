"""Dashboard benchmark: N demo leaks (`leakctl demo seed`'s service), then the dashboard's
server time p50/p95 (service and full request) and its ratio to the raw SQL it needs.

    .venv/bin/python bench/bench_dashboard.py [--leaks 20000] [--sites 8] [--runs 20]
"""
from __future__ import annotations

import argparse
import os
import time

from _common import environment, load, percentiles, seed_once, system_actor


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--leaks", type=int, default=20_000)
    ap.add_argument("--sites", type=int, default=8)
    ap.add_argument("--runs", type=int, default=20)
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
            for table in ("leak", "location", "energy_settings"):
                database.execute_sql(f"VACUUM ANALYZE {table}")

        # The raw SQL the dashboard needs (same statements, executed directly).
        boundaries = service.period_boundaries(actor)
        import datetime as dt
        months = service._months(dt.date.today(), service.TREND_MONTHS)
        statements = [service.grouped_query(actor, boundaries).sql(),
                      service.trend_query(actor, months).sql()]

        def raw_sql():
            for sql, params in statements:
                database.execute_sql(sql, params).fetchall()

        def run(fn):
            fn()  # warm-up
            out = []
            for _ in range(args.runs):
                t = time.perf_counter()
                fn()
                out.append(time.perf_counter() - t)
            return percentiles(out)

        for _ in range(2):  # warm caches for both before measuring either
            raw_sql()
            service.compute(actor)
        sql50, sql95 = run(raw_sql)
        svc50, svc95 = run(lambda: service.compute(actor))
        d = service.compute(actor)
        print(f"groups (site, period, status class, component): {d.groups} (open "
              f"{d.open.count}, repaired/verified {d.fixed.count}; {len(boundaries)} settings "
              f"periods); {load()}")
        print(f"raw SQL (grouped + trend queries)   : p50 {sql50 * 1000:7.1f} ms  "
              f"p95 {sql95 * 1000:7.1f} ms")
        print(f"dashboard service:                   p50 {svc50 * 1000:7.1f} ms  "
              f"p95 {svc95 * 1000:7.1f} ms  ratio to SQL {svc50 / sql50:4.2f}")

        user = User.get_or_none(User.organization == org, User.sub == "bench") or User.create(
            organization=org, sub="bench", email="bench@example.com", role="admin")
        client = app.test_client()
        with client.session_transaction() as s:
            s["org_id"] = org.id
            s["_user_id"] = str(user.id)
            s["_fresh"] = True

        def http():
            with app.app_context():  # fresh `g` per request, as in a server
                resp = client.get("/dashboard", base_url="https://localhost")
            assert resp.status_code == 200, resp.status_code
        web50, web95 = run(http)
        print(f"GET /dashboard (server, incl. page): p50 {web50 * 1000:7.1f} ms  "
              f"p95 {web95 * 1000:7.1f} ms  ratio to SQL {web50 / sql50:4.2f}")
        print(load())


if __name__ == "__main__":
    main()
