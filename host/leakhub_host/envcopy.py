#!/usr/bin/env python3
"""`scripts/leakctl env-copy FROM TO`: give installation TO (e.g. a test environment) the
data of installation FROM (e.g. production): FROM's newest *verified* backup is copied into
TO's backup directory and restored there (TO is stopped for the restore and started again).

Installations are
- natively: native stack homes. A name without "/" means <repo>/var for `prod`/`production`
  and <repo>/var/<name> otherwise (`test` → <repo>/var/test, set up once with
  `scripts/stack.py up --detach --home var/test --ports auto`); a path means that home;
- with Docker Compose: projects in the same folder. `prod` uses `.env`, another name NAME
  uses `.env.NAME` (which sets its own COMPOSE_PROJECT_NAME, ports and host name; see
  compose/README.md "A second installation").

The archive is encrypted to FROM's appliance key: FROM's own leakctl exports its backup
identity (FROM alone can read it: the secret is encrypted with FROM's data key), and it reaches
the restore through a private temporary file (natively) or the one-shot container's stdin and
tmpfs (Compose) — never a log, never TO's disks. TO then holds FROM's data *and* FROM's
application secrets (session key, Keycloak client secrets, backup key), as any restore does;
its own database passwords, data key and public URL stay (Keycloak's redirect URIs follow TO's
URL).

Personal data is masked in TO unless `--no-mask` is given: after TO has started,
`leakctl privacy mask --all --yes` replaces names, e-mail addresses and IP addresses with
stable fakes in Leakhub and in TO's Keycloak (docs/data-protection.md). Users then sign in to
TO as user<id>@example.invalid with their production password. Without `--no-mask`, treat the
test installation as production-grade personal data.
Standard library only (runs with the host's python3).
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

from .layout import REPO, app_env
from .procs import any_alive
from .state import layout_from_state, read_state, resolve_layout
from .update import RunLog, UpdateError, last_json, run


class CopyError(Exception):
    pass


def newest_verified(rows: list) -> dict:
    for row in rows:
        if row.get("verify_status") == "ok":
            return row
    raise CopyError("the source has no verified backup: make one (`leakctl backup create`) and "
                    "let the worker verify it, or run `leakctl backup verify`")


# --------------------------------------------------------------------------------------------
# native
# --------------------------------------------------------------------------------------------

def native_home(name: str, repo: Path = REPO) -> Path:
    if "/" in name or name.startswith("."):
        return Path(name).expanduser().resolve()
    if name in ("prod", "production"):
        return (repo / "var").resolve()
    return (repo / "var" / name).resolve()


class NativeInstallation:
    def __init__(self, home: Path, log: RunLog):
        self.home = home
        self.log = log
        state = read_state(home)
        try:
            saved = json.loads((home / "settings.json").read_text())
        except (OSError, ValueError):
            saved = None
        if state is None and saved is None:
            raise CopyError(f"{home} is not a native stack home (no stack.json or settings.json);"
                            f" set it up once with: scripts/stack.py up --detach --home {home} "
                            "--ports auto")
        if state is not None:
            self.layout = layout_from_state(state)
        else:
            class Args:  # what resolve_layout reads
                db = hostname = ports = repo = None
            self.layout, _mode = resolve_layout(Args, home, check_free=False)
        self.running = state is not None and any_alive(state)

    @property
    def release(self) -> Path:
        return self.layout.repo

    def env(self) -> dict:
        env = {k: v for k, v in os.environ.items() if k not in ("LEAKHUB_VENV", "VIRTUAL_ENV")}
        env.update(app_env(self.layout))
        return env

    def leakctl(self, *args, timeout=3600, quiet_output=False):
        return run([self.release / ".venv" / "bin" / "leakctl", *args], self.log, env=self.env(),
                   cwd=self.release, timeout=timeout, quiet_output=quiet_output)

    def stack_py(self, *args):
        return run([sys.executable, REPO / "scripts" / "stack.py", *args, "--home", self.home],
                   self.log, timeout=1200)


MASK = ("privacy", "mask", "--all", "--yes")


def copy_native(source: str, target: str, log: RunLog, *, start: bool = True,
                mask: bool = True) -> dict:
    src_home, dst_home = native_home(source), native_home(target)
    if src_home == dst_home:
        raise CopyError("source and target are the same installation")
    src = NativeInstallation(src_home, log)
    dst = NativeInstallation(dst_home, log)
    if src.layout.backup_dir.resolve() == dst.layout.backup_dir.resolve():
        raise CopyError("source and target share a backup directory")
    if mask and not start:
        raise CopyError("masking needs the target running (its Keycloak): leave out --no-start, "
                        "or give --no-mask as well")
    backup = newest_verified(last_json(src.leakctl("backup", "list", "--json").stdout))
    log.step(f"newest verified backup of {src_home}: {backup['file']}")
    dst.layout.backup_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    copied = dst.layout.backup_dir / backup["file"]
    tmp = copied.with_name(copied.name + ".part")
    shutil.copyfile(src.layout.backup_dir / backup["file"], tmp)
    os.chmod(tmp, 0o600)
    os.replace(tmp, copied)
    log.step(f"copied to {copied}")
    identity = src.leakctl("backup", "export-key", quiet_output=True).stdout
    log.step(f"restoring into {dst_home}" + (" (stopping it first)" if dst.running else ""))
    with tempfile.TemporaryDirectory(prefix="leakhub-env-copy-") as private:
        key_file = Path(private) / "backup-identity"
        fd = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as out:
            out.write(identity)
        dst.leakctl("backup", "restore", str(copied), "--identity", str(key_file), "--yes",
                    "--stop-services")
    if start:
        log.step(f"starting {dst_home}")
        dst.stack_py("up", "--detach")
    if mask:
        log.step("masking personal data in the copy (leakctl privacy mask --all)")
        dst.leakctl(*MASK)
    return {"source": str(src_home), "target": str(dst_home), "backup": backup["file"],
            "masked": mask}


# --------------------------------------------------------------------------------------------
# Docker Compose (customer hosts; exercised statically here)
# --------------------------------------------------------------------------------------------

def env_file(project: Path, name: str) -> Path:
    return project / (".env" if name in ("prod", "production") else f".env.{name}")


def project_name(path: Path) -> str:
    for line in path.read_text().splitlines():
        if line.startswith("COMPOSE_PROJECT_NAME="):
            return line.split("=", 1)[1].strip()
    raise CopyError(f"{path} does not set COMPOSE_PROJECT_NAME (each installation needs its own)")


def check_names_itself(path: Path) -> None:
    """The app containers read their settings from the file LEAKHUB_ENV_FILE names (default
    `.env`): an installation's own env file other than `.env` must name itself there."""
    named = ".env"
    for line in path.read_text().splitlines():
        if line.startswith("LEAKHUB_ENV_FILE="):
            named = line.split("=", 1)[1].strip() or ".env"
    if Path(named).name != path.name:
        raise CopyError(f"{path.name} must contain LEAKHUB_ENV_FILE={path.name} (otherwise that "
                        f"installation's containers read the settings of {named})")


