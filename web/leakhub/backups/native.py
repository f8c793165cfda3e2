"""What a restore needs to know about the services around it.

- Serving: is the web app answering (its /healthz on LEAKHUB_INTERNAL_URL), is Keycloak
  answering, and — on the native stack — does `<home>/stack.json` list live web, worker,
  Keycloak or Caddy processes? A restore refuses while anything serves, unless told to stop it.
- The native stack (scripts/stack.py): `--stop-services` runs `stack.py down`; when
  PostgreSQL is not running, restore starts *only* PostgreSQL through the host tooling's own
  leakhub_host.postgres.start_postgres() (same data directory, roles and init script) and
  stops it afterwards.
  In Docker Compose the operator stops web, worker and Keycloak (`docker compose stop web
  worker keycloak caddy`), keeps postgres running and runs the restore in a one-off container.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import requests

from leakhub_host import layout as host_layout
from leakhub_host.postgres import start_postgres, stop_postgres
from leakhub_host.procs import has_marker, pid_alive

from ..core.errors import LeakhubError

REPO = host_layout.REPO


class NativeStackError(LeakhubError):
    """Starting or stopping part of the native stack failed."""

STACK_PY = REPO / "scripts" / "stack.py"


def stack_home(config) -> Path | None:
    """The native stack's home holding stack.json/settings.json, if this is one."""
    for candidate in (os.environ.get("LEAKHUB_STACK_HOME"), os.environ.get("LEAKHUB_HOME"),
                      str(Path(config.data_dir).parent)):
        if candidate and ((Path(candidate) / "stack.json").exists()
                          or (Path(candidate) / "settings.json").exists()):
            return Path(candidate)
    return None


@dataclass
class Serving:
    services: list[str] = field(default_factory=list)   # e.g. ["web (pid 123)", "keycloak"]
    native_home: Path | None = None

    @property
    def any(self) -> bool:
        return bool(self.services)


def _answers(url: str) -> bool:
    try:
        requests.get(url, timeout=2, allow_redirects=False)
        return True
    except requests.RequestException:
        return False


def serving(config) -> Serving:
    found = Serving(native_home=stack_home(config))
    if found.native_home is not None and (found.native_home / "stack.json").exists():
        try:
            state = json.loads((found.native_home / "stack.json").read_text())
        except (OSError, ValueError):
            state = {}
        for svc in state.get("services", []):
            if svc.get("name") == "postgres":
                continue
            pid = svc.get("pid")
            if STACK_PY.exists() and pid_alive(pid) and has_marker(pid, Path(state["home"])):
                found.services.append(f"{svc['name']} (pid {pid})")
    if not any(s.startswith("web") for s in found.services) \
            and _answers(f"{config.internal_url}/healthz"):
        found.services.append(f"web ({config.internal_url})")
    if not any(s.startswith("keycloak") for s in found.services) \
            and _answers(f"{config.keycloak_url}/realms/master"):
        found.services.append(f"keycloak ({config.keycloak_url})")
    return found


def stop_native_stack(home: Path) -> None:
    proc = subprocess.run([sys.executable, str(STACK_PY), "down", "--home", str(home)],
                          stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=600)
    if proc.returncode != 0:
        raise NativeStackError(
            f"scripts/stack.py down failed: {proc.stderr.strip() or proc.stdout}")


def native_layout(config, home: Path) -> host_layout.Layout:
    """The native stack's layout of `home` (ports from its settings.json) for PostgreSQL."""
    try:
        saved = json.loads((home / "settings.json").read_text())
    except (OSError, ValueError):
        saved = {}
    ports = dict(host_layout.DEFAULT_PORTS)
    ports.update({k: int(v) for k, v in (saved.get("ports") or {}).items()})
    # The port leakctl was told to use wins (DATABASE_URL from `stack.py env`).
    port = urlsplit(config.database_url).port
    if port:
        ports["postgres"] = port
    return host_layout.Layout(home=home, db="postgres",
                              hostname=saved.get("hostname") or "localhost", ports=ports)


class NativePostgres:
    """Start the native stack's PostgreSQL alone (for a restore), stop it again afterwards."""

    def __init__(self, config, home: Path):
        self.config = config
        self.home = home
        self.layout = None
        self.service = None

    def start(self) -> None:
        self.layout = native_layout(self.config, self.home)
        self.layout.logs_dir.mkdir(parents=True, exist_ok=True)
        try:
            self.service = start_postgres(self.layout)
        except host_layout.StackError as exc:
            raise NativeStackError(f"could not start PostgreSQL for the restore: {exc} "
                               f"(see {self.layout.log('postgres')})") from None

    def stop(self) -> None:
        if self.layout is not None:
            stop_postgres(self.layout, self.service)


def can_start_native_postgres(config) -> Path | None:
    """The home whose PostgreSQL restore may start itself, or None (not native / not local)."""
    if not STACK_PY.exists() or not config.database_url.startswith(("postgresql://", "postgres://")):
        return None
    host = urlsplit(config.database_url).hostname
    if host not in ("127.0.0.1", "localhost", "::1"):
        return None
    home = stack_home(config)
    if home is None:
        home_env = os.environ.get("LEAKHUB_HOME")
        home = Path(home_env) if home_env else None
    return home
