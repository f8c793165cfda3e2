#!/usr/bin/env python3
"""Leakhub's native stack: the compose services as local processes on 127.0.0.1.

    scripts/stack.py up [--detach]   start secrets, postgres, keycloak, setup, web, worker, caddy
    scripts/stack.py down            stop everything of this home (also stragglers)
    scripts/stack.py status          what runs, and is it healthy
    scripts/stack.py env             `export K=V` lines to run leakctl against this stack
    scripts/stack.py up --only web,worker --repo DIR
                                     (re)start just these, from another code tree (a release);
    scripts/stack.py down --only web,worker
                                     stop just these (the updater's steps, ops/update.py)

Common options: --home DIR (default $LEAKHUB_HOME or <repo>/var), --db sqlite|postgres,
--ports fixed|auto, --hostname NAME. `up --repo DIR` runs setup, web, worker (and `leakctl`
through scripts/leakctl) from DIR and its DIR/.venv, a release tree; stack.json records it.

Run it with the project's virtualenv (.venv/bin/python); it uses only the standard library.
Every child runs in its own session with LEAKHUB_STACK_HOME=<home> in its environment, which
is how `down` finds stragglers. Logs go to <home>/logs/<service>.log. Secret values are never
printed or passed on a command line (they travel in environment variables or files).
"""
from __future__ import annotations

import argparse
import errno
import fcntl
import http.client
import json
import os
import shlex
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
VENV = Path(os.environ.get("LEAKHUB_VENV") or REPO / ".venv")
VENV_BIN = VENV / "bin"
KEYCLOAK_ENV_FILE = REPO / "compose" / "keycloak.env"
PG_INIT_SCRIPT = REPO / "compose" / "postgres" / "init-databases.sh"
CADDYFILE = REPO / "caddy" / "Caddyfile"
GUNICORN_CONF = REPO / "web" / "gunicorn.conf.py"
# Password blocklists the realms' passwordBlacklist(<file>) policy names (compose mounts the same
# folder); a runtime SPI option, so no rebuild of Keycloak.
PASSWORD_BLACKLISTS = REPO / "compose" / "keycloak" / "password-blacklists"

DEFAULT_PORTS = {"https": 8443, "http": 8080, "web": 8000, "keycloak": 8180,
                 "keycloak_mgmt": 9000, "postgres": 5433, "metrics": 9464}
ADMIN_ALLOW_DEFAULT = "127.0.0.1/32 ::1/128"
PG_OS_USER = "leakhub"          # PostgreSQL refuses to run as root
MARKER = "LEAKHUB_STACK_HOME"   # set in every child's environment
TIMEOUTS = {"postgres": 90, "keycloak": 420, "setup": 420, "web": 90, "worker": 10, "caddy": 60}
STOP_TIMEOUT = 30

# Keycloak options that `kc.sh build` bakes in (kc.sh build --help-all); a change needs a rebuild.
KC_BUILD_OPTIONS = {
    "KC_DB", "KC_DB_DRIVER", "KC_TRANSACTION_XA_ENABLED", "KC_FEATURES", "KC_FEATURES_DISABLED",
    "KC_HTTP_RELATIVE_PATH", "KC_HTTPS_CLIENT_AUTH", "KC_HEALTH_ENABLED",
    "KC_HTTP_MANAGEMENT_HEALTH_ENABLED", "KC_HTTP_MANAGEMENT_RELATIVE_PATH",
    "KC_HTTPS_MANAGEMENT_CLIENT_AUTH", "KC_LEGACY_OBSERVABILITY_INTERFACE", "KC_METRICS_ENABLED",
    "KC_VAULT", "KC_LOG_MDC_ENABLED", "KC_TELEMETRY_LOGS_ENABLED", "KC_TELEMETRY_METRICS_ENABLED",
    "KC_TRACING_ENABLED", "KC_TRACING_JDBC_ENABLED", "KC_TRACING_SAMPLER_TYPE",
    "KC_EVENT_METRICS_USER_ENABLED", "KC_FIPS_MODE", "KC_OPENAPI_ENABLED", "KC_OPENAPI_UI_ENABLED",
}


class StackError(Exception):
    """A service failed; `service` names it so its log tail can be shown."""

    def __init__(self, message: str, service: str | None = None):
        super().__init__(message)
        self.service = service


class Interrupted(Exception):
    """SIGINT/SIGTERM while starting or running."""


def say(msg: str) -> None:
    print(f"stack: {msg}", flush=True)


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
# Layout and the environment every Leakhub process gets
# --------------------------------------------------------------------------------------------

