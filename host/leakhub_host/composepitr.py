#!/usr/bin/env python3
"""`scripts/leakctl backup restore --to-time "YYYY-MM-DD HH:MM[:SS]" [--tz ZONE] [--yes]` on a
Docker Compose host: point-in-time recovery of the appliance's PostgreSQL cluster (both
databases, Leakhub's and Keycloak's) with the containers. docs/backups.md, "Docker Compose".

1. checks first, nothing stopped: the worker's leakctl parses the time in ZONE (default: the
   operator organization's time zone), reads the restorable window the postgres container
   publishes and refuses a target in the future, before the window or unparsable;
2. asks (unless --yes), then closes the current WAL segment and waits until it is archived;
3. stops caddy, web, worker and keycloak, then postgres;
4. `pgbackrest restore --type=time --target-action=promote` in a one-shot postgres container
   on the same volumes;
5. starts postgres, waits until it has replayed the WAL and is promoted (a writable primary on
   a new timeline; archiving goes on), then a one-shot setup container migrates Leakhub's
   database forward and writes `backup.restored_to_time` into the audit trail;
6. `docker compose up -d`.

Standard library only (runs with the host's python3).
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

APP_SERVICES = ("caddy", "web", "worker", "keycloak")


class Failed(Exception):
    pass


def say(text: str) -> None:
    print(f"leakctl: {text}", file=sys.stderr, flush=True)


class Compose:
    def __init__(self, folder: Path):
        self.folder = folder

    def run(self, *args: str, timeout: float = 1800, check: bool = True,
            capture: bool = True) -> subprocess.CompletedProcess:
        try:
            proc = subprocess.run(["docker", "compose", *args], cwd=self.folder,
                                  stdin=subprocess.DEVNULL, text=True, timeout=timeout,
                                  capture_output=capture)
        except subprocess.TimeoutExpired:
            raise Failed(f"docker compose {' '.join(args[:2])} did not finish within "
                         f"{timeout:.0f} s") from None
        if check and proc.returncode != 0:
            lines = [ln for ln in ((proc.stderr or "") + (proc.stdout or "")).splitlines()
                     if ln.strip()]
            raise Failed(f"docker compose {' '.join(args[:3])} failed: "
                         + ("\n".join(lines[-6:]) if lines else f"exit {proc.returncode}"))
        return proc

    def running(self, service: str) -> bool:
        proc = self.run("ps", "--status", "running", "-q", service, check=False)
        return proc.returncode == 0 and bool(proc.stdout.strip())


def check(compose: Compose, to_time: str, tz: str | None) -> dict:
    """The worker's leakctl checks the target against the window; changes nothing."""
    args = ["leakctl", "backup", "pitr-check", "--to-time", to_time]
    if tz:
        args += ["--tz", tz]
    if compose.running("worker"):
        cmd = ["exec", "-T", "worker", *args]
    else:
        cmd = ["run", "--rm", "--no-deps", "-T", "worker", *args]
    proc = compose.run(*cmd, check=False, timeout=300)
    if proc.returncode != 0:
        lines = [ln for ln in (proc.stderr + proc.stdout).splitlines() if ln.strip()]
        raise Failed(lines[-1].removeprefix("leakctl: error: ") if lines
                     else f"the check failed (exit {proc.returncode})")
    try:
        return json.loads(proc.stdout)
    except ValueError:
        raise Failed(f"the check gave no JSON: {proc.stdout[-300:]}") from None


def confirm(plan: dict, yes: bool) -> bool:
    w = plan["window"]
    print(f"Restorable from {w['earliest']} to {w['latest']}; target {plan['to_time']} "
          f"(given in {plan['tz']}).")
    if yes:
        return True
    if not sys.stdin.isatty():
        raise Failed("not confirmed: no terminal to ask on; pass --yes")
    answer = input("Replace ALL data of both databases (Leakhub, Keycloak) with their state "
                   "at that time? [y/N] ")
    return answer.strip().lower() in ("y", "yes")


def restore(compose: Compose, plan: dict) -> dict:
    timings: dict[str, float] = {}

    def step(name: str, fn, *args, **kw):
        t0 = time.monotonic()
        out = fn(*args, **kw)
        timings[name] = round(time.monotonic() - t0, 1)
        return out

    say("closing the current WAL segment (everything written until now becomes restorable)")
    step("switch_wal", compose.run, "exec", "-T", "postgres", "/opt/leakhub/pitr.sh",
         "switch-wal", timeout=300)
    say("stopping " + ", ".join(APP_SERVICES))
    step("stop_app", compose.run, "stop", *APP_SERVICES, timeout=600)
    say("stopping postgres")
    step("stop_postgres", compose.run, "stop", "postgres", timeout=300)
    say(f"pgBackRest: restoring the cluster to {plan['target']}")
    step("restore", compose.run, "run", "--rm", "--no-deps", "-T", "--entrypoint", "/bin/bash",
         "postgres", "/opt/leakhub/pitr.sh", "restore", plan["target"], timeout=3600)
    say("starting postgres: replaying the WAL up to the target, then promotion")
    step("start_postgres", compose.run, "up", "-d", "--no-deps", "postgres", timeout=600)
    step("promotion", compose.run, "exec", "-T", "postgres", "/opt/leakhub/pitr.sh",
         "wait-promoted", "900", timeout=960)
    say("migrating Leakhub's database forward and writing the audit event")
    step("audit", compose.run, "run", "--rm", "-T", "setup", "leakctl", "backup",
         "pitr-restored", "--to-time", plan["to_time"], timeout=1800)
    say("starting Leakhub (docker compose up -d)")
    step("up", compose.run, "up", "-d", timeout=2400)
    return {"to_time": plan["to_time"], "window": plan["window"], "seconds": timings}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="leakctl backup restore --to-time",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--compose", required=True, type=Path, help="the bundle's folder")
    parser.add_argument("--to-time", required=True, dest="to_time")
    parser.add_argument("--tz", default=None)
    parser.add_argument("--yes", action="store_true")
    parser.add_argument("--json", action="store_true", dest="as_json")
    parser.add_argument("--stop-services", action="store_true",
                        help="accepted for the native form; the Compose restore always stops "
                             "and starts the services")
    args = parser.parse_args(argv)
    compose = Compose(args.compose)
    try:
        if not compose.running("postgres"):
            raise Failed("postgres is not running: start the installation "
                         "(docker compose up -d) and try again")
        plan = check(compose, args.to_time, args.tz)
        if not confirm(plan, args.yes):
            say("restore cancelled; nothing was changed")
            return 1
        report = restore(compose, plan)
    except Failed as exc:
        say(f"error: {exc}")
        return 1
    if args.as_json:
        print(json.dumps(report, indent=2))
    else:
        print(f"restored both databases to {plan['to_time']}; Leakhub is starting "
              f"(scripts/leakctl status). Steps: "
              + ", ".join(f"{k} {v} s" for k, v in report["seconds"].items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
