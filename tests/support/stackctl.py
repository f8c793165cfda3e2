"""The native stack as the integration tests see it: started and stopped through
scripts/stack.py (the same command a user runs), described by its <home>/stack.json."""
from __future__ import annotations

import contextlib
import http.client
import io
import json
import os
import re
import socket
import ssl
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import requests
from requests.adapters import HTTPAdapter

REPO = Path(__file__).resolve().parents[2]
VENV_BIN = REPO / ".venv" / "bin"
STACK_PY = REPO / "scripts" / "stack.py"


class StackStartError(RuntimeError):
    """scripts/stack.py up failed; the message carries its output (with the failed service's
    log tail, which stack.py prints)."""


def _stack_py(*args: str, timeout: float) -> subprocess.CompletedProcess:
    # stack.py is stdlib-only; run it with the venv's interpreter like a user would.
    python = VENV_BIN / "python" if (VENV_BIN / "python").exists() else Path(sys.executable)
    return subprocess.run([str(python), str(STACK_PY), *args], stdin=subprocess.DEVNULL,
                          capture_output=True, text=True, timeout=timeout)


class CASession(requests.Session):
    """A Session whose `verify` (the stack's CA) wins over REQUESTS_CA_BUNDLE/CURL_CA_BUNDLE in
    the environment (plain requests lets the environment override Session.verify)."""

    def merge_environment_settings(self, url, proxies, stream, verify, cert):
        settings = super().merge_environment_settings(url, proxies, stream, verify, cert)
        if verify is None:
            settings["verify"] = self.verify
        return settings


class Stack:
    """A running native stack (read from <home>/stack.json)."""

    def __init__(self, home: Path, *, owned: bool):
        self.home = Path(home)
        self.owned = owned          # started by this session -> stopped by it
        self.reload()

    # -- life cycle ----------------------------------------------------------------------------
    @classmethod
    def start(cls, home: Path, *, db: str = "postgres", ports: str = "auto",
              timeout: float = 900) -> Stack:
        try:
            proc = _stack_py("up", "--detach", "--home", str(home), "--db", db, "--ports", ports,
                             timeout=timeout)
        except subprocess.TimeoutExpired as exc:
            _stack_py("down", "--home", str(home), timeout=180)
            raise StackStartError(f"scripts/stack.py up did not return within {timeout:.0f}s\n"
                                  f"{exc.stdout or ''}{exc.stderr or ''}") from None
        if proc.returncode != 0:
            raise StackStartError(f"scripts/stack.py up --detach failed (exit {proc.returncode}; "
                                  f"logs in {Path(home) / 'logs'}):\n{proc.stdout}\n{proc.stderr}")
        return cls(home, owned=True)

    @classmethod
    def attach(cls, home: Path) -> Stack | None:
        """The stack already running in `home`, or None."""
        if not (Path(home) / "stack.json").exists():
            return None
        status = _stack_py("status", "--home", str(home), timeout=60)
        if status.returncode == 3:        # not running
            return None
        if status.returncode != 0:
            raise StackStartError(f"the stack in {home} is not healthy:\n{status.stdout}"
                                  f"{status.stderr}\nstop it with: scripts/stack.py down "
                                  f"--home {home}")
        return cls(home, owned=False)

    def stop(self) -> subprocess.CompletedProcess:
        return _stack_py("down", "--home", str(self.home), timeout=300)

    def status(self) -> subprocess.CompletedProcess:
        return _stack_py("status", "--home", str(self.home), timeout=60)

    def reload(self) -> None:
        self.state = json.loads((self.home / "stack.json").read_text())

    # -- description ---------------------------------------------------------------------------
    @property
    def hostname(self) -> str:
        return self.state["hostname"]

    @property
    def ports(self) -> dict:
        return self.state["ports"]

    @property
    def https_port(self) -> int:
        return int(self.ports["https"])

    @property
    def http_port(self) -> int:
        return int(self.ports["http"])

    @property
    def public_url(self) -> str:
        """https://HOST:PORT (no trailing slash), through Caddy."""
        return self.state["urls"]["public"]

    @property
    def web_url(self) -> str:
        """The app directly (gunicorn on 127.0.0.1), bypassing Caddy."""
        return self.state["urls"]["web"]

    @property
    def internal_url(self) -> str:
        """Where Keycloak reaches the app (back-channel logout): the web port directly."""
        return self.state["env"].get("LEAKHUB_INTERNAL_URL", self.web_url)

    @property
    def keycloak_url(self) -> str:
        """Keycloak's internal base URL, including /auth."""
        return self.state["urls"]["keycloak"]

    @property
    def keycloak_management_url(self) -> str:
        return self.state["urls"]["keycloak_management"]

    @property
    def ca_cert(self) -> Path:
        """Caddy's internal root CA certificate (PEM)."""
        return Path(self.state["ca_cert"])

    @property
    def ca_dir(self) -> Path:
        """The directory with Caddy's root.crt and intermediate.crt."""
        return self.ca_cert.parent

    @property
    def cookie_domain(self) -> str:
        return self.hostname

    @property
    def db(self) -> str:
        return self.state["db"]

    @property
    def logs_dir(self) -> Path:
        return Path(self.state["logs"])

    @property
    def env(self) -> dict:
        """Environment for leakctl against this stack (no secrets: those are files)."""
        env = dict(os.environ)
        env.update(self.state["env"])
        return env

    # -- helpers -------------------------------------------------------------------------------
    def leakctl(self, *args: str, check: bool = True, input: str | None = None,
                timeout: float = 300, env: dict | None = None) -> subprocess.CompletedProcess:
        proc = subprocess.run([str(VENV_BIN / "leakctl"), *map(str, args)],
                              env={**self.env, **(env or {})},
                              input=input, capture_output=True, text=True, timeout=timeout,
                              stdin=None if input is not None else subprocess.DEVNULL)
        if check and proc.returncode != 0:
            raise AssertionError(f"leakctl {' '.join(map(str, args))} exited {proc.returncode}:\n"
                                 f"{proc.stdout}\n{proc.stderr}")
        return proc

    def requests_session(self) -> requests.Session:
        session = CASession()
        session.verify = str(self.ca_cert)
        return session

    def log_tail(self, service: str, lines: int = 50) -> str:
        path = self.logs_dir / f"{service}.log"
        try:
            return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
        except FileNotFoundError:
            return ""

    def __repr__(self) -> str:
        return f"<Stack {self.public_url} home={self.home} db={self.db}>"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def raw_get(host: str, port: int, path: str, cafile: Path, *, source: str = "127.0.0.1"):
    """GET with the path exactly as given (no client-side normalisation of // or ..)."""
    ctx = ssl.create_default_context(cafile=str(cafile))
    raw = socket.create_connection(("127.0.0.1", port), timeout=10, source_address=(source, 0))
    conn = http.client.HTTPSConnection(host, port, timeout=10, context=ctx)
    conn.sock = ctx.wrap_socket(raw, server_hostname=host)
    try:
        conn.request("GET", path)
        resp = conn.getresponse()
        resp.read()
        return resp.status, dict(resp.getheaders())
    finally:
        conn.close()