@dataclass
class Layout:
    home: Path
    db: str = "sqlite"
    hostname: str = "localhost"
    ports: dict = field(default_factory=lambda: dict(DEFAULT_PORTS))
    repo: Path = REPO               # the code tree (release) setup, web and worker run from

    @property
    def venv_bin(self) -> Path:
        return VENV_BIN if self.repo == REPO else self.repo / ".venv" / "bin"

    @property
    def secrets_dir(self) -> Path:
        return self.home / "secrets"

    @property
    def logs_dir(self) -> Path:
        return self.home / "logs"

    @property
    def data_dir(self) -> Path:
        return self.home / "data"

    @property
    def backup_dir(self) -> Path:
        return self.home / "backups"

    @property
    def pg_dir(self) -> Path:
        return self.home / "postgres"

    @property
    def kc_data_dir(self) -> Path:
        return self.home / "keycloak"

    @property
    def kc_dist(self) -> Path:
        return self.home / "keycloak-dist"

    @property
    def caddy_dir(self) -> Path:
        return self.home / "caddy"

    @property
    def ca_cert(self) -> Path:
        return self.caddy_dir / "caddy" / "pki" / "authorities" / "local" / "root.crt"

    @property
    def web_metrics_dir(self) -> Path:
        """Where gunicorn's workers leave request counters for the worker's /metrics."""
        return self.home / "metrics" / "web"

    @property
    def state_file(self) -> Path:
        return self.home / "stack.json"

    @property
    def public_url(self) -> str:
        port = self.ports["https"]
        return f"https://{self.hostname}" + ("" if port == 443 else f":{port}")

    @property
    def web_url(self) -> str:
        return f"http://127.0.0.1:{self.ports['web']}"

    @property
    def keycloak_url(self) -> str:
        return f"http://127.0.0.1:{self.ports['keycloak']}/auth"

    @property
    def keycloak_mgmt_url(self) -> str:
        return f"http://127.0.0.1:{self.ports['keycloak_mgmt']}/auth"

    @property
    def database_url(self) -> str:
        if self.db == "postgres":
            return f"postgresql://leakhub@127.0.0.1:{self.ports['postgres']}/leakhub"
        return f"sqlite:///{self.data_dir / 'leakhub.db'}"

    def log(self, service: str) -> Path:
        return self.logs_dir / f"{service}.log"

    def to_json(self) -> dict:
        return {"home": str(self.home), "db": self.db, "hostname": self.hostname,
                "ports": self.ports, "repo": str(self.repo)}


