"""Load through Caddy and gunicorn on the native stack (loopback only, bounded in time):
1, 8 and 32 concurrent clients, each a signed-in browser session and an API token, mixing
reads (leak list, dashboard, API list, a leak page) with writes (leak form with CSRF, API
POST). Prints per concurrency level: requests/s, p50/p95 in ms per kind, errors (≥ 500 and
refused writes), and the ratio to GET /healthz at the same concurrency.

--routes (issue 19): instead of the mix, each route on its own at the highest concurrency —
/healthz, /leaks plain, filtered (open, one site, by rate), a deep page, /dashboard,
/api/v1/leaks, a leak page — each as a ratio to /healthz measured in the same run; with
--leaks N the organization first gets N demo leaks (`leakctl demo seed`). Then the RSS of
each web worker at idle, and of the web workers and the background worker after a CSV export
of every leak (a job above 10,000 rows: the worker writes it).

    .venv/bin/python bench/bench_load.py [--db sqlite|postgres|both] [--duration 15]
                                         [--clients 1,8,32] [--write-share 0.3] [--home DIR]
                                         [--routes] [--leaks 2000]

Without --home a stack is started in a temporary home per database and stopped at the end;
with --home (one database only) the stack running there is used, or started and left running.
"""
from __future__ import annotations

import argparse
import os
import random
import re
import statistics
import sys
import tempfile
import threading
import time
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# The integration tests' stack control and signed-in clients (tests/support, as pytest has it).
sys.path.insert(0, str(ROOT / "tests"))

from support.forms import Browser, make_world  # noqa: E402
from support.kc import new_org, sign_in  # noqa: E402
from support.stackctl import Stack  # noqa: E402
from support.tokens import Person  # noqa: E402

READS = ["/leaks", "/dashboard", "api:/api/v1/leaks?per_page=50", "/leaks?status=open&page=3",
         "leak"]


def percentile(values, q):
    if not values:
        return float("nan")
    values = sorted(values)
    return values[min(len(values) - 1, int(round(q * (len(values) - 1))))]


class Run:
    def __init__(self):
        self.lock = threading.Lock()
        self.latency = defaultdict(list)
        self.errors = defaultdict(int)
        self.count = 0

    def add(self, kind, seconds, ok):
        with self.lock:
            self.latency[kind].append(seconds * 1000)
            self.count += 1
            if not ok:
                self.errors[kind] += 1


def prepare(stack: Stack, clients: int, leaks: int = 0):
    slug, email, password = new_org(stack, prefix="load")
    if leaks:
        t = time.perf_counter()
        stack.leakctl("demo", "seed", "--org", slug, "--leaks", str(leaks), timeout=3600)
        print(f"seeded {leaks} demo leaks in {time.perf_counter() - t:.0f} s")
    sessions = []
    for _ in range(clients):
        http = stack.requests_session()
        resp, password = sign_in(http, stack, slug, email, password)
        assert resp.status_code == 200, resp.status_code
        sessions.append(Browser(stack, http))
    world = make_world(sessions[0])
    token = Person(slug, email, password).token(stack)
    # Something to list: 300 leaks through the API before the clock starts.
    http = stack.requests_session()
    leak_ids = []
    for i in range(300):
        resp = http.post(f"{stack.public_url}/api/v1/leaks",
                         headers={"Authorization": f"Bearer {token}"},
                         json={"location": world["area"], "found_at": "2024-03-06T09:00:00Z",
                               "rate_lpm": 5 + i % 40, "description": f"Vorlauf {i}"})
        assert resp.status_code == 201, resp.text
        leak_ids.append(resp.json()["id"])
    world["slug"] = slug
    return sessions, world, token, leak_ids


