"""Where one request's time goes (issue 19): N demo leaks, a signed-in admin, then cProfile
over R requests of a route (Flask test client, as gunicorn serves it, page rendered). Prints
CPU ms per request, the share of each layer (templates, SQL driver, peewee, Flask/werkzeug,
Babel, Leakhub's own code) and the functions with the most own time.

    .venv/bin/python bench/profile_request.py [--leaks 2000] [--runs 200]
                                              [--route /leaks] [--route /dashboard] ...
"""
from __future__ import annotations

import argparse
import cProfile
import pstats
import time
from collections import defaultdict

from _common import environment, load, recorded_sql, seed_once

LAYERS = (("jinja2", "templates (Jinja)"), ("/templates/", "templates (Jinja)"),
          ("sqlite3", "SQL driver"), ("psycopg", "SQL driver"), ("peewee", "peewee"),
          ("playhouse", "peewee"), ("flask_babel", "Babel"), ("babel/", "Babel"),
          ("werkzeug", "Flask/werkzeug"), ("flask", "Flask/werkzeug"),
          ("leakhub", "Leakhub code"))


def layer_of(filename: str) -> str:
    if filename.startswith("<template>") or filename.endswith(".html"):
        return "templates (Jinja)"
    for needle, name in LAYERS:
        if needle in filename:
            return name
    return "other (stdlib, builtins)"


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--leaks", type=int, default=2000)
    ap.add_argument("--runs", type=int, default=200)
    ap.add_argument("--route", action="append")
    ap.add_argument("--top", type=int, default=25)
    args = ap.parse_args()
    routes = args.route or ["/healthz", "/leaks", "/dashboard", "/leaks/{leak}"]
    with environment() as (app, org):
        from leakhub.identity.models import User
        from leakhub.leaks.models import Leak

        seed_once(org, args.leaks, 8)
        admin = User.create(organization=org, sub="bench", email="bench@example.com",
                            role="admin", name="Bench Admin")
        client = app.test_client()
        with client.session_transaction() as s:
            s["org_id"], s["_user_id"], s["_fresh"], s["csrf"] = org.id, str(admin.id), True, "t"
        leak = Leak.select().where(Leak.organization == org).order_by(Leak.id.desc()).first()

        def get(path):
            with app.app_context():
                resp = client.get(path, base_url="https://localhost")
            assert resp.status_code == 200, (path, resp.status_code)

        print(f"{args.leaks} leaks; {args.runs} requests per route; {load()}")
        for route in routes:
            path = route.format(leak=leak.id)
            for _ in range(5):
                get(path)
            with recorded_sql() as statements:
                get(path)
            # The least CPU of ten batches: on a busy machine a batch's CPU time grows with the
            # cache misses other processes cause, the minimum is the request's own cost.
            batch = max(1, args.runs // 10)
            plain = float("inf")
            for _ in range(10):
                c = time.process_time()
                for _ in range(batch):
                    get(path)
                plain = min(plain, (time.process_time() - c) / batch * 1000)
            prof = cProfile.Profile()
            c = time.process_time()
            prof.enable()
            for _ in range(args.runs):
                get(path)
            prof.disable()
            cpu = (time.process_time() - c) / args.runs * 1000
            stats = pstats.Stats(prof)
            layers = defaultdict(float)
            for (filename, _line, _fn), (_cc, _nc, tt, _ct, _callers) in stats.stats.items():
                layers[layer_of(filename)] += tt
            total = sum(layers.values()) or 1
            print(f"\nGET {path}: {plain:.1f} ms CPU per request (least of 10 batches; {cpu:.1f} "
                  "profiled); "
                  f"{len(statements)} SQL statements")
            for name, tt in sorted(layers.items(), key=lambda x: -x[1]):
                print(f"  {name:26s} {tt / total * 100:5.1f} %")
            print("  most own time:")
            rows = sorted(stats.stats.items(), key=lambda x: -x[1][2])[:args.top]
            for (filename, line, fn), (_cc, nc, tt, ct, _callers) in rows:
                short = filename.split("site-packages/")[-1].split("web/")[-1]
                print(f"    {tt / args.runs * 1000:6.2f} ms own {ct / args.runs * 1000:6.2f} ms cum"
                      f"  {nc / args.runs:7.1f} calls  {short}:{line} {fn}")
            print("  Leakhub functions by cumulative time:")
            rows = sorted(((k, v) for k, v in stats.stats.items() if "leakhub/" in k[0]
                           and "/templates/" not in k[0]), key=lambda x: -x[1][3])[:args.top]
            for (filename, line, fn), (_cc, nc, _tt, ct, _callers) in rows:
                short = filename.split("web/")[-1]
                print(f"    {ct / args.runs * 1000:6.2f} ms cum  {nc / args.runs:7.1f} calls  "
                      f"{short}:{line} {fn}")


if __name__ == "__main__":
    main()