def read_env_file(path: Path) -> dict[str, str]:
    """KEY=VALUE lines (compose env_file subset: no quotes, # comments)."""
    values = {}
    for number, line in enumerate(path.read_text().splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        key, sep, value = line.partition("=")
        if not sep or not key.strip():
            raise StackError(f"{path}:{number}: expected KEY=VALUE")
        values[key.strip()] = value.strip()
    return values


def app_env(layout: Layout) -> dict[str, str]:
    """The variables leakctl, web and worker read (no secrets: those stay in files)."""
    kc = read_env_file(KEYCLOAK_ENV_FILE)
    return {
        "LEAKHUB_HOME": str(layout.home),
        "LEAKHUB_PUBLIC_URL": layout.public_url,
        # Where Keycloak calls the app (back-channel logout): directly, not through Caddy, whose
        # internal CA Keycloak's JVM does not trust.
        "LEAKHUB_INTERNAL_URL": layout.web_url,
        "DATABASE_URL": layout.database_url,
        "LEAKHUB_DATA_DIR": str(layout.data_dir),
        "LEAKHUB_SECRETS_DIR": str(layout.secrets_dir),
        "LEAKHUB_BACKUP_DIR": str(layout.backup_dir),
        "LEAKHUB_LOG_DIR": str(layout.logs_dir),
        "KEYCLOAK_URL": layout.keycloak_url,
        "KC_BOOTSTRAP_ADMIN_CLIENT_ID": kc.get("KC_BOOTSTRAP_ADMIN_CLIENT_ID", "leakhub-bootstrap"),
        # The worker's Prometheus endpoint (loopback only) and the web's counters it reads.
        "LEAKHUB_METRICS_BIND": f"127.0.0.1:{layout.ports.get('metrics', DEFAULT_PORTS['metrics'])}",
        "LEAKHUB_WEB_METRICS_DIR": str(layout.web_metrics_dir),
        # The admin pages' allow-list: the same value Caddy gets for Keycloak's console.
        "LEAKHUB_ADMIN_ALLOW": os.environ.get("LEAKHUB_ADMIN_ALLOW", ADMIN_ALLOW_DEFAULT),
    }


def child_env(layout: Layout, extra: dict | None = None) -> dict[str, str]:
    env = dict(os.environ)
    env.update(app_env(layout))
    env[MARKER] = str(layout.home)
    env.update(extra or {})
    return env


def read_secret(layout: Layout, name: str) -> str:
    path = layout.secrets_dir / name
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        raise StackError(f"secret {name} is missing in {layout.secrets_dir}", "secrets") from None


# --------------------------------------------------------------------------------------------
# Processes
# --------------------------------------------------------------------------------------------

def pid_alive(pid: int | None) -> bool:
    """True for a running process (zombies count as dead: nobody may reap detached children)."""
    if not pid:
        return False
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return False
    return stat.rsplit(")", 1)[-1].split()[0] not in ("Z", "X")


def start_ticks(pid: int | None) -> int | None:
    """The process's start time (clock ticks since boot, /proc/PID/stat field 22): with the pid
    it names one process, even after the pid is reused."""
    if not pid:
        return None
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        return int(stat.rsplit(")", 1)[-1].split()[19])
    except (OSError, ValueError, IndexError):
        return None


def supervisor_alive(state: dict) -> int | None:
    """The pid of the foreground supervisor recorded in `state` if that very process still runs
    (same start time; older state files: a stack.py command line), else None."""
    pid = state.get("supervisor_pid")
    if not pid or pid == os.getpid() or not pid_alive(pid):
        return None
    if state.get("supervisor_start") is not None:
        return pid if start_ticks(pid) == state["supervisor_start"] else None
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return None
    return pid if b"stack.py" in cmdline else None


def has_marker(pid: int, home: Path) -> bool:
    try:
        environ = Path(f"/proc/{pid}/environ").read_bytes()
    except OSError:
        return False
    return f"{MARKER}={home}".encode() in environ.split(b"\0")


def tail(path: Path, lines: int = 30) -> str:
    try:
        with open(path, "rb") as fh:
            fh.seek(0, os.SEEK_END)
            size = fh.tell()
            fh.seek(max(0, size - 64 * 1024))
            data = fh.read().decode("utf-8", "replace")
    except FileNotFoundError:
        return f"(no log at {path})"
    return "\n".join(data.splitlines()[-lines:])


def open_log(path: Path, title: str):
    path.parent.mkdir(parents=True, exist_ok=True)
    fh = open(path, "ab", buffering=0)
    fh.write(f"\n===== stack.py: {title} at {time.strftime('%Y-%m-%dT%H:%M:%S%z')} =====\n".encode())
    return fh


@dataclass
class Service:
    name: str
    pid: int | None = None
    port: int | None = None
    kind: str = "process"          # "process" (own session) or "postgres" (pg_ctl)
    proc: subprocess.Popen | None = None
    started: float = 0.0

    def alive(self) -> bool:
        if self.proc is not None and self.proc.poll() is not None:
            return False
        return pid_alive(self.pid)

    def to_json(self) -> dict:
        return {"name": self.name, "pid": self.pid, "port": self.port, "kind": self.kind}


def spawn(layout: Layout, name: str, cmd: list[str], env: dict, *, port: int | None = None,
          cwd: Path = REPO, **popen) -> Service:
    log = open_log(layout.log(name), " ".join(shlex.quote(str(c)) for c in cmd))
    try:
        proc = subprocess.Popen([str(c) for c in cmd], env=env, cwd=str(cwd), stdin=subprocess.DEVNULL,
                                stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                                **popen)
    except OSError as exc:
        raise StackError(f"{name}: cannot start {cmd[0]}: {exc}", name) from None
    finally:
        log.close()
    return Service(name=name, pid=proc.pid, port=port, proc=proc, started=time.monotonic())


def run_logged(layout: Layout, name: str, cmd: list[str], env: dict, *, timeout: float,
               cwd: Path = REPO, capture_stdout: bool = False, **popen) -> str:
    """Run a one-shot command, output appended to the service log; return stdout if captured."""
    log = open_log(layout.log(name), " ".join(shlex.quote(str(c)) for c in cmd))
    try:
        proc = subprocess.Popen([str(c) for c in cmd], env=env, cwd=str(cwd), stdin=subprocess.DEVNULL,
                                stdout=subprocess.PIPE if capture_stdout else log, stderr=log,
                                start_new_session=True, **popen)
        try:
            out, _ = proc.communicate(timeout=timeout)
        except BaseException:
            _kill_group(proc.pid, signal.SIGKILL)
            proc.wait()
            raise
    except subprocess.TimeoutExpired:
        raise StackError(f"{name}: {Path(str(cmd[0])).name} did not finish within {timeout:.0f}s",
                         name) from None
    except OSError as exc:
        raise StackError(f"{name}: cannot run {cmd[0]}: {exc}", name) from None
    finally:
        log.close()
    text = out.decode("utf-8", "replace") if out else ""
    if proc.returncode != 0:
        # Captured output is for the operator (it may hold a one-time password): shown, not logged.
        shown = "\n".join(text.splitlines()[-20:])
        raise StackError(f"{name}: {Path(str(cmd[0])).name} exited with status {proc.returncode}"
                         + (f"; its output:\n{shown}" if shown else ""), name)
    return text


def _kill_group(pid: int, sig: int) -> None:
    try:
        os.killpg(pid, sig)
    except (ProcessLookupError, PermissionError):
        try:
            os.kill(pid, sig)
        except (ProcessLookupError, PermissionError):
            pass


def stop_pid(pid: int, name: str, timeout: float = STOP_TIMEOUT, proc=None) -> None:
    """SIGTERM the process group of a session leader, then SIGKILL after `timeout`."""
    if not pid_alive(pid):
        if proc is not None:
            proc.poll()
        return
    _kill_group(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            break
        if not pid_alive(pid):
            break
        time.sleep(0.2)
    else:
        say(f"{name} did not stop within {timeout:.0f}s; killing it")
    _kill_group(pid, signal.SIGKILL)   # also reaches children left in the group
    if proc is not None:
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            pass


def wait_until(name: str, check, timeout: float, service: Service | None = None,
               interval: float = 0.5) -> None:
    deadline = time.monotonic() + timeout
    last = ""
    while True:
        if service is not None and not service.alive():
            raise StackError(f"{name} exited during start-up", name)
        try:
            ok, last = check()
            if ok:
                return
        except Exception as exc:  # not up yet
            last = f"{type(exc).__name__}: {exc}"
        if time.monotonic() > deadline:
            raise StackError(f"{name} not healthy within {timeout:.0f}s (last check: {last})", name)
        time.sleep(interval)


def http_status(url: str, timeout: float = 3) -> tuple[bool, str]:
    parts = url.split("/", 3)
    host, _, port = parts[2].partition(":")
    conn = http.client.HTTPConnection(host, int(port or 80), timeout=timeout)
    try:
        conn.request("GET", "/" + (parts[3] if len(parts) > 3 else ""))
        resp = conn.getresponse()
        resp.read()
        return resp.status == 200, f"HTTP {resp.status}"
    finally:
        conn.close()


def https_status(hostname: str, port: int, path: str, cafile: Path, timeout: float = 5,
                 connect_to: str = "127.0.0.1") -> tuple[bool, str]:
    """GET https://hostname:port/path, connecting to 127.0.0.1, verifying with Caddy's root CA."""
    if not cafile.exists():
        return False, "no CA root certificate yet"
    ctx = ssl.create_default_context(cafile=str(cafile))
    raw = socket.create_connection((connect_to, port), timeout=timeout)
    try:
        tls = ctx.wrap_socket(raw, server_hostname=hostname)
    except BaseException:
        raw.close()
        raise
    conn = http.client.HTTPSConnection(hostname, port, timeout=timeout, context=ctx)
    conn.sock = tls
    try:
        conn.request("GET", path)
        resp = conn.getresponse()
        resp.read()
        return resp.status == 200, f"HTTP {resp.status}"
    finally:
        conn.close()


# --------------------------------------------------------------------------------------------
# Ports
# --------------------------------------------------------------------------------------------

def port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def pick_ports(wanted: str, remembered: dict | None = None, check_free: bool = True) -> dict:
    if wanted == "fixed":
        return dict(DEFAULT_PORTS)
    # auto: reuse the ports this home had last time when they are still free (keeps the public
    # URL, and so Keycloak redirect URIs, stable), otherwise take fresh ones from the kernel.
    remembered = remembered or {}
    if set(DEFAULT_PORTS) - set(remembered) == {"metrics"} and set(remembered) < set(DEFAULT_PORTS):
        # A home from before the metrics port: keep its ports (and so its URLs), add one.
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind(("127.0.0.1", 0))
            remembered = {**remembered, "metrics": sock.getsockname()[1]}
    if set(remembered) == set(DEFAULT_PORTS) and len(set(remembered.values())) == len(remembered) \
            and (not check_free or all(port_free(p) for p in remembered.values())):
        return {k: int(v) for k, v in remembered.items()}
    socks = []
    try:
        for _ in DEFAULT_PORTS:
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.bind(("127.0.0.1", 0))
            socks.append(sock)
        ports = [s.getsockname()[1] for s in socks]
    finally:
        for sock in socks:
            sock.close()
    return dict(zip(DEFAULT_PORTS, ports))


# --------------------------------------------------------------------------------------------
# State file
# --------------------------------------------------------------------------------------------

def write_state(layout: Layout, services: list[Service], supervisor_pid: int | None) -> None:
    state = {
        **layout.to_json(),
        "supervisor_pid": supervisor_pid,
        "supervisor_start": start_ticks(supervisor_pid) if supervisor_pid == os.getpid() else None,
        "started_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "urls": {"public": layout.public_url, "web": layout.web_url,
                 "keycloak": layout.keycloak_url, "keycloak_management": layout.keycloak_mgmt_url},
        "ca_cert": str(layout.ca_cert),
        "logs": str(layout.logs_dir),
        "env": app_env(layout),
        "services": [s.to_json() for s in services],
    }
    tmp = layout.state_file.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(state, indent=2) + "\n")
    os.replace(tmp, layout.state_file)


