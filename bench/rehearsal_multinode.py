"""The multi-node rehearsal of issue 17, natively on loopback: one PostgreSQL, two web nodes
(gunicorn on two ports) behind Caddy (round robin, active health checks on /readyz, a request
no node accepted tried on the other, idempotent ones also when a node died handling them), two
workers (one holds the scheduler lock), a two-node Keycloak cluster (Keycloak 26's jdbc-ping
cache stack on the shared PostgreSQL), one uploads directory. Under a bounded load of signed-in
clients (mixed reads and writes), it kills, one after the other:

  1. one web node (kill -9 of its whole process group): counts failed reads (claim: 0) and
     follows every write that did not get its success answer into the database (claim: each
     write is there exactly once with its audit entry, or absent: nothing half-written, no
     duplicate);
  2. the worker that holds the scheduler lock (kill -9): the takeover time of the standby
     (claim: within its 15 s retry plus start-up slack) and the job_run rows (claim: no two
     runs of one job overlap, nothing ran twice);
  3. one Keycloak node (kill -9): signed-in users keep working (counted in 1's errors after
     the kill) and new sign-ins through Caddy succeed (claim: all).

It prints the figures (requests, errors per phase, takeover time, load average) and exits 1
when a claim fails, 2 when the set-up failed. Everything runs on 127.0.0.1 in a temporary home
(or --home) and is stopped at the end (`scripts/stack.py down`, which also stops what this
script started: every process carries the home's marker). Bounded: about 6-9 minutes on two
busy cores, most of it Keycloak's two starts.

    .venv/bin/python bench/rehearsal_multinode.py [--clients 16] [--duration 60] [--keep]

The layout in Kubernetes terms: the public Caddy is the chart's Caddy (with both web nodes and
both Keycloak nodes as upstreams instead of one Service each); a second, internal Caddy on
plain HTTP stands in for the Services the app itself calls (Keycloak for tokens, JWKS and
/readyz; the web for Keycloak's back-channel logout).
"""
from __future__ import annotations

import argparse
import os
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter, defaultdict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))      # the integration tests' stack control and clients
sys.path.insert(0, str(ROOT / "host"))       # the native stack's own process control

from leakhub_host.caddy import caddy_env  # noqa: E402
from leakhub_host.keycloak import start_keycloak  # noqa: E402
from leakhub_host.layout import CADDYFILE, Layout, child_env  # noqa: E402
from leakhub_host.procs import http_status, https_status, spawn, wait_until  # noqa: E402
from leakhub_host.state import layout_from_state, read_state  # noqa: E402

from support.forms import Browser, make_world  # noqa: E402
from support.kc import new_org, sign_in  # noqa: E402
from support.stackctl import STACK_PY, VENV_BIN, Stack, free_port, sql  # noqa: E402
from support.tokens import Person  # noqa: E402

WORKER_RETRY_S = 15        # the standby's retry interval (leakhub_worker.__main__)
TAKEOVER_SLACK_S = 10      # a standby's own start of the scheduler (migrations check, jobs)
REQUEST_TIMEOUT_S = 30


@dataclass
class NodeLayout(Layout):
    """Another Keycloak node in the same home: its own copy of the distribution and data
    directory (Keycloak keeps its transaction log there), its own log file."""
    node: int = 2

    @property
    def kc_dist(self) -> Path:
        return self.home / f"keycloak-dist-{self.node}"

    @property
    def kc_data_dir(self) -> Path:
        return self.home / f"keycloak-{self.node}"

    def log(self, service: str) -> Path:
        return self.logs_dir / f"{service}-{self.node}.log"


def internal_caddyfile(*, keycloak: list[str], web: list[str], keycloak_port: int,
                       web_port: int) -> str:
    """The stand-in for the cluster's Services: plain HTTP on loopback, round robin over the
    nodes, a node that refuses connections skipped (tried on the others for 5 s), nodes checked
    every 2 s. Directive names valid for Caddy 2.6 and current 2.x."""
    def site(port, upstreams, health):
        return (f"http://127.0.0.1:{port} {{\n"
                f"\tbind 127.0.0.1\n"
                f"\treverse_proxy {' '.join(upstreams)} {{\n"
                f"\t\tlb_policy round_robin\n"
                f"\t\tlb_try_duration 5s\n"
                f"\t\tlb_try_interval 250ms\n"
                f"\t\tlb_retry_match {{\n\t\t\tmethod GET HEAD\n\t\t}}\n"
                f"\t\thealth_uri {health}\n"
                f"\t\thealth_interval 2s\n"
                f"\t\thealth_timeout 2s\n"
                f"\t\tfail_duration 30s\n"
                f"\t}}\n}}\n")
    return ("{\n\tadmin off\n\tauto_https off\n}\n\n"
            + site(keycloak_port, keycloak, "/auth/realms/master") + "\n"
            + site(web_port, web, "/healthz"))


