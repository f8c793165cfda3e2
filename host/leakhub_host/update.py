#!/usr/bin/env python3
"""`scripts/leakctl update [--to VERSION]`: update this installation to another release.

Runs on the host, outside the application it replaces, with nothing but the standard library
(the shim starts it with the native stack's Python or the Docker host's python3):

  1. preflight   free disk space; services healthy (`leakctl status --json` of the installed
                 release); the newest backup verified (verified now when it is not yet); the
                 target newer than the installed release (git ancestry natively, version
                 numbers with Docker: no downgrades) and on a supported path (the database's
                 schema within what the target migrates from);
  2. backup      `leakctl backup create --kind pre-update --json` (the installed release's own
                 backup service: it matches the schema being saved);
  3. fetch       natively `git worktree add <home>/releases/<name> <rev>` and its scripts/install
                 (its .venv is cloned from the running one when requirements.lock is the same,
                 so an offline appliance can update); Docker: LEAKHUB_VERSION in .env and
                 `docker compose pull`;
  4. stop        web and worker (`scripts/stack.py down --only web,worker`; compose stop);
  5. migrate     `leakctl migrate` of the NEW release (under the database-wide lock);
  6. start       web and worker of the new release (`stack.py up --only web,worker --repo`);
  7. health      /readyz 200, Keycloak ready, a worker heartbeat newer than the start
                 (bounded wait, --health-timeout);
  8. record      the Deployment row (`leakctl deployments record`, audit event included).

Any failure after step 4 rolls back: web and worker of the previous release again and, when a
migration had run, the pre-update backup restored first (stack down, `leakctl backup restore
FILE --yes` of the previous release, stack up). The attempt is recorded as failed or
rolled_back with an excerpt of the log; the full log is <home>/logs/update-<time>.log. Exit
status 0 only for a completed update.

An entry that cannot be recorded (rolled back to a release without the deployment log) waits
in <home>/deployments-pending.jsonl and is recorded by the next update.
"""
from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import fcntl
import getpass
import hashlib
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from .layout import REPO, app_env, link_or_copy
from .procs import any_alive, http_status, pid_alive
from .state import layout_from_state, read_state

# The code tree this updater belongs to (its scripts/stack.py drives the native stack).
UPDATER_TREE = REPO
# Where a release keeps this file, newest first (older releases had it inside the app).
UPDATER_PATHS = ("host/leakhub_host/update.py", "web/leakhub/ops/update.py")
# The oldest database schema this release's migrations can bring forward (a release that
# drops old migrations raises it; the updater of an older release reads it from the target).
UPGRADE_FROM_MIN_SCHEMA = 1
MIN_FREE_BYTES = 1 << 30
# `leakctl status` checks that do not stop an update (see status_problems).
NOT_BLOCKING_AN_UPDATE = ("certificate", "backups", "point-in-time recovery")
EXCERPT_LINES = 120
MIGRATION_RE = re.compile(r"^m(\d{4})_\w+\.py$")


class UpdateError(Exception):
    """A step failed; the message is for the operator."""


class Refused(UpdateError):
    """Preflight said no: nothing was changed."""