def read_state(home: Path) -> dict | None:
    try:
        return json.loads((home / "stack.json").read_text())
    except FileNotFoundError:
        return None
    except ValueError:
        raise StackError(f"{home / 'stack.json'} is not valid JSON") from None


def layout_from_state(state: dict) -> Layout:
    ports = {"metrics": DEFAULT_PORTS["metrics"]}   # state files from before the metrics port
    ports.update({k: int(v) for k, v in state["ports"].items()})
    return Layout(home=Path(state["home"]), db=state["db"], hostname=state["hostname"],
                  ports=ports, repo=Path(state.get("repo") or REPO))


# --------------------------------------------------------------------------------------------
# PostgreSQL
# --------------------------------------------------------------------------------------------

def pg_bindir() -> Path:
    candidates = []
    for path in Path("/usr/lib/postgresql").glob("*/bin"):
        if (path / "initdb").exists() and path.parent.name.isdigit():
            candidates.append((int(path.parent.name), path))
    if not candidates:
        raise StackError("PostgreSQL server binaries not found under /usr/lib/postgresql/*/bin "
                         "(scripts/install installs Debian's postgresql)", "postgres")
    return max(candidates)[1]


def pg_run_as() -> dict:
    """Popen arguments that drop root to the unprivileged PostgreSQL user (nothing otherwise)."""
    if os.geteuid() != 0:
        return {}
    import pwd

    try:
        entry = pwd.getpwnam(PG_OS_USER)
    except KeyError:
        subprocess.run(["useradd", "--system", "--user-group", "--no-create-home",
                        "--home-dir", "/nonexistent", "--shell", "/usr/sbin/nologin", PG_OS_USER],
                       check=True, stdout=subprocess.DEVNULL)
        entry = pwd.getpwnam(PG_OS_USER)
    return {"user": entry.pw_uid, "group": entry.pw_gid, "extra_groups": []}


