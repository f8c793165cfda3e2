"""Export benchmark: CSV or XLSX of every leak (N demo leaks, the admin's unfiltered list) in
this process, written to a file: wall and CPU time, peak RSS before and after, file size.
--job: the way a large export really goes — the worker's job (file written, then sealed with
the data key into the exports folder) and the download (decrypted as it is sent) — with the
peak RSS after each step.

    .venv/bin/python bench/bench_export.py --fmt xlsx [--leaks 100000] [--home DIR] [--job]
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
    ap.add_argument("--job", action="store_true", help="as an export job: seal, then download")
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
        if args.job:
            export_job(actor, org, args.fmt)
            return
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


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def export_job(actor, org, fmt: str) -> None:
    from leakhub.exports import jobs, service
    from leakhub.leaks import service as leaks

    flt = leaks.parse_filter({})
    job = jobs.request_export(actor, flt, fmt=fmt, opts=service.Options(),
                              total=jobs.count(actor, flt, tzname=org.timezone))
    before = peak_mb()
    t, c = time.perf_counter(), time.process_time()
    jobs.run_job(job)
    job = type(job).get_by_id(job.id)
    wall, cpu = time.perf_counter() - t, time.process_time() - c
    after_job = peak_mb()
    on_disk = jobs.file_path(job).stat().st_size
    t = time.perf_counter()
    # (jobs.read_file: the whole file at once, before the download was streamed)
    chunks = jobs.open_file(job) if hasattr(jobs, "open_file") else [jobs.read_file(job)]
    sent = sum(len(chunk) for chunk in chunks)
    download = time.perf_counter() - t
    print(f"{fmt} job: {job.rows_done} rows in {wall:.1f} s wall, {cpu:.1f} s CPU; file "
          f"{job.size / 1e6:.1f} MB ({on_disk / 1e6:.1f} MB sealed); peak RSS {before:.0f} MB "
          f"before, {after_job:.0f} MB after the job, {peak_mb():.0f} MB after the download "
          f"({sent / 1e6:.1f} MB in {download:.1f} s); {load()}")
    jobs.clean_up(now=job.expires_at + __import__("datetime").timedelta(seconds=1))


if __name__ == "__main__":
    main()