def utc_now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def iso(t: dt.datetime) -> str:
    return t.astimezone(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


# --------------------------------------------------------------------------------------------
# The run's log: every step and every command's output, to the terminal and a file
# --------------------------------------------------------------------------------------------

class RunLog:
    def __init__(self, path: Path | None, quiet: bool = False, prefix: str = "update"):
        self.prefix = prefix
        self.lines: list[str] = []
        self.path = path
        self.quiet = quiet
        self.fh = None
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            self.fh = open(path, "a", encoding="utf-8")

    def _write(self, line: str, show: bool) -> None:
        stamped = f"{utc_now():%H:%M:%S} {line}"
        self.lines.append(stamped)
        if self.fh:
            self.fh.write(stamped + "\n")
            self.fh.flush()
        if show and not self.quiet:
            print(line, flush=True)

    def step(self, text: str) -> None:
        self._write(f"{self.prefix}: {text}", True)

    def detail(self, text: str) -> None:
        for line in text.rstrip().splitlines():
            self._write(f"  | {line}", False)

    def excerpt(self, lines: int = EXCERPT_LINES) -> str:
        return "\n".join(self.lines[-lines:])

    def close(self) -> None:
        if self.fh:
            self.fh.close()


def run(cmd: list, log: RunLog, *, env: dict | None = None, cwd: Path | None = None,
        timeout: float = 600, input: str | None = None, check: bool = True,
        quiet_output: bool = False) -> subprocess.CompletedProcess:
    """Run a command; its output goes into the log. Raises UpdateError when it fails."""
    shown = " ".join(str(c) for c in cmd)
    log.detail(f"$ {shown}")
    try:
        proc = subprocess.run([str(c) for c in cmd], env=env, cwd=str(cwd) if cwd else None,
                              input=input, capture_output=True, text=True, timeout=timeout,
                              stdin=None if input is not None else subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        raise UpdateError(f"{Path(str(cmd[0])).name} {' '.join(map(str, cmd[1:3]))} did not "
                          f"finish within {timeout:.0f} s") from None
    except OSError as exc:
        raise UpdateError(f"cannot run {cmd[0]}: {exc}") from None
    if not quiet_output:
        log.detail(proc.stdout)
    log.detail(proc.stderr)
    if check and proc.returncode != 0:
        last = (proc.stderr.strip() or proc.stdout.strip()).splitlines()
        raise UpdateError(f"{Path(str(cmd[0])).name} {' '.join(map(str, cmd[1:3]))} failed "
                          f"(exit {proc.returncode})" + (f": {last[-1]}" if last else ""))
    return proc


def last_json(text: str):
    """The last line of `text` that parses as JSON (leakctl --json prints one line)."""
    for line in reversed(text.strip().splitlines()):
        line = line.strip()
        if line.startswith(("{", "[")):
            try:
                return json.loads(line)
            except ValueError:
                continue
    raise UpdateError("expected JSON output, got: " + (text.strip()[-200:] or "nothing"))


def http_ok(url: str, timeout: float = 5) -> tuple[bool, str]:
    """http_status, with a refused or timed-out connection as a failed check."""
    try:
        return http_status(url, timeout)
    except OSError as exc:
        return False, type(exc).__name__


def parse_schema(text: str) -> tuple[int, int] | None:
    """(database version, release head) from `leakctl migrate --status`."""
    m = re.search(r"schema version (\d+) of (\d+)", text)
    return (int(m.group(1)), int(m.group(2))) if m else None


def who() -> str:
    user = os.environ.get("SUDO_USER") or getpass.getuser()
    return f"{user}@{socket.gethostname()}"[:200]


# --------------------------------------------------------------------------------------------
# git
# --------------------------------------------------------------------------------------------

def git(repo: Path, *args: str, check: bool = True) -> str:
    proc = subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True,
                          stdin=subprocess.DEVNULL, timeout=300)
    if check and proc.returncode != 0:
        raise UpdateError(f"git {' '.join(args[:2])} in {repo}: "
                          f"{(proc.stderr.strip() or proc.stdout.strip())[:300]}")
    return proc.stdout.strip()


def describe(repo: Path, rev: str = "HEAD") -> str:
    return git(repo, "describe", "--tags", "--always", rev)


def resolve_rev(repo: Path, rev: str | None) -> str:
    """A commit id for --to (tag, branch or commit); default: the newest version tag."""
    if not rev:
        tags = git(repo, "tag", "--list", "v[0-9]*", "--sort=-v:refname").split()
        if not tags:
            raise Refused("no version tags in the repository: name the version with --to")
        rev = tags[0]
    out = subprocess.run(["git", "-C", str(repo), "rev-parse", "--verify", "--quiet",
                          f"{rev}^{{commit}}"], capture_output=True, text=True, timeout=60)
    if out.returncode != 0:
        raise Refused(f"unknown version {rev!r} in {repo} (fetch it first: git fetch --tags)")
    return out.stdout.strip()


def is_ancestor(repo: Path, older: str, newer: str) -> bool:
    return subprocess.run(["git", "-C", str(repo), "merge-base", "--is-ancestor", older, newer],
                          capture_output=True, timeout=60).returncode == 0


def schema_head_at(repo: Path, commit: str) -> int:
    names = git(repo, "ls-tree", "--name-only", f"{commit}:web/leakhub/core/migrations").split()
    versions = [int(m.group(1)) for n in names if (m := MIGRATION_RE.match(n))]
    if not versions:
        raise Refused(f"{commit[:12]} has no migrations: not a Leakhub release")
    return max(versions)


def min_schema_at(repo: Path, commit: str) -> int:
    text = ""
    for path in UPDATER_PATHS:
        text = git(repo, "show", f"{commit}:{path}", check=False)
        if text:
            break
    m = re.search(r"^UPGRADE_FROM_MIN_SCHEMA\s*=\s*(\d+)", text, re.M)
    return int(m.group(1)) if m else 1


def release_name(repo: Path, commit: str) -> str:
    exact = git(repo, "describe", "--tags", "--exact-match", commit, check=False)
    name = exact if exact else commit[:12]
    return re.sub(r"[^A-Za-z0-9._-]", "_", name) + ("" if not exact else f"-{commit[:8]}")


# --------------------------------------------------------------------------------------------
# Release trees and their virtualenvs (native)
# --------------------------------------------------------------------------------------------

def _same_file(a: Path, b: Path) -> bool:
    try:
        return a.read_bytes() == b.read_bytes()
    except OSError:
        return False


def clone_venv(src: Path, dst: Path, log: RunLog | None = None) -> None:
    """Copy virtualenv `src` to `dst` (hard links where possible) and make it dst's own: the
    absolute paths in bin/ scripts and pyvenv.cfg are rewritten (as new files, never through a
    hard link), the source's editable install of Leakhub is dropped (the release installs its
    own). Gives an offline appliance a release venv when requirements.lock did not change."""
    tmp = dst.with_name(dst.name + ".clone-tmp")
    shutil.rmtree(tmp, ignore_errors=True)

    shutil.copytree(src, tmp, symlinks=True, copy_function=link_or_copy)
    old, new = str(src).encode(), str(dst).encode()
    for path in [*(tmp / "bin").iterdir(), tmp / "pyvenv.cfg"]:
        if path.is_symlink() or not path.is_file():
            continue
        data = path.read_bytes()
        if old in data and b"\0" not in data[:4096]:
            mode = path.stat().st_mode
            path.unlink()
            path.write_bytes(data.replace(old, new))
            path.chmod(mode)
    for site in tmp.glob("lib/python*/site-packages"):
        for entry in site.iterdir():
            name = entry.name.lower()
            if name.startswith("__editable__") and "leakhub" in name or \
                    (name.startswith("leakhub-") and name.endswith(".dist-info")):
                shutil.rmtree(entry) if entry.is_dir() else entry.unlink()
    (tmp / ".leakhub-install.sha256").unlink(missing_ok=True)
    os.replace(tmp, dst)
    if log:
        log.detail(f"cloned {src} -> {dst}")


def prepare_release(tree: Path, source_tree: Path | None, log: RunLog,
                    install_timeout: float = 1500) -> None:
    """Give release `tree` its .venv: cloned from `source_tree`'s when the pinned requirements
    are identical, then the release's own scripts/install (idempotent, quiet when done)."""
    venv = tree / ".venv"
    if not (venv / "bin" / "python").exists() and source_tree is not None \
            and (source_tree / ".venv" / "bin" / "python").exists() \
            and _same_file(tree / "requirements.lock", source_tree / "requirements.lock"):
        clone_venv(source_tree / ".venv", venv, log)
        pip = [venv / "bin" / "python", "-m", "pip", "install", "-q", "--disable-pip-version-check",
               "--no-deps", "-e", tree]
        try:
            run(pip, log, timeout=600)
        except UpdateError:
            run(pip[:-2] + ["--no-build-isolation", "-e", tree], log, timeout=600)
        # The stamp scripts/install keeps: this venv holds exactly these pins and this release.
        stamp = hashlib.sha256((tree / "requirements.lock").read_bytes()
                               + (tree / "pyproject.toml").read_bytes()).hexdigest()
        (venv / ".leakhub-install.sha256").write_text(stamp + "\n")
    env = {k: v for k, v in os.environ.items() if k not in ("LEAKHUB_VENV", "VIRTUAL_ENV")}
    run(["bash", tree / "scripts" / "install"], log, env=env, cwd=tree, timeout=install_timeout)
    if not (venv / "bin" / "leakctl").exists():
        raise UpdateError(f"{tree}/scripts/install did not produce .venv/bin/leakctl")


# --------------------------------------------------------------------------------------------
# One attempt, and what both ways of running Leakhub share
# --------------------------------------------------------------------------------------------

@dataclass
class Attempt:
    uid: str = field(default_factory=lambda: str(uuid.uuid4()))
    started: dt.datetime = field(default_factory=utc_now)
    mode: str = "native"
    from_version: str = ""
    to_version: str = ""
    from_schema: int | None = None
    to_schema: int | None = None
    components: dict = field(default_factory=dict)
    result: str = "failed"
    summary: str = ""
    finished: dt.datetime | None = None

    def entry(self, log: RunLog) -> dict:
        finished = self.finished or utc_now()
        return {"uid": self.uid, "started_at": iso(self.started), "finished_at": iso(finished),
                "who": who(), "mode": self.mode, "from_version": self.from_version,
                "to_version": self.to_version, "from_schema": self.from_schema,
                "to_schema": self.to_schema, "components": self.components,
                "duration_ms": int((finished - self.started).total_seconds() * 1000),
                "result": self.result, "summary": self.summary[:500],
                "log_excerpt": log.excerpt()}


class Updater:
    """What both ways of running Leakhub share: the installed release's leakctl answers the
    status, backup and deployment questions. Subclasses say how to run it and the steps."""

    mode = ""
    log: RunLog
    current = None
    pending_file: Path

    def leakctl(self, tree, *args, check=True, input=None, timeout=900, quiet_output=False):
        raise NotImplementedError

    def installed_label(self) -> str:
        return str(self.current)

    def has_command(self, tree, *words) -> bool:
        return self.leakctl(tree, *words, "--help", check=False, quiet_output=True).returncode == 0

    def schema(self, tree) -> tuple[int, int] | None:
        proc = self.leakctl(tree, "migrate", "--status", check=False)
        return parse_schema(proc.stdout) if proc.returncode == 0 else None

    def status_problems(self, tree) -> list[str]:
        """`leakctl status --json` checks that block an update (certificate warnings, backup age
        and point-in-time recovery do not: the pre-update backup follows, and a PostgreSQL that
        a release before PITR started archives only from its next restart)."""
        proc = self.leakctl(tree, "status", "--json", check=False)
        report = last_json(proc.stdout)
        return [f"{c['name']}: {c['detail']}" for c in report.get("checks", [])
                if not c.get("ok") and c.get("name") not in NOT_BLOCKING_AN_UPDATE]

    def newest_backup_verified(self) -> None:
        if not self.has_command(self.current, "backup", "create"):
            raise Refused(f"the installed release {self.installed_label()} has no `leakctl "
                          "backup`: it cannot make the pre-update backup a rollback needs; "
                          "update it by hand (see docs/operations.md)")
        rows = last_json(self.leakctl(self.current, "backup", "list", "--json").stdout)
        if not rows:
            self.log.step("backups: none yet (the pre-update backup will be the first)")
            return
        newest = rows[0]
        if newest.get("verify_status") == "failed":
            raise Refused(f"the newest backup {newest['file']} failed verification: fix backups "
                          "before updating")
        if newest.get("verify_status") != "ok":
            self.log.step(f"backups: verifying the newest, {newest['file']}")
            proc = self.leakctl(self.current, "backup", "verify", newest["file"], "--json",
                                check=False, timeout=1800)
            if proc.returncode != 0:
                raise Refused(f"the newest backup {newest['file']} did not verify: fix backups "
                              "before updating")
        self.log.step(f"backups: newest {newest['file']} verified")

    def backup(self) -> str:
        out = last_json(self.leakctl(self.current, "backup", "create", "--kind", "pre-update",
                                     "--json", timeout=3600).stdout)
        return out["path"]

    def record(self, tree, entry: dict) -> bool:
        """Store the entry (and any pending ones) through `tree`'s leakctl; False: kept in
        the pending file for the next update."""
        pending = self.pending_file.read_text().splitlines() if self.pending_file.exists() else []
        lines = [line for line in pending if line.strip()] + [json.dumps(entry)]
        if self.has_command(tree, "deployments", "record"):
            proc = self.leakctl(tree, "deployments", "record", input="\n".join(lines) + "\n",
                                check=False)
            if proc.returncode == 0:
                self.pending_file.unlink(missing_ok=True)
                return True
        self.pending_file.write_text("\n".join(lines) + "\n")
        return False


# --------------------------------------------------------------------------------------------
# The native stack
# --------------------------------------------------------------------------------------------

class NativeUpdater(Updater):
    """Updates the native stack of `home` (started with `scripts/stack.py up --detach`)."""

    mode = "native"

    def __init__(self, home: Path, source: Path, log: RunLog, *, health_timeout: float = 180,
                 min_free: int = MIN_FREE_BYTES):
        self.home = home
        self.source = source
        self.log = log
        self.health_timeout = health_timeout
        self.min_free = min_free
        state = read_state(home)
        if not state:
            raise Refused(f"no native stack in {home} (no stack.json): start it with "
                          f"scripts/stack.py up --detach --home {home}")
        self.state = state
        self.layout = layout_from_state(state)
        self.current = self.current_release()
        self.pending_file = home / "deployments-pending.jsonl"

    def installed_label(self) -> str:
        return describe(self.current) if (self.current / ".git").exists() else str(self.current)

    # -- what runs ---------------------------------------------------------------------------
    def current_release(self) -> Path:
        """stack.json's release, else the working directory of the running web (stacks started
        before stack.json recorded it), else this updater's tree."""
        if self.state.get("repo"):
            return Path(self.state["repo"])
        for svc in self.state.get("services", []):
            if svc.get("name") in ("web", "worker") and pid_alive(svc.get("pid")):
                try:
                    return Path(os.readlink(f"/proc/{svc['pid']}/cwd"))
                except OSError:
                    pass
        return UPDATER_TREE

    def env(self) -> dict:
        env = {k: v for k, v in os.environ.items() if k not in ("LEAKHUB_VENV", "VIRTUAL_ENV")}
        env.update(app_env(self.layout))
        return env

    def leakctl(self, tree: Path, *args, check: bool = True, input: str | None = None,
                timeout: float = 900, quiet_output: bool = False) -> subprocess.CompletedProcess:
        return run([tree / ".venv" / "bin" / "leakctl", *args], self.log, env=self.env(),
                   cwd=tree, check=check, input=input, timeout=timeout,
                   quiet_output=quiet_output)

    def stack_py(self, *args, timeout: float = 900) -> subprocess.CompletedProcess:
        return run([sys.executable, UPDATER_TREE / "scripts" / "stack.py", *args,
                    "--home", self.home], self.log, timeout=timeout)


    # -- preflight ---------------------------------------------------------------------------
    def versions(self, target: str) -> tuple[str, str]:
        if not (self.current / ".git").exists():
            raise Refused(f"the installed release {self.current} is not a git checkout")
        return describe(self.current), describe(self.source, target)

    def check_newer(self, target: str) -> None:
        installed = git(self.current, "rev-parse", "HEAD")
        if installed == target:
            raise Refused(f"{describe(self.source, target)} is already installed")
        if is_ancestor(self.source, target, installed):
            raise Refused(f"{describe(self.source, target)} is older than the installed "
                          f"{describe(self.current)}: downgrades are not supported (restore a "
                          "backup made by the older version instead)")
        if not is_ancestor(self.source, installed, target):
            raise Refused(f"{describe(self.source, target)} does not descend from the installed "
                          f"{describe(self.current)}: not a supported update path")

    def disk(self) -> None:
        usage = shutil.disk_usage(self.home)
        if usage.free < self.min_free:
            raise Refused(f"only {usage.free / 2**30:.1f} GiB free in {self.home}; an update "
                          f"needs {self.min_free / 2**30:.1f} GiB (backup, new release)")
        self.log.step(f"disk: {usage.free / 2**30:.1f} GiB free")

    def services_healthy(self) -> None:
        if not any_alive(self.state):
            raise Refused(f"the stack in {self.home} is not running")
        sup = self.state.get("supervisor_pid")
        if sup and pid_alive(sup):
            raise Refused(f"the stack runs in the foreground (pid {sup}); start it with "
                          "`scripts/stack.py up --detach` to update it")
        if self.has_command(self.current, "status"):
            bad = self.status_problems(self.current)
            if bad:
                raise Refused("services are not healthy: " + "; ".join(bad))
        ok, detail = http_ok(f"{self.layout.web_url}/readyz")
        if not ok:
            raise Refused(f"web is not ready ({detail})")
        self.log.step("services: healthy")

    # -- steps -------------------------------------------------------------------------------
    def fetch(self, target: str) -> Path:
        tree = self.home / "releases" / release_name(self.source, target)
        if tree.exists():
            if git(tree, "rev-parse", "HEAD", check=False) != target:
                raise UpdateError(f"{tree} exists but is not {target[:12]}: remove it "
                                  f"(git -C {self.source} worktree remove --force {tree})")
        else:
            tree.parent.mkdir(parents=True, exist_ok=True)
            git(self.source, "worktree", "prune")
            run(["git", "-C", self.source, "worktree", "add", "--detach", tree, target], self.log)
        prepare_release(tree, self.current, self.log)
        return tree

    def stop_app(self) -> None:
        self.stack_py("down", "--only", "web,worker")

    def migrate(self, tree: Path) -> None:
        self.leakctl(tree, "migrate", timeout=3600)

    def start_app(self, tree: Path) -> None:
        self.stack_py("up", "--only", "web,worker", "--repo", tree)
        self.state = read_state(self.home)

    def health(self, tree: Path, since: dt.datetime) -> None:
        """/readyz, Keycloak ready, a worker heartbeat newer than `since`; bounded wait."""
        deadline = time.monotonic() + self.health_timeout
        since_arg = ["--since", iso(since)] if self.has_command(tree, "status", "worker") and \
            "--since" in self.leakctl(tree, "status", "worker", "--help", check=False,
                                      quiet_output=True).stdout else []
        last = ""
        while True:
            checks = [("web", *http_ok(f"{self.layout.web_url}/readyz")),
                      ("keycloak", *http_ok(f"{self.layout.keycloak_mgmt_url}/health/ready"))]
            proc = self.leakctl(tree, "status", "worker", *since_arg, check=False)
            checks.append(("worker", proc.returncode == 0,
                           (proc.stdout.strip() or proc.stderr.strip())[-200:]))
            last = "; ".join(f"{n}: {'ok' if ok else d}" for n, ok, d in checks)
            if all(ok for _n, ok, _d in checks):
                self.log.step(f"health: {last}")
                return
            if time.monotonic() > deadline:
                raise UpdateError(f"not healthy within {self.health_timeout:.0f} s ({last})")
            time.sleep(2)

    def restore(self, tree: Path, backup: str) -> None:
        self.stack_py("down")
        self.leakctl(tree, "backup", "restore", backup, "--yes", timeout=3600)
        self.stack_py("up", "--detach", "--repo", tree)
        self.state = read_state(self.home)


# --------------------------------------------------------------------------------------------
# Docker Compose (written for customer hosts; exercised statically here)
# --------------------------------------------------------------------------------------------

VERSION_RE = re.compile(r"^v?(\d+)\.(\d+)\.(\d+)$")


def version_key(v: str) -> tuple[int, int, int]:
    m = VERSION_RE.match(v.strip())
    if not m:
        raise Refused(f"not a release version: {v!r} (expected e.g. 0.2.0)")
    return tuple(int(x) for x in m.groups())


class ComposeUpdater(Updater):
    """Updates a Docker Compose installation in `project` (the folder with docker-compose.yml
    and .env): LEAKHUB_VERSION selects the image localhost/leakhub:<version>."""

    mode = "compose"

    def __init__(self, project: Path, log: RunLog, *, health_timeout: float = 300,
                 min_free: int = MIN_FREE_BYTES, docker: str = "docker"):
        self.project = project
        self.home = project
        self.log = log
        self.health_timeout = health_timeout
        self.min_free = min_free
        self.docker = docker
        self.env_file = project / ".env"
        if not (project / "docker-compose.yml").exists():
            raise Refused(f"no docker-compose.yml in {project}")
        self.current = self.read_version()
        self.pending_file = project / "deployments-pending.jsonl"

    def compose(self, *args, check=True, input=None, timeout=900, quiet_output=False):
        return run([self.docker, "compose", *args], self.log, cwd=self.project, check=check,
                   input=input, timeout=timeout, quiet_output=quiet_output)

    def read_version(self) -> str:
        text = self.env_file.read_text() if self.env_file.exists() else ""
        m = re.search(r"^LEAKHUB_VERSION=(.*)$", text, re.M)
        if m and m.group(1).strip():
            return m.group(1).strip()
        compose = (self.project / "docker-compose.yml").read_text()
        m = re.search(r"LEAKHUB_VERSION:-([0-9][^}]*)\}", compose)
        return m.group(1) if m else "0.0.0"

    def write_version(self, version: str) -> None:
        text = self.env_file.read_text() if self.env_file.exists() else ""
        line = f"LEAKHUB_VERSION={version}"
        if re.search(r"^#?LEAKHUB_VERSION=.*$", text, re.M):
            text = re.sub(r"^#?LEAKHUB_VERSION=.*$", line, text, count=1, flags=re.M)
        else:
            text = text.rstrip("\n") + ("\n" if text else "") + line + "\n"
        tmp = self.env_file.with_suffix(".tmp")
        tmp.write_text(text)
        if self.env_file.exists():
            os.chmod(tmp, self.env_file.stat().st_mode & 0o777)
        os.replace(tmp, self.env_file)

    def leakctl(self, _tree, *args, check=True, input=None, timeout=900, quiet_output=False):
        # Backups need the backup identity, which only the worker (not web) can read.
        service = "worker" if args and args[0] == "backup" else "web"
        if self.compose("ps", "--status", "running", "-q", service, check=False).stdout.strip():
            return self.compose("exec", "-T", service, "leakctl", *args, check=check,
                                input=input, timeout=timeout, quiet_output=quiet_output)
        return self.compose("run", "--rm", "--no-deps", "-T", "setup", "leakctl", *args,
                            check=check, input=input, timeout=timeout, quiet_output=quiet_output)

    def versions(self, target: str) -> tuple[str, str]:
        return self.current, target

    def check_newer(self, target: str) -> None:
        if version_key(target) == version_key(self.current):
            raise Refused(f"{target} is already installed")
        if version_key(target) < version_key(self.current):
            raise Refused(f"{target} is older than the installed {self.current}: downgrades are "
                          "not supported")

    def disk(self) -> None:
        usage = shutil.disk_usage(self.project)
        if usage.free < self.min_free:
            raise Refused(f"only {usage.free / 2**30:.1f} GiB free; an update needs "
                          f"{self.min_free / 2**30:.1f} GiB")
        self.log.step(f"disk: {usage.free / 2**30:.1f} GiB free")

    def services_healthy(self) -> None:
        bad = self.status_problems(None)
        if bad:
            raise Refused("services are not healthy: " + "; ".join(bad))
        self.log.step("services: healthy")

    def app_image(self, version: str) -> str:
        """The app image docker-compose.yml runs for `version` (its `image:` line)."""
        text = (self.project / "docker-compose.yml").read_text()
        m = re.search(r'image:\s*"?([^"\s]+):\$\{LEAKHUB_VERSION', text)
        return f"{m.group(1) if m else 'localhost/leakhub'}:{version}"

    def bundle_version(self) -> str | None:
        """The version of the code in this folder (its pyproject.toml), if it has one."""
        try:
            text = (self.project / "pyproject.toml").read_text()
        except OSError:
            return None
        m = re.search(r'^version = "(.+)"$', text, re.M)
        return m.group(1) if m else None

    def fetch(self, target: str) -> str:
        """The new image, in this order: already on the host (the offline delivery: `docker
        load -i leakhub-image-<target>.tar`), pulled from the registry the customer mirrors, or
        built from this folder when the folder holds exactly that version. Building another
        version's code under the target's tag would install the old code as the new release,
        so that is refused. .env names the version only while it is being fetched and after;
        a failure puts the installed one back."""
        image = self.app_image(target)
        if self.run_docker("image", "inspect", image).returncode == 0:
            self.log.step(f"image {image} is on this host already (loaded or built); not pulling")
            self.write_version(target)
            return target
        self.write_version(target)
        try:
            try:
                self.compose("pull", "--quiet", "web", "worker", "setup", timeout=3600)
                if self.run_docker("image", "inspect", image).returncode != 0:
                    # compose v1 skips an image it does not find in any registry silently
                    raise UpdateError(f"{image} could not be pulled")
            except UpdateError:
                here = self.bundle_version()
                if here != target:
                    raise UpdateError(
                        f"{image} is not on this host and could not be pulled; load it from "
                        f"the release archive first (tar -xf leakhub-{target}-offline.tar && "
                        f"sha256sum -c SHA256SUMS && docker load -i leakhub-image-{target}.tar)"
                        + (f"; this folder holds {here}, so it cannot be built from here"
                           if here else "")) from None
                self.log.step("the image could not be pulled; building it from this folder")
                self.compose("build", "web", timeout=3600)
        except BaseException:
            self.write_version(self.current)
            raise
        return target

    def run_docker(self, *args):
        return run([self.docker, *args], self.log, cwd=self.project, check=False,
                   timeout=300, quiet_output=True)

    def stop_app(self) -> None:
        self.compose("stop", "web", "worker")

    def migrate(self, tree) -> None:
        self.compose("run", "--rm", "--no-deps", "-T", "setup", "leakctl", "migrate",
                     timeout=3600)

    def start_app(self, tree) -> None:
        self.write_version(tree)        # the new version, or the previous one when rolling back
        self.compose("up", "-d", timeout=1800)

    def health(self, tree, since: dt.datetime) -> None:
        deadline = time.monotonic() + self.health_timeout
        while True:
            proc = self.compose("ps", "--format", "json", check=False, quiet_output=True)
            health = {}
            for line in proc.stdout.strip().splitlines():
                try:
                    items = json.loads(line)
                except ValueError:
                    continue
                for item in items if isinstance(items, list) else [items]:
                    health[item.get("Service")] = item.get("Health") or item.get("State")
            want = ("web", "worker", "keycloak", "caddy", "postgres")
            last = ", ".join(f"{s}: {health.get(s, 'missing')}" for s in want)
            if all(health.get(s) == "healthy" for s in want):
                self.log.step(f"health: {last}")
                return
            if time.monotonic() > deadline:
                raise UpdateError(f"not healthy within {self.health_timeout:.0f} s ({last})")
            time.sleep(5)

    def restore(self, tree, backup: str) -> None:
        self.write_version(tree)        # restore with the previous version's image
        self.compose("stop", "web", "worker", "keycloak", "caddy")
        self.compose("run", "--rm", "-T", "setup", "leakctl", "backup", "restore", backup,
                     "--yes", timeout=3600)
        self.compose("up", "-d", timeout=1800)



# --------------------------------------------------------------------------------------------
# The update, the same for both
# --------------------------------------------------------------------------------------------

def update(updater, to: str | None, *, dry_run: bool = False) -> Attempt:
    log = updater.log
    attempt = Attempt(mode=updater.mode)
    previous = updater.current
    changed = migrated = False
    new = None
    backup_file = None
    try:
        # 1. preflight
        if updater.mode == "native":
            target = resolve_rev(updater.source, to)
            updater.check_newer(target)
        else:
            if not to:
                raise Refused("name the version with --to (e.g. --to 0.2.0)")
            target = to
            updater.check_newer(target)
        attempt.from_version, attempt.to_version = updater.versions(target)
        log.step(f"updating {attempt.from_version} -> {attempt.to_version} ({updater.mode})")
        updater.disk()
        updater.services_healthy()
        schema = updater.schema(previous)
        attempt.from_schema = schema[0] if schema else None
        if updater.mode == "native":
            head, minimum = schema_head_at(updater.source, target), min_schema_at(updater.source,
                                                                                  target)
            if attempt.from_schema is not None and not minimum <= attempt.from_schema <= head:
                raise Refused(f"the database has schema {attempt.from_schema}; "
                              f"{attempt.to_version} migrates from {minimum} to {head}: "
                              "not a supported update path (update through an intermediate "
                              "version)")
        updater.newest_backup_verified()
        if dry_run:
            attempt.result = "ok"
            attempt.summary = (f"dry run: {attempt.from_version} -> {attempt.to_version} passes "
                               "the preflight checks")
            log.step(attempt.summary)
            return attempt

        # 2. backup
        log.step("backup: creating the pre-update backup")
        backup_file = updater.backup()
        attempt.components["backup"] = Path(backup_file).name
        log.step(f"backup: {backup_file}")

        # 3. fetch
        log.step(f"fetch: {attempt.to_version}")
        new = updater.fetch(target)
        log.step(f"fetch: ready ({new})")

        # 4. stop
        log.step("stop: web, worker")
        changed = True
        updater.stop_app()

        # 5. migrate (the new release's migrations, under the database lock)
        log.step("migrate: applying the new release's migrations")
        migrated = True     # from here on the database may have changed
        updater.migrate(new)
        schema = updater.schema(new)
        attempt.to_schema = schema[0] if schema else None
        attempt.components["migrations"] = (list(range(attempt.from_schema + 1,
                                                       attempt.to_schema + 1))
                                            if None not in (attempt.from_schema,
                                                            attempt.to_schema) else None)
        migrated = attempt.to_schema != attempt.from_schema or attempt.to_schema is None

        # 6. start, 7. health gate
        log.step("start: web, worker of the new release")
        started = utc_now()
        updater.start_app(new)
        updater.health(new, started)
        attempt.components.update({"web": attempt.to_version, "worker": attempt.to_version,
                                   "release": str(new)})
        attempt.result = "ok"
        attempt.summary = (f"updated {attempt.from_version} -> {attempt.to_version}"
                           + (f", schema {attempt.from_schema} -> {attempt.to_schema}"
                              if attempt.from_schema != attempt.to_schema else ""))
    except Refused as exc:
        # Nothing was changed: not a deployment (the run's log file keeps the reason).
        attempt.summary = f"refused: {exc}"
        log.step(attempt.summary)
        return attempt
    except (UpdateError, OSError, KeyError, ValueError) as exc:
        failure = f"{type(exc).__name__}: {exc}" if not isinstance(exc, UpdateError) else str(exc)
        log.step(f"FAILED: {failure}")
        attempt.summary = f"failed: {failure}"
        if changed:
            if migrated and attempt.from_schema is not None:
                # A migration that failed in its own transaction left nothing behind; only a
                # changed schema needs the pre-update backup.
                with contextlib.suppress(UpdateError, OSError):
                    now = updater.schema(previous)
                    if now is not None and now[0] == attempt.from_schema:
                        log.step(f"the schema is still {now[0]}: no restore needed")
                        migrated = False
            attempt.result = rollback(updater, previous, backup_file, migrated, attempt)
    attempt.finished = utc_now()
    # 8. record (through whichever release serves now)
    serving = new if attempt.result == "ok" else previous
    if attempt.result != "ok" and not attempt.from_version:
        attempt.from_version = attempt.from_version or str(previous)
    try:
        recorded = updater.record(serving, attempt.entry(log))
    except (UpdateError, OSError) as exc:
        log.step(f"could not record the deployment: {exc}")
        recorded = False
    if not recorded:
        log.step("deployment entry kept in deployments-pending.jsonl (recorded by the next "
                 "update)")
    return attempt


def rollback(updater, previous, backup_file, migrated: bool, attempt: Attempt) -> str:
    log = updater.log
    log.step(f"rollback: back to {attempt.from_version}"
             + (" with the pre-update backup restored" if migrated else ""))
    try:
        if migrated:
            if not backup_file:
                raise UpdateError("no pre-update backup to restore")
            updater.restore(previous, backup_file)
        else:
            with contextlib.suppress(UpdateError):
                updater.stop_app()
            updater.start_app(previous)
        updater.health(previous, utc_now())
    except (UpdateError, OSError) as exc:
        log.step(f"ROLLBACK FAILED: {exc}")
        attempt.summary += f"; rollback failed: {exc}"
        return "failed"
    attempt.summary += (f"; rolled back to {attempt.from_version}"
                        + (" (pre-update backup restored)" if migrated else ""))
    return "rolled_back"


@contextlib.contextmanager
def update_lock(home: Path):
    home.mkdir(parents=True, exist_ok=True)
    with open(home / ".update.lock", "a+") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise Refused(f"another update of {home} is running") from None
        yield


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        prog="leakctl update", description="Update Leakhub to another release: preflight, "
        "pre-update backup, new release, migrations, health gate; rolls back on failure.")
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--home", help="native stack home (default $LEAKHUB_HOME or <repo>/var)")
    where.add_argument("--compose", metavar="DIR", help="Docker Compose project folder")
    parser.add_argument("--to", help="version to install: a git tag, branch or commit natively "
                                     "(default: the newest v* tag); an image version with "
                                     "Docker (e.g. 0.2.0)")
    parser.add_argument("--source", help="git repository holding the releases (native; default: "
                                         "the one this updater belongs to)")
    parser.add_argument("--dry-run", action="store_true", help="only run the preflight checks")
    parser.add_argument("--health-timeout", type=float, default=None,
                        help="seconds to wait for the new release to be healthy "
                             "(native 180, Docker 300)")
    parser.add_argument("--min-free-gib", type=float, default=MIN_FREE_BYTES / 2**30,
                        help="free disk space required (GiB)")
    parser.add_argument("--json", action="store_true", help="print the deployment entry as JSON")
    args = parser.parse_args(argv)

    stamp = f"{utc_now():%Y%m%dT%H%M%SZ}"
    min_free = int(args.min_free_gib * 2**30)
    try:
        if args.compose:
            home = Path(args.compose).resolve()
            log = RunLog(home / "update-logs" / f"update-{stamp}.log", quiet=args.json)
            kwargs = {"health_timeout": args.health_timeout or 300, "min_free": min_free}
            make = lambda: ComposeUpdater(home, log, **kwargs)  # noqa: E731
        else:
            home = Path(args.home or os.environ.get("LEAKHUB_HOME")
                        or UPDATER_TREE / "var").expanduser().resolve()
            log = RunLog(home / "logs" / f"update-{stamp}.log", quiet=args.json)
            source = Path(args.source).resolve() if args.source else UPDATER_TREE
            kwargs = {"health_timeout": args.health_timeout or 180, "min_free": min_free}
            make = lambda: NativeUpdater(home, source, log, **kwargs)  # noqa: E731
        with update_lock(home):
            updater = make()
            attempt = update(updater, args.to, dry_run=args.dry_run)
    except Refused as exc:
        print(f"leakctl update: refused: {exc}", file=sys.stderr)
        return 1
    entry = attempt.entry(log)
    log.close()
    if args.json:
        print(json.dumps(entry))
    else:
        mark = {"ok": "OK", "rolled_back": "ROLLED BACK", "failed": "FAILED"}[attempt.result]
        if attempt.summary.startswith("refused"):
            mark = "REFUSED"
        print(f"\n{mark}: {attempt.summary} ({entry['duration_ms'] / 1000:.1f} s)\n"
              f"  log: {log.path}", flush=True)
    return 0 if attempt.result == "ok" else 1


if __name__ == "__main__":
    sys.exit(main())