def _check_traversable(path: Path, uid: int) -> None:
    """Every parent of `path` must be searchable by `uid` (0700 temp dirs are not)."""
    import stat

    for parent in reversed(path.parents):
        st = parent.stat()
        ok = (st.st_mode & stat.S_IXUSR) if st.st_uid == uid else (st.st_mode & stat.S_IXOTH)
        if not ok:
            raise StackError(f"PostgreSQL runs as user {PG_OS_USER!r}, which cannot enter {parent}; "
                             f"allow it with: chmod o+x {parent}", "postgres")


def start_postgres(layout: Layout) -> Service:
    bindir = pg_bindir()
    run_as = pg_run_as()
    uid = run_as.get("user", os.geteuid())
    gid = run_as.get("group", os.getegid())
    pgdata = layout.pg_dir
    log_path = layout.log("postgres")
    env = child_env(layout, {"LC_ALL": "C.UTF-8", "LANG": "C.UTF-8"})
    env.pop("PGDATA", None)
    _check_traversable(pgdata, uid)
    log_path.parent.mkdir(parents=True, exist_ok=True)
    log_path.touch()
    os.chown(log_path, uid, gid)

    if not (pgdata / "PG_VERSION").exists():
        if pgdata.exists() and any(pgdata.iterdir()):
            raise StackError(f"{pgdata} exists but is not a PostgreSQL data directory", "postgres")
        pgdata.mkdir(mode=0o700, parents=True, exist_ok=True)
        os.chown(pgdata, uid, gid)
        # initdb reads the superuser password from a file only that user can read.
        fd, pwfile = tempfile.mkstemp(prefix=".pwfile-", dir=layout.home)
        try:
            os.write(fd, (read_secret(layout, "postgres-superuser-password") + "\n").encode())
            os.close(fd)
            os.chown(pwfile, uid, gid)
            run_logged(layout, "postgres",
                       [bindir / "initdb", "-D", pgdata, "-U", "postgres", f"--pwfile={pwfile}",
                        "--auth=scram-sha-256", "--encoding=UTF8", "--locale=C.UTF-8",
                        "--no-instructions"],
                       env, timeout=120, cwd=pgdata, **run_as)
        finally:
            os.unlink(pwfile)
        with open(pgdata / "postgresql.conf", "a") as conf:
            conf.write("\n# Leakhub native stack (scripts/stack.py); the port is given at start.\n"
                       "listen_addresses = '127.0.0.1'\n"
                       "unix_socket_directories = ''\n"
                       "password_encryption = 'scram-sha-256'\n"
                       "log_timezone = 'UTC'\n"
                       "timezone = 'UTC'\n")
        say("postgres: initialized " + str(pgdata))

    if (pgdata / "postmaster.pid").exists():
        # A crash or SIGKILL left it behind; pg_ctl start copes when the pid is gone.
        pid = _postmaster_pid(pgdata)
        if pid and pid_alive(pid):
            raise StackError(f"PostgreSQL already runs on {pgdata} (pid {pid}); "
                             f"run scripts/stack.py down --home {layout.home}", "postgres")

    started = time.monotonic()
    port = layout.ports["postgres"]
    run_logged(layout, "postgres",
               [bindir / "pg_ctl", "start", "-D", pgdata, "-l", log_path, "-w",
                "-t", str(TIMEOUTS["postgres"]), "-o", f"-p {port}"],
               env, timeout=TIMEOUTS["postgres"] + 10, cwd=pgdata, **run_as)
    pid = _postmaster_pid(pgdata)
    svc = Service(name="postgres", pid=pid, port=port, kind="postgres", started=started)

    # Roles and databases: the same script the postgres image runs at first start.
    init_env = child_env(layout, {
        "PATH": f"{bindir}:{os.environ.get('PATH', '/usr/bin:/bin')}",
        "PGHOST": "127.0.0.1", "PGPORT": str(port), "PGUSER": "postgres",
        "PGDATABASE": "postgres", "PGCONNECT_TIMEOUT": "10",
        "PGPASSWORD": read_secret(layout, "postgres-superuser-password"),
        "POSTGRES_LEAKHUB_PASSWORD_FILE": str(layout.secrets_dir / "postgres-leakhub-password"),
        "POSTGRES_KEYCLOAK_PASSWORD_FILE": str(layout.secrets_dir / "postgres-keycloak-password"),
    })
    try:
        run_logged(layout, "postgres", ["bash", PG_INIT_SCRIPT], init_env, timeout=60)
    except StackError:
        stop_postgres(layout, svc)
        raise
    return svc


