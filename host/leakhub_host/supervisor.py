"""Leakhub's native stack: the compose services as local processes on 127.0.0.1.

    scripts/stack.py up [--detach]   start secrets, postgres, keycloak, setup, web, worker, caddy
    scripts/stack.py down            stop everything of this home (also stragglers)
    scripts/stack.py status          what runs, and is it healthy
    scripts/stack.py env             `export K=V` lines to run leakctl against this stack
    scripts/stack.py up --only web,worker --repo DIR
                                     (re)start just these, from another code tree (a release);
    scripts/stack.py down --only web,worker
                                     stop just these (the updater's steps, leakhub_host/update.py)

Common options: --home DIR (default $LEAKHUB_HOME or <repo>/var), --db sqlite|postgres,
--ports fixed|auto, --hostname NAME. `up --repo DIR` runs setup, web, worker (and `leakctl`
through scripts/leakctl) from DIR and its DIR/.venv, a release tree; stack.json records it.

Run it with the project's virtualenv (.venv/bin/python); it uses only the standard library.
Every child runs in its own session with LEAKHUB_STACK_HOME=<home> in its environment, which
is how `down` finds stragglers. Logs go to <home>/logs/<service>.log. Secret values are never
printed or passed on a command line (they travel in environment variables or files).

This module is the supervisor (the commands, start order, foreground loop, clean-up); the
services' own start and stop live beside it (postgres, keycloak, caddy), as do the home's
layout (layout), its files (state) and process control (procs).
"""
from __future__ import annotations

import argparse
import errno
import fcntl
import os
import shlex
import signal
import sys
import time
from pathlib import Path

from .caddy import start_caddy, wait_for_caddy
from .keycloak import start_keycloak
from .layout import (
    REPO,
    STOP_TIMEOUT,
    TIMEOUTS,
    VENV_BIN,
    Interrupted,
    Layout,
    StackError,
    app_env,
    child_env,
    port_free,
    say,
)
from .postgres import _postmaster_pid, start_postgres, stop_postgres
from .procs import (
    Service,
    any_alive,
    has_marker,
    http_status,
    https_status,
    pid_alive,
    run_logged,
    spawn,
    stop_pid,
    stragglers,
    supervisor_alive,
    tail,
    wait_until,
)
from .state import (
    layout_from_state,
    read_state,
    remember_repo,
    resolve_home,
    resolve_layout,
    save_settings,
    write_state,
)


class _SafeStream:
    """stdout/stderr of the supervisor: its output may go to a pipe that closes (`scripts/run |
    tee log`, then Ctrl-C ends tee too) or a terminal that goes away. Writing there fails
    (EPIPE, EIO); that must never keep the supervisor from stopping its services. After the
    first failure the stream's descriptor points to /dev/null and output is dropped."""

    def __init__(self, stream):
        self._stream = stream
        self.broken = False

    def _gone(self) -> None:
        self.broken = True
        try:
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, self._stream.fileno())   # the buffered rest flushes into nothing
            os.close(devnull)
        except (OSError, ValueError):
            pass

    def write(self, text):
        if self.broken:
            return len(text)
        try:
            return self._stream.write(text)
        except OSError:
            self._gone()
            return len(text)

    def flush(self):
        if self.broken:
            return
        try:
            self._stream.flush()
        except OSError:
            self._gone()

    def __getattr__(self, name):
        return getattr(self._stream, name)


def protect_output() -> None:
    if not isinstance(sys.stdout, _SafeStream):
        sys.stdout = _SafeStream(sys.stdout)
    if not isinstance(sys.stderr, _SafeStream):
        sys.stderr = _SafeStream(sys.stderr)


# --------------------------------------------------------------------------------------------
# The stack
# --------------------------------------------------------------------------------------------

def leakctl(layout: Layout | None = None) -> Path:
    path = (layout.venv_bin if layout is not None else VENV_BIN) / "leakctl"
    if not path.exists():
        raise StackError(f"{path} is missing: run scripts/install"
                         + (f" in {layout.repo}" if layout is not None else "") + " first", "setup")
    return path