def route_paths(stack, sessions, token) -> list[tuple[str, str]]:
    """(label, path) of every route measured on its own; "api:" = with the bearer token."""
    http = stack.requests_session()
    total = http.get(f"{stack.public_url}/api/v1/leaks?per_page=1",
                     headers={"Authorization": f"Bearer {token}"}).json()
    n = total.get("total") or total.get("count") or 2000
    some = http.get(f"{stack.public_url}/api/v1/leaks?per_page=1&sort=-rate",
                    headers={"Authorization": f"Bearer {token}"}).json()
    items = some.get("items") or some.get("data") or []
    leak_id = items[0]["id"] if items else 1
    page = sessions[0].get("/leaks")
    site = re.search(r'<option value="(\d+)">', page.text)
    deep = max(1, int(n) // 50 // 2)
    return [("GET /healthz", "/healthz"), ("GET /leaks", "/leaks"),
            ("GET /leaks filtered", f"/leaks?status=open&location={site.group(1) if site else ''}"
             "&sort=-rate"),
            (f"GET /leaks page {deep}", f"/leaks?page={deep}"),
            ("GET /dashboard", "/dashboard"),
            ("GET /api/v1/leaks", "api:/api/v1/leaks?per_page=50"),
            ("GET /leaks/<id>", f"/leaks/{leak_id}")]


def one_route(stack, sessions, token, path, clients, duration):
    run = Run()
    deadline = time.monotonic() + duration

    def client(n):
        browser = sessions[n % len(sessions)]
        api_http = stack.requests_session()
        auth = {"Authorization": f"Bearer {token}"}
        while time.monotonic() < deadline:
            t0 = time.perf_counter()
            if path.startswith("api:"):
                resp = api_http.get(stack.public_url + path[4:], headers=auth)
            elif path == "/healthz":
                resp = api_http.get(stack.public_url + path)
            else:
                resp = browser.get(path)
            run.add(path, time.perf_counter() - t0, resp.status_code == 200)

    started = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        for f in [pool.submit(client, n) for n in range(clients)]:
            f.result()
    return run, time.perf_counter() - started


def web_processes(home: Path) -> dict:
    """{pid: role} of this stack's gunicorn workers and background worker (by LEAKHUB_HOME
    in their environment; loopback stacks of other sessions are left alone)."""
    out = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmd = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            env = (entry / "environ").read_bytes().split(b"\0")
            stat = (entry / "stat").read_text().split()
        except OSError:
            continue
        if f"LEAKHUB_HOME={home}".encode() not in env:
            continue
        if "gunicorn" in cmd:
            out[int(entry.name)] = ("gunicorn", int(stat[3]))
        elif "leakhub_worker" in cmd:
            out[int(entry.name)] = ("worker", int(stat[3]))
    masters = {pid for pid, (role, ppid) in out.items()
               if role == "gunicorn" and ppid not in out}
    return {pid: ("web worker" if role == "gunicorn" and pid not in masters else
                  "gunicorn master" if role == "gunicorn" else "background worker")
            for pid, (role, _ppid) in out.items()}


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def print_rss(home: Path, when: str) -> None:
    procs = web_processes(home)
    parts = [f"{role} {pid}: {rss_mb(pid):.0f} MB" for pid, role in sorted(procs.items(),
                                                                          key=lambda x: x[1])]
    print(f"RSS {when}: " + "; ".join(parts))


def big_export(stack, browser) -> None:
    """CSV of every leak: a job above 10,000 rows (waited for), else the direct download."""
    t = time.perf_counter()
    resp = browser.http.get(f"{stack.public_url}/leaks/export.csv", allow_redirects=False)
    if resp.status_code == 303:
        page = stack.public_url + resp.headers["Location"]
        while time.perf_counter() - t < 600:
            html = browser.http.get(page).text
            status = re.search(r'data-status="(\w+)"', html)
            if status and status.group(1) in ("done", "failed"):
                print(f"export job {status.group(1)} after {time.perf_counter() - t:.1f} s")
                break
            time.sleep(2)
    else:
        print(f"direct export: {resp.status_code}, {len(resp.content) / 1e6:.1f} MB in "
              f"{time.perf_counter() - t:.1f} s")


def bench_routes(db, stack, home, args) -> None:
    clients = max(int(c) for c in args.clients.split(","))
    sessions, world, token, _ids = prepare(stack, clients, args.leaks)
    print_rss(home, "idle (after sign-in and seeding)")
    paths = route_paths(stack, sessions, token)
    healthz = None
    print(f"\n[{db}] {args.leaks or 300} leaks, {clients} clients, {args.duration:.0f} s per route")
    for label, path in paths:
        run, elapsed = one_route(stack, sessions, token, path, clients, args.duration)
        lat = run.latency[path]
        rps = run.count / elapsed
        healthz = healthz or rps
        print(f"  {label:28s} {rps:7.1f} req/s  {rps / healthz:5.2f}× /healthz  "
              f"p50 {statistics.median(lat):7.1f} ms  p95 {percentile(lat, 0.95):7.1f} ms  "
              f"errors {sum(run.errors.values())}  (load {os.getloadavg()[0]:.1f})")
    big_export(stack, sessions[0])
    print_rss(home, "after the big export")


def one_level(stack, sessions, world, token, leak_ids, clients, duration, write_share,
              healthz_only=False):
    run = Run()
    deadline = time.monotonic() + duration

    def client(n):
        rng = random.Random(n)
        browser = sessions[n % len(sessions)]
        api_http = stack.requests_session()
        auth = {"Authorization": f"Bearer {token}"}
        while time.monotonic() < deadline:
            t0 = time.perf_counter()
            if healthz_only:
                resp = api_http.get(f"{stack.public_url}/healthz")
                run.add("healthz", time.perf_counter() - t0, resp.status_code == 200)
                continue
            if rng.random() < write_share:
                if rng.random() < 0.5:
                    form = browser.form("/leaks/new")   # the GET is part of a form write
                    form.set("location", world["area"]).set("found_at", "2024-03-05T10:15")
                    form.set("rate_lpm", "12,5").set("description", "Last")
                    resp = browser.submit(form)
                    run.add("write form", time.perf_counter() - t0,
                            resp.status_code in (302, 303))
                else:
                    resp = api_http.post(f"{stack.public_url}/api/v1/leaks", headers=auth,
                                         json={"location": world["area"],
                                               "found_at": "2024-03-06T09:00:00Z",
                                               "rate_lpm": 30, "description": "Last"})
                    run.add("write api", time.perf_counter() - t0, resp.status_code == 201)
                continue
            path = rng.choice(READS)
            if path == "leak":
                resp = browser.get(f"/leaks/{rng.choice(leak_ids)}")
                kind = "GET /leaks/<id>"
            elif path.startswith("api:"):
                resp = api_http.get(stack.public_url + path[4:], headers=auth)
                kind = "GET /api/v1/leaks"
            else:
                resp = browser.get(path)
                kind = f"GET {path}"
            run.add(kind, time.perf_counter() - t0, resp.status_code == 200)

    started = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        for f in [pool.submit(client, n) for n in range(clients)]:
            f.result()
    return run, time.perf_counter() - started


def report(db, clients, run, elapsed, healthz_rps):
    rps = run.count / elapsed
    print(f"\n[{db}] {clients} client(s): {run.count} requests in {elapsed:.1f} s = "
          f"{rps:.1f} req/s ({rps / healthz_rps:.2f}× /healthz at {healthz_rps:.0f} req/s); "
          f"errors {sum(run.errors.values())}")
    for kind in sorted(run.latency):
        lat = run.latency[kind]
        print(f"  {kind:34s} n={len(lat):5d}  p50 {statistics.median(lat):7.1f} ms  "
              f"p95 {percentile(lat, 0.95):7.1f} ms  errors {run.errors.get(kind, 0)}")


def bench(db, home, args):
    owned = home is None
    home = Path(home or tempfile.mkdtemp(prefix=f"leakhub-load-{db}-"))
    stack = Stack.attach(home) if not owned else None
    if stack is None:
        home.mkdir(parents=True, exist_ok=True)
        home.chmod(0o755)
        stack = Stack.start(home, db=db)
    try:
        if args.routes:
            bench_routes(db, stack, home, args)
            return
        levels = [int(c) for c in args.clients.split(",")]
        sessions, world, token, leak_ids = prepare(stack, max(levels))
        for clients in levels:
            h_run, h_elapsed = one_level(stack, sessions, world, token, leak_ids, clients,
                                         min(args.duration, 10), 0, healthz_only=True)
            run, elapsed = one_level(stack, sessions, world, token, leak_ids, clients,
                                     args.duration, args.write_share)
            report(db, clients, run, elapsed, h_run.count / h_elapsed)
        with open("/proc/loadavg") as fh:
            print(f"\nload average: {fh.read().split()[:3]}")
    finally:
        if owned:
            stack.stop()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", choices=("sqlite", "postgres", "both"), default="both")
    parser.add_argument("--duration", type=float, default=15)
    parser.add_argument("--clients", default="1,8,32")
    parser.add_argument("--write-share", type=float, default=0.3)
    parser.add_argument("--home", help="use (or start and keep) the stack in this home")
    parser.add_argument("--routes", action="store_true",
                        help="each route on its own, as a ratio to /healthz; RSS; big export")
    parser.add_argument("--leaks", type=int, default=0,
                        help="seed this many demo leaks into the organization first")
    args = parser.parse_args()
    if args.home and args.db == "both":
        parser.error("--home needs --db sqlite or --db postgres")
    for db in (("sqlite", "postgres") if args.db == "both" else (args.db,)):
        bench(db, args.home, args)


if __name__ == "__main__":
    main()