def copy_compose(project: Path, source: str, target: str, log: RunLog,
                 docker: str = "docker", *, mask: bool = True) -> dict:
    src_env, dst_env = env_file(project, source), env_file(project, target)
    for path in (src_env, dst_env):
        if not path.exists():
            raise CopyError(f"no {path.name} in {project}")
    src_name, dst_name = project_name(src_env), project_name(dst_env)
    if src_name == dst_name:
        raise CopyError(f"{src_env.name} and {dst_env.name} name the same project {src_name!r}")
    for path in (src_env, dst_env):
        check_names_itself(path)

    def compose(env: Path, name: str, *args, input=None, quiet_output=False):
        return run([docker, "compose", "--env-file", env, "-p", name, *args], log, cwd=project,
                   input=input, timeout=3600, quiet_output=quiet_output)

    rows = last_json(compose(src_env, src_name, "exec", "-T", "worker", "leakctl", "backup",
                             "list", "--json").stdout)
    backup = newest_verified(rows)
    log.step(f"newest verified backup of {src_name}: {backup['file']}")
    # The source's worker exports its identity (encrypted at rest with the source's data key,
    # which the target does not have); the target's one-shot container reads it from stdin
    # into its tmpfs /tmp.
    identity = compose(src_env, src_name, "exec", "-T", "worker", "leakctl", "backup",
                       "export-key", quiet_output=True).stdout
    compose(dst_env, dst_name, "stop", "web", "worker", "keycloak", "caddy")
    compose(dst_env, dst_name, "run", "--rm", "-T", "-v", f"{src_name}_backups:/from-backups:ro",
            "setup", "sh", "-c",
            'umask 077 && cat > /tmp/from-identity && cp "/from-backups/$1" '
            '/var/lib/leakhub/backups/ && leakctl backup restore "/var/lib/leakhub/backups/$1" '
            '--identity /tmp/from-identity --yes', "sh", backup["file"], input=identity)
    compose(dst_env, dst_name, "up", "-d")
    if mask:
        log.step("masking personal data in the copy (leakctl privacy mask --all)")
        until_database_answers(lambda: compose(dst_env, dst_name, "exec", "-T", "web",
                                               "leakctl", *MASK), log)
    return {"source": src_name, "target": dst_name, "backup": backup["file"], "masked": mask}


def until_database_answers(step, log: RunLog, *, within: float = 180, pause: float = 5):
    """`step()` again while it fails because the database is not reachable yet: right after
    `up -d` Compose may still be re-creating the target's postgres, and its name did not
    resolve in the web container for a moment (a CI run). Other failures end at once; so does
    a database that stays away for `within` seconds. Masking is idempotent (stable fakes)."""
    deadline = time.monotonic() + within
    while True:
        try:
            return step()
        except UpdateError as exc:
            if "database not reachable" not in str(exc) or time.monotonic() > deadline:
                raise
            log.detail(f"the database is not reachable yet; again in {pause:.0f} s ({exc})")
            time.sleep(pause)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        prog="leakctl env-copy", description="Restore FROM's newest verified backup into TO "
        "(e.g. production into a test installation).")
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument("--native", metavar="REPO", help=argparse.SUPPRESS)
    where.add_argument("--compose", metavar="DIR", help=argparse.SUPPRESS)
    parser.add_argument("source", metavar="FROM", help="prod, a name (var/NAME) or a home path")
    parser.add_argument("target", metavar="TO", help="e.g. test")
    parser.add_argument("--no-start", action="store_true",
                        help="leave TO stopped (native; needs --no-mask)")
    parser.add_argument("--no-mask", action="store_true",
                        help="keep real names, e-mail addresses and IP addresses in TO")
    args = parser.parse_args(argv)
    log = RunLog(None, prefix="env-copy")
    try:
        if args.compose:
            result = copy_compose(Path(args.compose), args.source, args.target, log,
                                  mask=not args.no_mask)
        else:
            result = copy_native(args.source, args.target, log, start=not args.no_start,
                                 mask=not args.no_mask)
    except (CopyError, UpdateError, OSError) as exc:
        print(f"leakctl env-copy: error: {exc}", file=sys.stderr)
        return 1
    print(f"{result['target']} now holds the data of {result['source']} "
          f"(backup {result['backup']}" + ("; personal data masked: users sign in as "
                                            "user<id>@example.invalid)" if result["masked"]
                                            else "; NOT masked: real personal data)"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