def _postmaster_pid(pgdata: Path) -> int | None:
    try:
        return int((pgdata / "postmaster.pid").read_text().split("\n", 1)[0])
    except (OSError, ValueError):
        return None


def stop_postgres(layout: Layout, svc: Service | None = None) -> None:
    pgdata = layout.pg_dir
    pid = _postmaster_pid(pgdata) or (svc.pid if svc else None)
    if not pid or not pid_alive(pid):
        return
    try:
        bindir = pg_bindir()
        subprocess.run([str(bindir / "pg_ctl"), "stop", "-D", str(pgdata), "-m", "fast", "-w",
                        "-t", str(STOP_TIMEOUT)], env=child_env(layout), cwd=str(pgdata),
                       stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL, timeout=STOP_TIMEOUT + 10, **pg_run_as())
    except (StackError, subprocess.SubprocessError, OSError):
        pass
    if pid_alive(pid):
        stop_pid(pid, "postgres", timeout=10)


# --------------------------------------------------------------------------------------------
# Keycloak
# --------------------------------------------------------------------------------------------

def fetch_keycloak() -> tuple[Path, Path]:
    """(pristine Keycloak home in the cache, JAVA_HOME) from scripts/fetch-keycloak."""
    try:
        out = subprocess.run(["bash", str(REPO / "scripts" / "fetch-keycloak"), "--print-kc-home",
                              "--print-java-home"], check=True, stdout=subprocess.PIPE,
                             stdin=subprocess.DEVNULL, timeout=900, text=True).stdout.split()
    except (subprocess.SubprocessError, OSError) as exc:
        raise StackError(f"scripts/fetch-keycloak failed: {exc}", "keycloak") from None
    return Path(out[0]), Path(out[1])


def prepare_keycloak_dist(layout: Layout, pristine: Path) -> bool:
    """Give this home its own Keycloak install (kc.sh build writes into it, and Keycloak keeps
    its data dir inside it): the cache copy stays untouched. The big dependency jars are
    hard-linked when possible. Keycloak's data/ is a symlink to <home>/keycloak, so an upgrade
    replaces keycloak-dist and keeps the data. Returns True when a new copy was made."""
    dist = layout.kc_dist
    version = (pristine / "version.txt").read_text()
    if dist.exists() and (dist / "version.txt").exists() \
            and (dist / "version.txt").read_text() == version:
        return False
    tmp = layout.home / f".keycloak-dist.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)

    def link_or_copy(src, dst):
        try:
            os.link(src, dst)
        except OSError:
            shutil.copy2(src, dst)

    lib_lib = pristine / "lib" / "lib"
    # Everything but the jars in lib/lib is copied; those are linked right after.
    shutil.copytree(pristine, tmp, symlinks=True,
                    ignore=lambda d, names: names if Path(d) == lib_lib else [])
    shutil.copytree(lib_lib, tmp / "lib" / "lib", symlinks=True, dirs_exist_ok=True,
                    copy_function=link_or_copy)
    layout.kc_data_dir.mkdir(parents=True, exist_ok=True)
    shutil.rmtree(tmp / "data", ignore_errors=True)
    os.symlink(layout.kc_data_dir, tmp / "data")
    if dist.exists():
        shutil.rmtree(dist)
    os.replace(tmp, dist)
    return True


# `kc.sh build` only rewrites lib/quarkus/ (checked with diff -r against the distribution), and
# its output depends only on the distribution and the build options. A copy of it is kept in the
# user's cache per option set, so a fresh home (each test session) skips the build.
def _build_cache_dir(pristine: Path, build: dict) -> Path:
    import hashlib

    key = hashlib.sha256(json.dumps(build, sort_keys=True).encode()).hexdigest()[:16]
    return pristine.parent / f"{pristine.name}-builds" / key


