"""CPU of a grant-limited reader's requests with and without the compiled grant subqueries
(authz._compiled, issue 19): N demo leaks, a reader with 1,000 grants (bench_list.py's) and
one granted every building (bench_dashboard.py's), GET /leaks, a deep page and /dashboard
through the Flask test client (page rendered). CPU per request as the least of several
batches (the request's own cost on a busy machine) and the ratio with/without.

    .venv/bin/python bench/bench_grant_cpu.py [--leaks 20000] [--sites 8] [--home DIR]
"""
from __future__ import annotations

import argparse
import os
import random
import time

from _common import environment, load, seed_once
from bench_dashboard import external_granted
from bench_list import seed_grants


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--leaks", type=int, default=20_000)
    ap.add_argument("--sites", type=int, default=8)
    ap.add_argument("--batches", type=int, default=7)
    ap.add_argument("--home", default="", help="keep/reuse the seeded data in this Leakhub "
                    "home (SQLite) or organization (DATABASE_URL); shared with bench_dashboard")
    args = ap.parse_args()
    slug = f"bench-dash-{args.leaks}" if args.home or os.environ.get("DATABASE_URL") else None
    with environment(home=args.home or None, slug=slug, keep=bool(args.home)) as (app, org):
        from leakhub import authz

        seed_once(org, args.leaks, args.sites)
        many, n_grants = seed_grants(org, 1000, random.Random(7))
        buildings = external_granted(org, "bench-external-buildings", "building").user
        compiled = authz._compiled

        def cpu_ms(user, route, per=5):
            client = app.test_client()
            with client.session_transaction() as s:
                s["org_id"], s["_user_id"], s["_fresh"] = org.id, str(user.id), True
            best = float("inf")
            for _ in range(args.batches):
                start = time.process_time()
                for _ in range(per):
                    with app.app_context():  # fresh `g` per request, as in a server
                        resp = client.get(route, base_url="https://localhost")
                    assert resp.status_code == 200, (route, resp.status_code)
                best = min(best, (time.process_time() - start) / per)
            return best * 1000

        print(f"{args.leaks} leaks; {load()}")
        for label, user in ((f"{n_grants} grants", many), ("every building", buildings)):
            for route in ("/leaks", "/leaks?page=200", "/dashboard"):
                try:
                    authz._compiled = lambda _actor, _key, build: build()
                    without = cpu_ms(user, route)
                finally:
                    authz._compiled = compiled
                with_ = cpu_ms(user, route)
                print(f"{label:15s} GET {route:16s} CPU without {without:6.1f} ms  "
                      f"with {with_:6.1f} ms  ({with_ / without:.2f}×)")
        print(load())


if __name__ == "__main__":
    main()