OUTSIDE = "127.0.0.2"   # all of 127.0.0.0/8 is loopback on Linux, but not in the allow list


class SourceAddressAdapter(HTTPAdapter):
    """Connect from a chosen local address (e.g. 127.0.0.2)."""

    def __init__(self, source: str, **kwargs):
        self.source = source
        super().__init__(**kwargs)

    def init_poolmanager(self, *args, **kwargs):
        kwargs["source_address"] = (self.source, 0)
        super().init_poolmanager(*args, **kwargs)


def session_from(stack, source: str) -> requests.Session:
    http_ = stack.requests_session()
    http_.mount("https://", SourceAddressAdapter(source))
    http_.mount("http://", SourceAddressAdapter(source))
    return http_


@contextlib.contextmanager
def second_caddy(stack: Stack, workdir: Path, *, ca: Path | None = None,
                 https_port: int | None = None, http_port: int | None = None,
                 **env_overrides):
    """Another Caddy from caddy/Caddyfile in front of the stack's web and Keycloak, on free
    ports (or the given ones), with other settings (allow lists, TLS mode). Yields
    (https_port, CA file to trust): the given `ca`, or this Caddy's own internal CA."""
    https_port, http_port = https_port or free_port(), http_port or free_port()
    env = dict(os.environ,
               XDG_DATA_HOME=str(workdir / "data"), XDG_CONFIG_HOME=str(workdir / "config"),
               LEAKHUB_HOSTNAME=stack.hostname, LEAKHUB_HTTPS_PORT=str(https_port),
               LEAKHUB_HTTP_PORT=str(http_port), LEAKHUB_BIND="127.0.0.1",
               LEAKHUB_WEB_UPSTREAM=stack.web_url.split("//", 1)[1],
               LEAKHUB_KEYCLOAK_UPSTREAM=stack.keycloak_url.split("//", 1)[1].split("/", 1)[0])
    env.update(env_overrides)
    log_path = workdir / "caddy.log"
    trusted = ca or workdir / "data" / "caddy" / "pki" / "authorities" / "local" / "root.crt"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(["caddy", "run", "--config", str(REPO / "caddy" / "Caddyfile"),
                                 "--adapter", "caddyfile"], env=env, stdout=log,
                                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        try:
            deadline = time.monotonic() + 30
            while True:
                try:
                    if trusted.exists() and raw_get(stack.hostname, https_port, "/healthz",
                                                    trusted)[0] == 200:
                        break
                except OSError:
                    pass
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("second Caddy did not start:\n"
                                       + log_path.read_text(errors="replace")[-3000:])
                time.sleep(0.3)
            yield https_port, trusted
        finally:
            stop(proc)


# -- earlier releases of this repository (update rehearsal, restores of older backups) ---------

def stop(proc: subprocess.Popen, timeout: float = 15) -> None:
    """SIGTERM, then SIGKILL if the process has not ended within `timeout` seconds."""
    proc.terminate()
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def git(repo, *args, check=True):
    return subprocess.run(["git", "-C", str(repo), *args], check=check, capture_output=True,
                          text=True, timeout=300).stdout.strip()


def schema_head(repo, rev):
    names = git(repo, "ls-tree", "--name-only", f"{rev}:web/leakhub/core/migrations").split()
    return max(int(m.group(1)) for n in names if (m := re.match(r"^m(\d{4})_", n)))


def compiles(repo, rev) -> bool:
    """Every Python file of the app, the worker and the host tooling at `rev` compiles. A
    release is never a commit that cannot start; history between releases may hold one (two
    people's halves of one change committed apart), and updating from it proves nothing."""
    archive = subprocess.run(["git", "-C", str(repo), "archive", "--format=tar", rev, "web",
                              "worker", "host"], capture_output=True, check=True, timeout=300)
    with tarfile.open(fileobj=io.BytesIO(archive.stdout)) as tar:
        for member in tar:
            if member.isfile() and member.name.endswith(".py"):
                try:
                    compile(tar.extractfile(member).read(), member.name, "exec")
                except SyntaxError:
                    return False
    return True


def migrations_frozen_since(repo, rev) -> bool:
    """No migration that `rev` has was changed or removed by HEAD (only new ones added). A
    release's migrations are frozen; a commit whose migration later grew (a number claimed
    early in a working session and filled in afterwards) was never released, and an
    installation at it would have recorded the short version as applied."""
    changed = git(repo, "diff", "--name-status", "--no-renames", rev, "HEAD", "--",
                  "web/leakhub/core/migrations").splitlines()
    return all(line.startswith("A") for line in changed if line.strip())


def pick_previous(repo) -> str:
    """The commit to update from: LEAKHUB_UPDATE_FROM, else the newest earlier commit on the
    first-parent line that could have been a release: `leakctl backup`, an older schema, its
    migrations unchanged since, and code that compiles."""
    wanted = os.environ.get("LEAKHUB_UPDATE_FROM")
    if wanted:
        return git(repo, "rev-parse", f"{wanted}^{{commit}}")
    head = schema_head(repo, "HEAD")
    for sha in git(repo, "rev-list", "--first-parent", "HEAD~1").split():
        has_backup = subprocess.run(["git", "-C", str(repo), "cat-file", "-e",
                                     f"{sha}:web/leakhub/backups/cli.py"],
                                    capture_output=True).returncode == 0
        if has_backup and schema_head(repo, sha) < head and migrations_frozen_since(repo, sha) \
                and compiles(repo, sha):
            return sha
    raise LookupError("no earlier commit with `leakctl backup` and an older schema to update from "
                "(set LEAKHUB_UPDATE_FROM)")


def superuser(stack: Stack, dbname: str = "postgres"):
    """A psycopg connection (autocommit) as PostgreSQL's superuser of the session stack."""
    import psycopg

    password = (stack.home / "secrets" / "postgres-superuser-password").read_text().strip()
    return psycopg.connect(host="127.0.0.1", port=int(stack.ports["postgres"]), dbname=dbname,
                           user="postgres", password=password, autocommit=True,
                           connect_timeout=10)


@contextlib.contextmanager
def scratch_database(stack: Stack, name: str):
    """An empty database `name` owned by Leakhub's role on the session stack's PostgreSQL,
    bound to Leakhub's `database` for the duration (schema version 0: migrate it yourself),
    dropped afterwards."""
    from psycopg import sql

    from leakhub.core.db import database, open_database

    with superuser(stack) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {}").format(sql.Identifier(name)))
        conn.execute(sql.SQL("CREATE DATABASE {} OWNER leakhub").format(sql.Identifier(name)))
    url = f"postgresql://leakhub@127.0.0.1:{stack.ports['postgres']}/{name}"
    db = open_database(url, password_file=stack.home / "secrets" / "postgres-leakhub-password")
    saved = database.obj
    database.initialize(db)
    try:
        yield name
    finally:
        if not db.is_closed():
            db.close()
        database.initialize(saved)
        with superuser(stack) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)")
                         .format(sql.Identifier(name)))


def sql(stack: Stack, query: str, *args):
    """One statement on the stack's Leakhub database, PostgreSQL or SQLite (%s placeholders,
    autocommit). Returns the rows of a query, else the number of rows changed."""
    import sqlite3

    import psycopg

    url = stack.env["DATABASE_URL"]
    if url.startswith("sqlite:///"):
        with contextlib.closing(sqlite3.connect(url[len("sqlite:///"):], timeout=30,
                                                isolation_level=None)) as conn:
            cur = conn.execute(query.replace("%s", "?"), args)
            return cur.fetchall() if cur.description else cur.rowcount
    password = (Path(stack.home) / "secrets" / "postgres-leakhub-password").read_text().strip()
    with psycopg.connect(url, password=password, autocommit=True) as conn:
        cur = conn.execute(query, args)
        return cur.fetchall() if cur.description else cur.rowcount