class Stack:
    def __init__(self, layout: Layout, ports_mode: str = "fixed"):
        self.layout = layout
        self.ports_mode = ports_mode
        self.services: list[Service] = []
        self.timings: dict[str, float] = {}
        self.setup_output = ""

    # -- start --------------------------------------------------------------------------------
    def start(self) -> None:
        layout = self.layout
        t_all = time.monotonic()
        for d in (layout.home, layout.logs_dir):
            d.mkdir(parents=True, exist_ok=True)
        for d in (layout.data_dir, layout.backup_dir, layout.caddy_dir, layout.kc_data_dir):
            d.mkdir(mode=0o700, parents=True, exist_ok=True)   # data: owner only
        if os.geteuid() == 0:
            layout.home.chmod(layout.home.stat().st_mode | 0o011)  # o+x/g+x for PostgreSQL
        save_settings(layout, self.ports_mode)
        base_env = child_env(layout)

        busy = [f"{name} {port}" for name, port in layout.ports.items()
                if (name != "postgres" or layout.db == "postgres") and not port_free(port)]
        if busy:
            raise StackError("ports in use on 127.0.0.1: " + ", ".join(busy)
                             + " (stop what uses them, or pass --ports auto)")

        # 1. secrets
        run_logged(layout, "setup", [leakctl(layout), "secrets", "init"], base_env, timeout=60,
                   cwd=layout.repo)
        say(f"secrets: {layout.secrets_dir}")

        # 2. postgres
        if layout.db == "postgres":
            t = time.monotonic()
            self.services.append(start_postgres(layout))
            self.timings["postgres"] = time.monotonic() - t
            say(f"postgres: ready on 127.0.0.1:{layout.ports['postgres']} "
                f"({self.timings['postgres']:.1f}s)")

        # 3. keycloak
        t = time.monotonic()
        say("keycloak: starting" + (" (dev-file database)" if layout.db == "sqlite" else ""))
        self.services.append(start_keycloak(layout, self.timings))
        self.timings["keycloak"] = time.monotonic() - t
        say(f"keycloak: ready on {layout.keycloak_url} ({self.timings['keycloak']:.1f}s)")

        # 4. setup: migrations, Keycloak service client, first organization
        t = time.monotonic()
        self.setup_output = run_logged(layout, "setup", [leakctl(layout), "setup", "--wait", "300"],
                                       base_env, timeout=TIMEOUTS["setup"], capture_stdout=True,
                                       cwd=layout.repo)
        self.timings["setup"] = time.monotonic() - t
        say(f"setup: done ({self.timings['setup']:.1f}s)")

        # 5. web
        self.start_web()

        # 6. worker
        self.start_worker()

        # 7. caddy
        t = time.monotonic()
        caddy = start_caddy(layout)
        self.services.append(caddy)
        wait_for_caddy(layout, caddy)
        self.timings["caddy"] = time.monotonic() - t
        say(f"caddy: ready on {layout.public_url} ({self.timings['caddy']:.1f}s)")
        self.timings["total"] = time.monotonic() - t_all

    def start_web(self) -> None:
        layout = self.layout
        t = time.monotonic()
        layout.web_metrics_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        web = spawn(layout, "web", [layout.venv_bin / "gunicorn", "-c",
                                    layout.repo / "web" / "gunicorn.conf.py"],
                    child_env(layout, {"LEAKHUB_BIND": f"127.0.0.1:{layout.ports['web']}",
                                       # request counters of gunicorn's worker processes
                                       "PROMETHEUS_MULTIPROC_DIR": str(layout.web_metrics_dir)}),
                    port=layout.ports["web"], cwd=layout.repo)
        self.services.append(web)
        wait_until("web", lambda: http_status(f"{layout.web_url}/readyz"), TIMEOUTS["web"], web)
        self.timings["web"] = time.monotonic() - t
        say(f"web: ready on {layout.web_url} ({self.timings['web']:.1f}s)")

    def start_worker(self) -> None:
        layout = self.layout
        worker = spawn(layout, "worker", [layout.venv_bin / "python", "-m", "leakhub_worker"],
                       child_env(layout), cwd=layout.repo)
        self.services.append(worker)
        time.sleep(2)
        if not worker.alive():
            raise StackError("worker exited during start-up", "worker")
        say("worker: running")

    # -- stop ---------------------------------------------------------------------------------
    def stop(self) -> None:
        for svc in reversed(self.services):
            if svc.kind == "postgres":
                stop_postgres(self.layout, svc)
            elif svc.pid:
                stop_pid(svc.pid, svc.name, proc=svc.proc)
        self.services.clear()

    def summary(self) -> None:
        layout = self.layout
        print(flush=True)
        if self.setup_output.strip():
            print(self.setup_output.rstrip())
            print()
        timings = ", ".join(f"{k} {v:.1f}s" for k, v in self.timings.items())
        show_admin = (f'eval "$({VENV_BIN}/python {REPO}/scripts/stack.py env --home '
                      f'{shlex.quote(str(layout.home))})"; '
                      f'{layout.venv_bin}/leakctl setup show-first-admin')
        print(f"Leakhub is running at {layout.public_url}/\n"
              f"  HTTPS uses Caddy's internal CA; trust its root certificate:\n"
              f"    {layout.ca_cert}\n"
              f"  First sign-in: the organization, e-mail and one-time password of the first\n"
              f"  administrator (printed by `leakctl setup` on first start) are shown with:\n"
              f"    {show_admin}\n"
              f"  Logs: {layout.logs_dir}/\n"
              f"  Start-up: {timings}", flush=True)