def restore_keycloak_build(layout: Layout, pristine: Path, build: dict) -> bool:
    cached = _build_cache_dir(pristine, build)
    if not (cached / "options.json").exists():
        return False
    target = layout.kc_dist / "lib" / "quarkus"
    tmp = target.with_name(f"quarkus.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.copytree(cached / "quarkus", tmp)
    shutil.rmtree(target)
    os.replace(tmp, target)
    return True


def save_keycloak_build(layout: Layout, pristine: Path, build: dict) -> None:
    cached = _build_cache_dir(pristine, build)
    if (cached / "options.json").exists():
        return
    tmp = cached.with_name(f"{cached.name}.tmp-{os.getpid()}")
    try:
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        shutil.copytree(layout.kc_dist / "lib" / "quarkus", tmp / "quarkus")
        (tmp / "options.json").write_text(json.dumps(build, sort_keys=True, indent=2) + "\n")
        os.replace(tmp, cached)
    except OSError:   # another stack saved it first, or the cache is read-only: no harm
        shutil.rmtree(tmp, ignore_errors=True)


def keycloak_env(layout: Layout) -> tuple[dict, dict]:
    """(build options, full runtime environment) for kc.sh."""
    settings = read_env_file(KEYCLOAK_ENV_FILE)
    ports = layout.ports
    settings.update({
        "KC_HTTP_HOST": "127.0.0.1",
        "KC_HTTP_PORT": str(ports["keycloak"]),
        "KC_HTTP_MANAGEMENT_PORT": str(ports["keycloak_mgmt"]),
        "KC_HOSTNAME": f"{layout.public_url}/auth",
    })
    secrets = {"KC_BOOTSTRAP_ADMIN_CLIENT_SECRET":
               read_secret(layout, "keycloak-bootstrap-client-secret")}
    if layout.db == "postgres":
        settings.update({
            "KC_DB": "postgres",
            "KC_DB_URL": f"jdbc:postgresql://127.0.0.1:{ports['postgres']}/keycloak",
            "KC_DB_USERNAME": "keycloak",
        })
        secrets["KC_DB_PASSWORD"] = read_secret(layout, "postgres-keycloak-password")
    else:
        # Embedded H2 file database under keycloak-dist/data -> <home>/keycloak.
        settings["KC_DB"] = "dev-file"
        for key in ("KC_DB_URL", "KC_DB_USERNAME", "KC_DB_PASSWORD"):
            settings.pop(key, None)
    build = {k: v for k, v in settings.items() if k in KC_BUILD_OPTIONS}
    env = {k: v for k, v in os.environ.items() if not k.startswith("KC_")}
    env.update(settings)
    env.update(secrets)
    return build, env


def start_keycloak(layout: Layout, timings: dict) -> Service:
    pristine, java_home = fetch_keycloak()
    t0 = time.monotonic()
    if prepare_keycloak_dist(layout, pristine):
        timings["keycloak copy"] = time.monotonic() - t0
    build, env = keycloak_env(layout)
    env.update({"JAVA_HOME": str(java_home), MARKER: str(layout.home)})
    kc_sh = layout.kc_dist / "bin" / "kc.sh"

    stamp = layout.kc_dist / ".leakhub-build.json"
    try:
        built = json.loads(stamp.read_text())
    except (OSError, ValueError):
        built = None
    if built != build:
        t1 = time.monotonic()
        stamp.unlink(missing_ok=True)
        if restore_keycloak_build(layout, pristine, build):
            timings["keycloak build (cached)"] = time.monotonic() - t1
        else:
            say("keycloak: kc.sh build (once per option set; takes a minute)")
            build_env = {k: v for k, v in env.items() if not k.startswith("KC_")}
            build_env.update(build)
            run_logged(layout, "keycloak", [kc_sh, "build"], build_env, timeout=600,
                       cwd=layout.kc_dist)
            save_keycloak_build(layout, pristine, build)
            timings["keycloak build"] = time.monotonic() - t1
        stamp.write_text(json.dumps(build, sort_keys=True) + "\n")

    svc = spawn(layout, "keycloak", [kc_sh, "start", "--optimized",
                                     "--spi-password-policy--password-blacklist--blacklists-path="
                                     f"{PASSWORD_BLACKLISTS}"], env,
                port=layout.ports["keycloak"], cwd=layout.kc_dist)
    wait_until("keycloak", lambda: http_status(f"{layout.keycloak_mgmt_url}/health/ready"),
               TIMEOUTS["keycloak"], svc, interval=1)
    timings["keycloak start"] = time.monotonic() - svc.started
    return svc


# --------------------------------------------------------------------------------------------
# The stack
# --------------------------------------------------------------------------------------------

def leakctl(layout: Layout | None = None) -> Path:
    path = (layout.venv_bin if layout is not None else VENV_BIN) / "leakctl"
    if not path.exists():
        raise StackError(f"{path} is missing: run scripts/install"
                         + (f" in {layout.repo}" if layout is not None else "") + " first", "setup")
    return path


def caddy_env(layout: Layout) -> dict:
    return child_env(layout, {
        "XDG_DATA_HOME": str(layout.caddy_dir),
        "XDG_CONFIG_HOME": str(layout.caddy_dir / "config"),
        "LEAKHUB_HOSTNAME": layout.hostname,
        "LEAKHUB_HTTP_PORT": str(layout.ports["http"]),
        "LEAKHUB_HTTPS_PORT": str(layout.ports["https"]),
        "LEAKHUB_BIND": "127.0.0.1",
        "LEAKHUB_WEB_UPSTREAM": f"127.0.0.1:{layout.ports['web']}",
        "LEAKHUB_KEYCLOAK_UPSTREAM": f"127.0.0.1:{layout.ports['keycloak']}",
        "LEAKHUB_TLS": os.environ.get("LEAKHUB_TLS", "internal"),
        "LEAKHUB_ADMIN_ALLOW": os.environ.get("LEAKHUB_ADMIN_ALLOW", ADMIN_ALLOW_DEFAULT),
        "LEAKHUB_APP_ALLOW": os.environ.get("LEAKHUB_APP_ALLOW", "0.0.0.0/0 ::/0"),
    })


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
        caddy_bin = shutil.which("caddy")
        if not caddy_bin:
            raise StackError("caddy is not installed (scripts/install installs it)", "caddy")
        caddy = spawn(layout, "caddy", [caddy_bin, "run", "--config", CADDYFILE,
                                        "--adapter", "caddyfile"], caddy_env(layout),
                      port=layout.ports["https"])
        self.services.append(caddy)
        wait_until("caddy", lambda: https_status(layout.hostname, layout.ports["https"],
                                                 "/healthz", layout.ca_cert),
                   TIMEOUTS["caddy"], caddy)
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
                      f'{shlex.quote(str(layout.home))})"; {layout.venv_bin}/leakctl setup show-first-admin')
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