def public_caddy_env(layout: Layout, *, web: list[str], keycloak: list[str]) -> dict:
    """caddy/Caddyfile's variables for several nodes (the public edge)."""
    env = caddy_env(layout)
    env.update({"LEAKHUB_WEB_UPSTREAM": " ".join(web),
                "LEAKHUB_KEYCLOAK_UPSTREAM": " ".join(keycloak),
                "LEAKHUB_LB_TRY_DURATION": "5s",
                "LEAKHUB_WEB_HEALTH_URI": "/readyz", "LEAKHUB_HEALTH_INTERVAL": "2s"})
    return env


def say(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def load() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def with_timeout(http, seconds=REQUEST_TIMEOUT_S):
    request = http.request
    http.request = lambda *a, **kw: request(*a, **{"timeout": seconds, **kw})
    return http


def kill_group(pid: int) -> None:
    try:
        os.killpg(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


class Cluster:
    """What this script starts beside the stack (all carry the home's marker)."""

    def __init__(self, home: Path):
        self.home = home
        self.stack: Stack | None = None
        self.layout: Layout | None = None
        self.web: dict[int, object] = {}
        self.workers: dict[int, object] = {}
        self.keycloak: dict[int, object] = {}
        self.kc_ports: dict[int, int] = {}
        self.app_env: dict = {}

    def up(self) -> None:
        c1, c2 = free_port(), free_port()
        t = time.monotonic()
        say("stack: PostgreSQL, Keycloak node 1 (clustered caches), setup, Caddy")
        proc = subprocess.run([str(VENV_BIN / "python"), str(STACK_PY), "up", "--detach",
                               "--home", str(self.home), "--db", "postgres", "--ports", "auto",
                               "--keycloak-cluster", f"127.0.0.1:{c1}"],
                              stdin=subprocess.DEVNULL, capture_output=True, text=True,
                              timeout=900)
        if proc.returncode != 0:
            raise RuntimeError(f"stack.py up failed:\n{proc.stdout}\n{proc.stderr}")
        self.stack = Stack(self.home, owned=True)
        state = read_state(self.home)
        self.layout = layout = layout_from_state(state)
        self.kc_ports[1] = layout.ports["keycloak"]
        for svc in state["services"]:
            if svc["name"] == "keycloak":
                self.keycloak[1] = svc["pid"]
        say(f"stack up in {time.monotonic() - t:.0f} s (load {load()})")

        # Keycloak node 2: same database, same hostname, its own ports and cluster port.
        t = time.monotonic()
        ports = dict(layout.ports, keycloak=free_port(), keycloak_mgmt=free_port())
        node2 = NodeLayout(home=layout.home, db=layout.db, hostname=layout.hostname,
                           ports=ports, repo=layout.repo, keycloak_cluster=f"127.0.0.1:{c2}",
                           node=2)
        svc = start_keycloak(node2, {})
        self.keycloak[2] = svc.pid
        self.kc_ports[2] = ports["keycloak"]
        say(f"keycloak node 2 ready in {time.monotonic() - t:.0f} s (load {load()})")
        view = self.cluster_view()
        say(f"keycloak cluster view: {view or 'NOT FOUND in the logs'}")
        if "(2)" not in (view or ""):
            raise RuntimeError("the two Keycloak nodes did not form one cluster")

        # The internal Services (Keycloak and web for the app's own calls).
        web_ports = {1: layout.ports["web"], 2: free_port()}
        kc_lb, web_lb = free_port(), free_port()
        internal = self.home / "Caddyfile.internal"
        internal.write_text(internal_caddyfile(
            keycloak=[f"127.0.0.1:{p}" for p in self.kc_ports.values()],
            web=[f"127.0.0.1:{p}" for p in web_ports.values()],
            keycloak_port=kc_lb, web_port=web_lb))
        env = child_env(layout, {"XDG_DATA_HOME": str(self.home / "caddy-internal"),
                                 "XDG_CONFIG_HOME": str(self.home / "caddy-internal")})
        spawn(layout, "caddy-internal", ["caddy", "run", "--config", internal, "--adapter",
                                         "caddyfile"], env)
        wait_until("caddy-internal", lambda: http_status(f"http://127.0.0.1:{kc_lb}/auth/realms/"
                                                         "master"), 30, None)

        # Web and worker: the stack's single ones make way for two of each.
        subprocess.run([str(VENV_BIN / "python"), str(STACK_PY), "down", "--only", "web,worker",
                        "--home", str(self.home)], check=True, capture_output=True, timeout=120)
        self.app_env = {"KEYCLOAK_URL": f"http://127.0.0.1:{kc_lb}/auth",
                        "LEAKHUB_INTERNAL_URL": f"http://127.0.0.1:{web_lb}"}
        for n, port in web_ports.items():
            metrics = self.home / "metrics" / f"web-{n}"
            metrics.mkdir(parents=True, exist_ok=True)
            self.web[n] = spawn(layout, f"web-{n}", [layout.venv_bin / "gunicorn", "-c",
                                                     layout.repo / "web" / "gunicorn.conf.py"],
                                child_env(layout, {**self.app_env,
                                                   "LEAKHUB_BIND": f"127.0.0.1:{port}",
                                                   "PROMETHEUS_MULTIPROC_DIR": str(metrics)}),
                                port=port, cwd=layout.repo)
        for n, port in web_ports.items():
            wait_until(f"web-{n}", lambda p=port: http_status(f"http://127.0.0.1:{p}/readyz"),
                       120, self.web[n])
        for n in (1, 2):
            self.workers[n] = spawn(layout, f"worker-{n}",
                                    [layout.venv_bin / "python", "-m", "leakhub_worker"],
                                    child_env(layout, {**self.app_env,
                                                       "LEAKHUB_METRICS_BIND":
                                                       f"127.0.0.1:{free_port()}"}),
                                    cwd=layout.repo)
            time.sleep(3)      # worker 1 takes the lock first: a known holder to kill

        # The public Caddy again, now in front of both web and both Keycloak nodes.
        caddy_pid = next(s["pid"] for s in state["services"] if s["name"] == "caddy")
        os.kill(caddy_pid, signal.SIGTERM)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and Path(f"/proc/{caddy_pid}").exists():
            time.sleep(0.2)
        env = public_caddy_env(layout, web=[f"127.0.0.1:{p}" for p in web_ports.values()],
                               keycloak=[f"127.0.0.1:{p}" for p in self.kc_ports.values()])
        caddy = spawn(layout, "caddy-lb", ["caddy", "run", "--config", CADDYFILE, "--adapter",
                                           "caddyfile"], env)
        wait_until("caddy-lb", lambda: https_status(layout.hostname, layout.ports["https"],
                                                    "/readyz", layout.ca_cert), 60, caddy)
        say(f"two web nodes, two workers, two Keycloak nodes behind Caddy (load {load()})")

    def cluster_view(self) -> str | None:
        for n in (2, 1):
            path = self.home / "logs" / ("keycloak.log" if n == 1 else f"keycloak-{n}.log")
            views = [line for line in path.read_text(errors="replace").splitlines()
                     if "ISPN000094" in line]
            if views:
                return views[-1].split("ISPN000094:", 1)[1].strip()[:200]
        return None

    def active_worker(self) -> int | None:
        for n in self.workers:
            if "scheduler started" in self.worker_log(n):
                return n
        return None

    def worker_log(self, n: int) -> str:
        return (self.home / "logs" / f"worker-{n}.log").read_text(errors="replace")

    def down(self) -> None:
        subprocess.run([str(VENV_BIN / "python"), str(STACK_PY), "down", "--home",
                        str(self.home)], capture_output=True, timeout=300)


class Recorder:
    def __init__(self, t0: float):
        self.t0 = t0
        self.lock = threading.Lock()
        self.rows: list[tuple] = []      # (t, kind, ok, status, marker)

    def add(self, kind, ok, status, marker=None):
        with self.lock:
            self.rows.append((time.monotonic() - self.t0, kind, ok, status, marker))


def run_load(stack, sessions, world, token, leak_ids, clients, duration, rec, stop_at):
    def client(n):
        rng = random.Random(n)
        browser = sessions[n % len(sessions)]
        api = with_timeout(stack.requests_session())
        auth = {"Authorization": f"Bearer {token}"}
        while time.monotonic() < stop_at:
            kind, marker = "?", None
            try:
                if rng.random() < 0.3:
                    marker = f"rehearsal-{uuid.uuid4().hex}"
                    if rng.random() < 0.5:
                        kind = "write form"
                        form = browser.form("/leaks/new")
                        form.set("location", world["area"]).set("found_at", "2024-03-05T10:15")
                        form.set("rate_lpm", "12,5").set("description", marker)
                        resp = browser.submit(form)
                        ok = resp.status_code in (302, 303)
                    else:
                        kind = "write api"
                        resp = api.post(f"{stack.public_url}/api/v1/leaks", headers=auth,
                                        json={"location": world["area"],
                                              "found_at": "2024-03-06T09:00:00Z",
                                              "rate_lpm": 30, "description": marker})
                        ok = resp.status_code == 201
                    rec.add(kind, ok, resp.status_code, marker)
                    continue
                choice = rng.choice(["/leaks", "/dashboard", "api", "leak"])
                if choice == "api":
                    kind = "read api"
                    resp = api.get(f"{stack.public_url}/api/v1/leaks?per_page=50", headers=auth)
                elif choice == "leak":
                    kind = "read leak"
                    resp = browser.get(f"/leaks/{rng.choice(leak_ids)}")
                else:
                    kind = f"read {choice}"
                    resp = browser.get(choice)
                rec.add(kind, resp.status_code == 200, resp.status_code)
            except Exception as exc:        # connection reset, timeout: a failed request
                rec.add(kind, False, type(exc).__name__, marker)

    with ThreadPoolExecutor(clients) as pool:
        for f in [pool.submit(client, n) for n in range(clients)]:
            f.result()


def prepare(stack, clients):
    slug, email, password = new_org(stack, prefix="ha")
    sessions = []
    for _ in range(clients):
        http = with_timeout(stack.requests_session())
        resp, password = sign_in(http, stack, slug, email, password)
        if resp.status_code != 200:
            raise RuntimeError(f"sign-in failed: {resp.status_code}")
        sessions.append(Browser(stack, http))
    world = make_world(sessions[0])
    token = Person(slug, email, password).token(stack)
    http = with_timeout(stack.requests_session())
    leak_ids = []
    for i in range(100):
        resp = http.post(f"{stack.public_url}/api/v1/leaks",
                         headers={"Authorization": f"Bearer {token}"},
                         json={"location": world["area"], "found_at": "2024-03-06T09:00:00Z",
                               "rate_lpm": 5 + i % 40, "description": f"Vorlauf {i}"})
        if resp.status_code != 201:
            raise RuntimeError(f"seeding failed: {resp.status_code} {resp.text[:200]}")
        leak_ids.append(resp.json()["id"])
    return slug, email, password, sessions, world, token, leak_ids


def check_writes(stack, rec) -> tuple[dict, list[str]]:
    """Every write attempt against the database: its leak row (by the unique marker) and that
    row's audit entry."""
    problems, figures = [], Counter()
    for t, kind, ok, status, marker in rec.rows:
        if not marker:
            continue
        rows = sql(stack, "SELECT id FROM leak WHERE description = %s", marker)
        audited = (sql(stack, "SELECT count(*) FROM audit_entry WHERE entity_type = 'leak' "
                               "AND entity_id = %s", rows[0][0])[0][0] if rows else 0)
        if len(rows) > 1:
            problems.append(f"{kind} at {t:.1f}s written {len(rows)} times")
        if rows and not audited:
            problems.append(f"{kind} at {t:.1f}s: leak {rows[0][0]} without audit entry")
        if ok:
            figures["acknowledged"] += 1
            if not rows:
                problems.append(f"{kind} at {t:.1f}s answered {status} but is not stored")
        else:
            key = "failed, stored (answer lost)" if rows else "failed, absent (rolled back)"
            figures[key] += 1
            say(f"  failed write: {kind} at {t:.1f}s -> {status}; "
                + ("stored once, with its audit entry" if rows and audited else
                   "not in the database"))
    return dict(figures), problems


def check_job_runs(stack, since) -> tuple[dict, list[str]]:
    rows = sql(stack, "SELECT id, job, started_at, finished_at, status FROM job_run "
                      "WHERE started_at >= %s ORDER BY job, started_at", since)
    by_job = defaultdict(list)
    for row in rows:
        by_job[row[1]].append(row)
    problems = []
    for job, runs in by_job.items():
        for a, b in zip(runs, runs[1:], strict=False):
            end = a[3]
            if end is None and a[4] == "running":
                continue       # the killed worker's run, never finished (reported below)
            if end is not None and b[2] < end:
                problems.append(f"{job}: run {b[0]} started at {b[2]} while run {a[0]} ran "
                                f"until {end}")
    orphans = [r for r in rows if r[4] == "running" and r[3] is None]
    return {"runs": len(rows), "jobs": len(by_job), "left running": len(orphans)}, problems


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--duration", type=float, default=60)
    parser.add_argument("--home", help="home for the stack (default: a temporary directory)")
    parser.add_argument("--keep", action="store_true", help="leave the stack running")
    args = parser.parse_args()
    if args.clients < 1 or not 40 <= args.duration <= 300:
        parser.error("--clients >= 1 and 40 <= --duration <= 300")
    home = Path(args.home or tempfile.mkdtemp(prefix="leakhub-multinode-")).resolve()
    home.mkdir(parents=True, exist_ok=True)
    home.chmod(0o755)
    started = time.monotonic()
    cluster = Cluster(home)
    # SIGTERM/SIGHUP end the run like Ctrl-C: the `finally` below stops what was started.
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, lambda signum, _frame: sys.exit(128 + signum))
    claims: list[tuple[str, bool, str]] = []
    try:
        try:
            cluster.up()
            stack = cluster.stack
            slug, email, password, sessions, world, token, leak_ids = prepare(stack,
                                                                               args.clients)
        except Exception as exc:
            say(f"set-up failed: {exc}")
            return 2
        say(f"{args.clients} signed-in clients, {args.duration:.0f} s of load "
            f"(load {load()})")
        db_now = sql(stack, "SELECT now() AT TIME ZONE 'UTC'")[0][0]
        t0 = time.monotonic()
        rec = Recorder(t0)
        stop_at = t0 + args.duration
        events: dict[str, float] = {}
        takeover: dict[str, object] = {}
        signins: list[tuple[float, object]] = []
        active = cluster.active_worker()

        def scenario():
            time.sleep(args.duration * 0.15)
            events["web-2 killed"] = time.monotonic() - t0
            kill_group(cluster.web[2].pid)
            say("kill -9 web node 2 (gunicorn master and workers)")

            time.sleep(args.duration * 0.2)
            victim = active or 1
            standby = 2 if victim == 1 else 1
            before = cluster.worker_log(standby).count("scheduler started")
            t_kill = time.monotonic()
            events[f"worker-{victim} killed"] = t_kill - t0
            kill_group(cluster.workers[victim].pid)
            say(f"kill -9 worker {victim} (holds the scheduler lock)")
            while time.monotonic() - t_kill < WORKER_RETRY_S + TAKEOVER_SLACK_S + 10:
                if cluster.worker_log(standby).count("scheduler started") > before:
                    takeover["seconds"] = time.monotonic() - t_kill
                    takeover["worker"] = standby
                    break
                time.sleep(0.2)

            wait = t0 + args.duration * 0.65 - time.monotonic()
            if wait > 0:
                time.sleep(wait)
            events["keycloak-1 killed"] = time.monotonic() - t0
            kill_group(cluster.keycloak[1])
            say("kill -9 Keycloak node 1")
            time.sleep(3)
            pw = password
            for _ in range(3):
                http = with_timeout(stack.requests_session())
                t = time.monotonic()
                try:
                    resp, pw = sign_in(http, stack, slug, email, pw)
                    result = resp.status_code
                    if resp.status_code == 200:
                        result = Browser(stack, http).get("/leaks").status_code
                except Exception as exc:
                    result = type(exc).__name__
                signins.append((time.monotonic() - t, result))
                say(f"new sign-in after the Keycloak kill: {result} in "
                    f"{time.monotonic() - t:.1f} s")

        runner = threading.Thread(target=scenario, daemon=True)
        runner.start()
        run_load(stack, sessions, world, token, leak_ids, args.clients, args.duration, rec,
                 stop_at)
        runner.join(timeout=120)
        elapsed = time.monotonic() - t0
        load_after = load()

        # -- figures -------------------------------------------------------------------------
        t_web = events.get("web-2 killed", 1e9)
        t_kc = events.get("keycloak-1 killed", 1e9)
        phases = [("before any kill", 0, t_web), ("after web-2 killed", t_web, t_kc),
                  ("after keycloak-1 killed", t_kc, 1e9)]
        print()
        print(f"load: {len(rec.rows)} requests in {elapsed:.1f} s = "
              f"{len(rec.rows) / elapsed:.1f} req/s, {args.clients} clients; "
              f"load average {load_after}")
        for name, start, end in phases:
            rows = [r for r in rec.rows if start <= r[0] < end]
            reads = [r for r in rows if r[1].startswith("read")]
            writes = [r for r in rows if r[1].startswith("write")]
            print(f"  {name:26s} reads {len(reads):5d} (failed {sum(not r[2] for r in reads)})"
                  f"  writes {len(writes):4d} (failed {sum(not r[2] for r in writes)})")
        failed = Counter((r[1], r[3]) for r in rec.rows if not r[2])
        for (kind, status), n in sorted(failed.items(), key=str):
            print(f"  failed: {kind} -> {status}: {n}")
        print("events: " + ", ".join(f"{k} at {v:.1f} s" for k, v in events.items()))

        failed_reads = sum(1 for r in rec.rows if r[1].startswith("read") and not r[2])
        claims.append(("no failed read while a web node and a Keycloak node died",
                       failed_reads == 0, f"{failed_reads} failed"))
        writes, problems = check_writes(stack, rec)
        print(f"writes: {writes}")
        claims.append(("every write fully there or absent, none twice", not problems,
                       "; ".join(problems[:5]) or "ok"))
        if "seconds" in takeover:
            print(f"worker takeover: worker {takeover['worker']} started the scheduler "
                  f"{takeover['seconds']:.1f} s after the kill (standby retries every "
                  f"{WORKER_RETRY_S} s; the lock itself is released when PostgreSQL sees the "
                  f"connection close)")
        claims.append(("the standby worker took over within its retry interval + slack",
                       takeover.get("seconds", 1e9) <= WORKER_RETRY_S + TAKEOVER_SLACK_S,
                       f"{takeover.get('seconds', float('nan')):.1f} s"))
        jobs, job_problems = check_job_runs(stack, db_now)
        print(f"job_run rows since the load started: {jobs}")
        claims.append(("no job ran twice (no overlapping job_run rows)", not job_problems,
                       "; ".join(job_problems[:5]) or "ok"))
        ok_signins = sum(1 for _, r in signins if r == 200)
        claims.append(("new sign-ins after a Keycloak node died",
                       signins and ok_signins == len(signins),
                       f"{ok_signins}/{len(signins)}, "
                       + ", ".join(f"{s:.1f} s" for s, _ in signins)))
        after_kc = [r for r in rec.rows if r[0] >= t_kc]
        claims.append(("signed-in users kept working after the Keycloak kill",
                       bool(after_kc) and all(r[2] for r in after_kc),
                       f"{sum(not r[2] for r in after_kc)} of {len(after_kc)} failed"))
        print()
        for text, ok, detail in claims:
            print(f"{'PASS' if ok else 'FAIL'}  {text}: {detail}")
        print(f"total run time {time.monotonic() - started:.0f} s; load average {load()}")
        return 0 if all(ok for _, ok, _ in claims) else 1
    finally:
        if args.keep:
            say(f"left running: {VENV_BIN}/python {STACK_PY} down --home {home}")
        else:
            cluster.down()
            say("stopped everything")


if __name__ == "__main__":
    sys.exit(main())