def _raise_interrupted(signum, frame):
    raise Interrupted(signal.Signals(signum).name)


def report_failure(layout: Layout, exc: StackError) -> None:
    print(f"stack: error: {exc}", file=sys.stderr, flush=True)
    if exc.service:
        log = layout.log(exc.service)
        print(f"----- last lines of {log} -----\n{tail(log)}\n-----", file=sys.stderr, flush=True)


# --only: the updater (leakhub_host/update.py) replaces web and worker of a running,
# detached stack without touching PostgreSQL, Keycloak and Caddy.
ONLY_SERVICES = ("web", "worker")
SERVICE_ORDER = ("postgres", "keycloak", "web", "worker", "caddy")


def parse_only(value: str | None) -> list[str] | None:
    if value is None:
        return None
    names = {n.strip() for n in value.split(",") if n.strip()}
    if not names or names - set(ONLY_SERVICES):
        raise StackError(f"--only takes {' and/or '.join(ONLY_SERVICES)} separated by commas, "
                         f"got {value!r}")
    return [n for n in ONLY_SERVICES if n in names]


def _running_detached(home: Path) -> dict:
    state = read_state(home)
    if not state or not any_alive(state):
        raise StackError(f"no stack runs with home {home}; start it with: scripts/stack.py up "
                         f"--detach --home {home}")
    sup = state.get("supervisor_pid")
    if sup and sup != os.getpid() and pid_alive(sup):
        raise StackError(f"the stack of {home} runs in the foreground (pid {sup}); --only needs "
                         "a stack started with --detach")
    return state


def _services_from_state(state: dict, home: Path, skip=()) -> list[Service]:
    return [Service(name=s["name"], pid=s.get("pid"), port=s.get("port"),
                    kind=s.get("kind", "process"))
            for s in state.get("services", []) if s["name"] not in skip]


def _ordered(services: list[Service]) -> list[Service]:
    rank = {name: i for i, name in enumerate(SERVICE_ORDER)}
    return sorted(services, key=lambda s: rank.get(s.name, len(rank)))