# --only: the updater (web/leakhub/ops/update.py) replaces web and worker of a running,
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
        print(f"  Stop it with: {VENV_BIN}/python {REPO}/scripts/stack.py down --home {layout.home}",
              flush=True)
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
    old = {s: signal.signal(s, signal.SIG_IGN) for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}
    try:
        func()
    finally:
        for s, h in old.items():
            signal.signal(s, h)


def any_alive(state: dict) -> bool:
    home = Path(state["home"])
    if supervisor_alive(state):
        return True
    return any(pid_alive(s.get("pid")) and (s.get("kind") == "postgres" or has_marker(s["pid"], home))
               for s in state.get("services", []))


def stragglers(home: Path) -> list[int]:
    me = {os.getpid(), os.getppid()}
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and int(entry.name) not in me and has_marker(int(entry.name), home):
            if pid_alive(int(entry.name)):
                found.append(int(entry.name))
    return found


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


def save_settings(layout: Layout, ports_mode: str) -> None:
    """Remember db, hostname and ports of this home: the next `up` (and `env`) default to them."""
    path = layout.home / "settings.json"
    path.write_text(json.dumps({"db": layout.db, "hostname": layout.hostname,
                                "ports_mode": ports_mode, "ports": layout.ports,
                                "repo": str(layout.repo)}, indent=2) + "\n")


def remember_repo(layout: Layout) -> None:
    """The next plain `up` of this home runs this release (after an update or a rollback)."""
    path = layout.home / "settings.json"
    try:
        saved = json.loads(path.read_text())
    except (OSError, ValueError):
        return
    saved["repo"] = str(layout.repo)
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(saved, indent=2) + "\n")
    os.replace(tmp, path)


def resolve_layout(args, home: Path, check_free: bool = True) -> tuple[Layout, str]:
    """Options given on the command line win, then what this home used last time, then defaults.
    The release (--repo) is remembered too: after an update, a plain `up` runs the new one."""
    try:
        saved = json.loads((home / "settings.json").read_text())
    except (OSError, ValueError):
        saved = {}
    db = args.db or saved.get("db") or "sqlite"
    hostname = args.hostname or saved.get("hostname") or "localhost"
    mode = args.ports or saved.get("ports_mode") or "fixed"
    ports = pick_ports(mode, saved.get("ports") if saved.get("ports_mode") == mode else None,
                       check_free=check_free)
    repo = Path(getattr(args, "repo", None) or saved.get("repo") or REPO).expanduser().resolve()
    return Layout(home=home, db=db, hostname=hostname, ports=ports, repo=repo), mode


def resolve_home(value: str | None) -> Path:
    home = value or os.environ.get("LEAKHUB_HOME") or str(REPO / "var")
    return Path(home).expanduser().resolve()


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
    down = sub.add_parser("down", parents=[common], help="stop the stack of --home")
    down.add_argument("--only", help="stop just these services (web,worker); the rest runs on")
    sub.add_parser("status", parents=[common], help="show processes and health")
    sub.add_parser("env", parents=[common], help="print `export K=V` lines for leakctl")
    args = parser.parse_args(argv)
    try:
        return {"up": cmd_up, "down": cmd_down, "status": cmd_status, "env": cmd_env}[args.command](args)
    except StackError as exc:
        print(f"stack: error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
