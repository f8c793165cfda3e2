"""Where a native stack lives and what every Leakhub process of it is told: the code tree
(REPO), the configuration files shared with Docker Compose, ports, the home's layout, the
environment of leakctl/web/worker, and the error every host tool reports.
"""
from __future__ import annotations

import os
import shutil
import socket
from dataclasses import dataclass, field
from pathlib import Path

# The code tree this package belongs to (host/leakhub_host/ -> the repository or a release).
REPO = Path(__file__).resolve().parents[2]
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
    # Keycloak with clustered caches (`up --keycloak-cluster ADDR:PORT`, PostgreSQL only): the
    # address its cluster transport binds to; None (the default) is one node with local caches.
    # Only the start of Keycloak reads it; it is not kept in stack.json.
    keycloak_cluster: str | None = None

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


def link_or_copy(src, dst) -> None:
    """A hard link where the file system allows one, else a copy (shutil.copytree's
    copy_function for big trees: a Keycloak distribution, a virtualenv)."""
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)


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
        "LEAKHUB_METRICS_BIND":
            f"127.0.0.1:{layout.ports.get('metrics', DEFAULT_PORTS['metrics'])}",
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