def _alive_in(state: dict, home: Path, name: str) -> int | None:
    for svc in state.get("services", []):
        pid = svc.get("pid")
        if svc["name"] == name and pid_alive(pid) and has_marker(pid, home):
            return pid
    return None


def cmd_up_only(args, home: Path, only: list[str]) -> int:
    state = _running_detached(home)
    layout = layout_from_state(state)
    if args.repo:
        layout.repo = Path(args.repo).expanduser().resolve()
    busy = [f"{name} (pid {_alive_in(state, home, name)})" for name in only
            if _alive_in(state, home, name)]
    if busy:
        raise StackError(f"already running: {', '.join(busy)}; stop first with: scripts/stack.py "
                         f"down --only {','.join(only)} --home {home}")
    leakctl(layout)   # the release is installed
    stack = Stack(layout)
    kept = _services_from_state(state, home, skip=only)
    try:
        for name in only:
            {"web": stack.start_web, "worker": stack.start_worker}[name]()
    except StackError as exc:
        report_failure(layout, exc)
        say("stopping what was started")
        _shield(stack.stop)
        return 1
    write_state(layout, _ordered(kept + stack.services), state.get("supervisor_pid"))
    remember_repo(layout)
    say(f"{', '.join(only)}: running from {layout.repo}")
    return 0


def cmd_down_only(args, home: Path, only: list[str]) -> int:
    state = _running_detached(home)
    layout = layout_from_state(state)
    for name in reversed(only):
        pid = _alive_in(state, home, name)
        if pid:
            say(f"stopping {name} (pid {pid})")
            stop_pid(pid, name)
    write_state(layout, _services_from_state(state, home, skip=only), state.get("supervisor_pid"))
    say(f"stopped {', '.join(only)} (home {home})")
    return 0


def supervisor_lock(home: Path):
    """An exclusive lock on <home>/supervisor.lock, held by the `up` process for as long as it
    lives (start-up, and the whole foreground run). The kernel drops it when that process ends
    in any way (SIGKILL included), so a free lock means: no supervisor of this home is alive.
    Returns the open file (keep it), or None when another supervisor holds it."""
    fh = open(home / "supervisor.lock", "a+")
    try:
        fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        fh.close()
        if exc.errno in (errno.EWOULDBLOCK, errno.EACCES):
            return None
        raise
    return fh


def clean_orphans(home: Path, state: dict | None) -> None:
    """Stop what a supervisor that is gone (SIGKILL, crash, closed session) left running in this
    home. Only processes carrying this home's marker in their environment (and this home's
    PostgreSQL, by its postmaster.pid) are touched."""
    layout = layout_from_state(state) if state else Layout(home=home)
    left = stragglers(home)
    pg = _postmaster_pid(layout.pg_dir)
    if not left and not (pg and pid_alive(pg)):
        return
    sup = (state or {}).get("supervisor_pid")
    say(f"cleaning up {len(left)} process(es) left by a supervisor that is gone"
        + (f" (pid {sup})" if sup else ""))
    stop_everything(home, state, layout)


def cmd_up(args) -> int:
    home = resolve_home(args.home)
    only = parse_only(args.only)
    if only:
        return cmd_up_only(args, home, only)
    protect_output()
    home.mkdir(parents=True, exist_ok=True)
    lock = supervisor_lock(home)
    state = read_state(home)
    if lock is None or (state and supervisor_alive(state)):
        sup = (state or {}).get("supervisor_pid")
        print(f"stack: error: a stack is starting or runs with home {home}"
              + (f" (supervisor pid {sup})" if sup else "")
              + f"; stop it with: scripts/stack.py down --home {home}", file=sys.stderr)
        return 1
    if state and not state.get("supervisor_pid") and any_alive(state):
        print(f"stack: error: a stack already runs with home {home} (detached); "
              f"stop it with: scripts/stack.py down --home {home}", file=sys.stderr)
        return 1
    # No supervisor holds the lock: whatever of this home still runs is an orphan.
    clean_orphans(home, state)
    (home / "stack.json").unlink(missing_ok=True)
    try:
        return _up_locked(args, home)
    finally:
        lock.close()


