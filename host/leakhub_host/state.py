"""A home's files: stack.json (what runs: written by `up`, read by `down`, `status`, `env`,
the updater and env-copy) and settings.json (db, hostname, ports and release of the last `up`,
the defaults of the next one).
"""
from __future__ import annotations

import json
import os
import time
from pathlib import Path

from .layout import DEFAULT_PORTS, REPO, Layout, StackError, app_env, pick_ports
from .procs import Service, start_ticks


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
