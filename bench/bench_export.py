"""Export benchmark: CSV or XLSX of every leak (N demo leaks, the admin's unfiltered list) in
this process, written to a file: wall and CPU time, peak RSS before and after, file size.

    .venv/bin/python bench/bench_export.py --fmt xlsx [--leaks 100000] [--home DIR]
"""
from __future__ import annotations

import argparse
import os
import resource
import tempfile
import time

from _common import environment, load, seed_once


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--fmt", choices=("csv", "xlsx"), default="xlsx")
    ap.add_argument("--leaks", type=int, default=20_000)
    ap.add_argument("--sites", type=int, default=8)
    ap.add_argument("--home", default="", help="keep/reuse the seeded data in this Leakhub "
                    "home (SQLite) or organization (DATABASE_URL) between runs")
    ap.add_argument("--out", default="", help="keep the file here (default: a temporary file)")
    args = ap.parse_args()
    slug = f"bench-dash-{args.leaks}" if args.home or os.environ.get("DATABASE_URL") else None
    with environment(home=args.home or None, slug=slug, keep=bool(args.home)) as (app, org):
        from leakhub.authz import Actor
        from leakhub.exports import service
        from leakhub.identity.models import User
        from leakhub.leaks import service as leaks

        seed_once(org, args.leaks, args.sites)
        admin = User.get_or_none(User.organization == org, User.sub == "bench") or \
            User.create(organization=org, sub="bench", email="bench@example.com", role="admin")
        actor = Actor(organization=org, user=admin)
        path = args.out or tempfile.mktemp(suffix="." + args.fmt)
        rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        t, c = time.perf_counter(), time.process_time()
        with open(path, "wb") as out:
            n = service.write(actor, leaks.parse_filter({}), fmt=args.fmt,
                              tzname=org.timezone, opts=service.Options(), out=out)
        wall, cpu = time.perf_counter() - t, time.process_time() - c
        rss1 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        print(f"{args.fmt}: {n} rows in {wall:.1f} s wall, {cpu:.1f} s CPU; peak RSS "
              f"{rss0 / 1024:.0f} MB before, {rss1 / 1024:.0f} MB after; file "
              f"{os.path.getsize(path) / 1e6:.1f} MB; {load()}")
        if not args.out:
            os.unlink(path)


if __name__ == "__main__":
    main()