def _up_locked(args, home: Path) -> int:
    layout, ports_mode = resolve_layout(args, home)
    if args.keycloak_cluster:
        if layout.db != "postgres":
            say("--keycloak-cluster needs --db postgres (the nodes meet in its database)")
            return 2
        layout.keycloak_cluster = args.keycloak_cluster
    stack = Stack(layout, ports_mode)
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, _raise_interrupted)
    try:
        stack.start()
        write_state(layout, stack.services, None if args.detach else os.getpid())
    except StackError as exc:
        report_failure(layout, exc)
        say("stopping what was started")
        _shield(stack.stop)
        layout.state_file.unlink(missing_ok=True)
        return 1
    except Interrupted as exc:
        say(f"{exc}: stopping what was started")
        _shield(stack.stop)
        layout.state_file.unlink(missing_ok=True)
        return 130
    except BaseException:
        _shield(stack.stop)
        layout.state_file.unlink(missing_ok=True)
        raise
    stack.summary()
    if args.detach:
        print(f"  Stop it with: {VENV_BIN}/python {REPO}/scripts/stack.py down "
              f"--home {layout.home}", flush=True)
        return 0

    status = 0
    try:
        print("  Press Ctrl-C to stop.", flush=True)
        while True:
            dead = [s for s in stack.services if not s.alive()]
            if dead:
                svc = dead[0]
                report_failure(layout, StackError(f"{svc.name} exited unexpectedly", svc.name))
                status = 1
                break
            time.sleep(1)
    except Interrupted as exc:
        say(f"{exc}: stopping")
    except BaseException:
        status = 1
        raise
    finally:
        # Whatever ended the loop (a signal, a failed write, any error), the services stop.
        say("stopping services")
        _shield(stack.stop)
        layout.state_file.unlink(missing_ok=True)
        say("stopped")
    return status


def _shield(func) -> None:
    """Run `func` with SIGINT/SIGTERM ignored (a second Ctrl-C must not abort the clean-up)."""
    old = {s: signal.signal(s, signal.SIG_IGN)
           for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}
    try:
        func()
    finally:
        for s, h in old.items():
            signal.signal(s, h)


def cmd_down(args) -> int:
    home = resolve_home(args.home)
    only = parse_only(args.only)
    if only:
        return cmd_down_only(args, home, only)
    state = read_state(home)
    layout = layout_from_state(state) if state else Layout(home=home)
    protect_output()
    stop_everything(home, state, layout)
    say(f"stopped (home {home})")
    return 0


def stop_everything(home: Path, state: dict | None, layout: Layout) -> None:
    """The foreground supervisor (asked to stop), then every service of `state`, PostgreSQL,
    and any process left with this home's marker; stack.json goes."""
    if state:
        sup = supervisor_alive(state)
        if sup:
            say(f"asking the foreground supervisor (pid {sup}) to stop")
            os.kill(sup, signal.SIGTERM)
            deadline = time.monotonic() + 4 * STOP_TIMEOUT
            while pid_alive(sup) and time.monotonic() < deadline:
                time.sleep(0.3)
        for svc in reversed(state.get("services", [])):
            pid = svc.get("pid")
            if svc.get("kind") == "postgres":
                if pid_alive(_postmaster_pid(layout.pg_dir)):
                    say("stopping postgres")
                stop_postgres(layout)
            elif pid and pid_alive(pid) and has_marker(pid, home):
                say(f"stopping {svc['name']} (pid {pid})")
                stop_pid(pid, svc["name"])
    stop_postgres(layout)   # also when stack.json is gone but the postmaster is not
    left = stragglers(home)
    if left:
        say(f"stopping {len(left)} straggler process(es): {', '.join(map(str, left))}")
        for pid in left:
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and any(pid_alive(p) for p in left):
            time.sleep(0.2)
        for pid in left:
            if pid_alive(pid):
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
    (home / "stack.json").unlink(missing_ok=True)


def cmd_status(args) -> int:
    home = resolve_home(args.home)
    state = read_state(home)
    if not state:
        print(f"not running (no {home / 'stack.json'})")
        return 3
    if not any_alive(state):
        print(f"not running (stale {home / 'stack.json'}: none of its processes is alive)")
        return 3
    layout = layout_from_state(state)
    checks = {
        "postgres": None,
        "keycloak": lambda: http_status(f"{layout.keycloak_mgmt_url}/health/ready"),
        "web": lambda: http_status(f"{layout.web_url}/readyz"),
        "worker": None,
        "caddy": lambda: https_status(layout.hostname, layout.ports["https"], "/healthz",
                                      layout.ca_cert),
    }
    healthy = True
    print(f"home {home}  db {layout.db}  {layout.public_url}/")
    for svc in state.get("services", []):
        alive = pid_alive(svc.get("pid"))
        health = "-"
        if alive and checks.get(svc["name"]):
            try:
                ok, detail = checks[svc["name"]]()
            except Exception as exc:
                ok, detail = False, type(exc).__name__
            health = "healthy" if ok else f"unhealthy ({detail})"
            healthy &= ok
        healthy &= alive
        port = svc.get("port") or ""
        print(f"  {svc['name']:<9} pid {svc.get('pid') or '-':<8} port {port:<6} "
              f"{'running' if alive else 'DEAD':<8} {health}")
    return 0 if healthy else 1


def cmd_env(args) -> int:
    home = resolve_home(args.home)
    state = read_state(home)
    if state:
        layout = layout_from_state(state)
    else:
        layout, _ = resolve_layout(args, home, check_free=False)
    for key, value in app_env(layout).items():
        print(f"export {key}={shlex.quote(value)}")
    return 0


def main(argv=None) -> int:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--home", help="state directory (default $LEAKHUB_HOME or <repo>/var)")
    common.add_argument("--db", choices=("sqlite", "postgres"),
                        help="the app's database; postgres also serves Keycloak (default: what "
                             "this home used last time, else sqlite)")
    common.add_argument("--ports", choices=("fixed", "auto"),
                        help="fixed: https 8443, http 8080, web 8000, keycloak 8180/9000, "
                             "postgres 5433, metrics 9464; auto: free loopback ports, the same "
                             "ones as last time when they are free (default: as last time, "
                             "else fixed)")
    common.add_argument("--hostname",
                        help="public host name in URLs and the certificate (default: as last "
                             "time, else localhost)")
    parser = argparse.ArgumentParser(prog="stack.py", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    up = sub.add_parser("up", parents=[common], help="start the stack (foreground unless --detach)")
    up.add_argument("--detach", action="store_true",
                    help="return once everything is healthy; stop later with `down`")
    up.add_argument("--repo", help="code tree (a release, with its own .venv) to run setup, web "
                                   "and worker from (default: this one)")
    up.add_argument("--only", help="start just these services (web,worker) in the running "
                                   "detached stack, e.g. after `down --only` (updates)")
    up.add_argument("--keycloak-cluster", metavar="ADDR:PORT",
                    help="run Keycloak as the first node of a cluster (distributed caches, "
                         "discovery through its PostgreSQL; needs --db postgres), its cluster "
                         "transport on ADDR:PORT; bench/rehearsal_multinode.py adds the others")
    down = sub.add_parser("down", parents=[common], help="stop the stack of --home")
    down.add_argument("--only", help="stop just these services (web,worker); the rest runs on")
    sub.add_parser("status", parents=[common], help="show processes and health")
    sub.add_parser("env", parents=[common], help="print `export K=V` lines for leakctl")
    args = parser.parse_args(argv)
    try:
        command = {"up": cmd_up, "down": cmd_down, "status": cmd_status, "env": cmd_env}
        return command[args.command](args)
    except StackError as exc:
        print(f"stack: error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())

