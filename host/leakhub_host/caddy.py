"""The native stack's Caddy: the same caddy/Caddyfile as Docker Compose, bound to 127.0.0.1,
with Caddy's data (internal CA, certificates) in the home.
"""
from __future__ import annotations

import os
import shutil

from .layout import ADMIN_ALLOW_DEFAULT, CADDYFILE, TIMEOUTS, Layout, StackError, child_env
from .procs import Service, https_status, spawn, wait_until


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


def start_caddy(layout: Layout) -> Service:
    """Caddy in front of web and Keycloak, healthy once /healthz answers through it over HTTPS
    (verified with Caddy's own root certificate)."""
    caddy_bin = shutil.which("caddy")
    if not caddy_bin:
        raise StackError("caddy is not installed (scripts/install installs it)", "caddy")
    caddy = spawn(layout, "caddy", [caddy_bin, "run", "--config", CADDYFILE,
                                    "--adapter", "caddyfile"], caddy_env(layout),
                  port=layout.ports["https"])
    return caddy


def wait_for_caddy(layout: Layout, caddy: Service) -> None:
    wait_until("caddy", lambda: https_status(layout.hostname, layout.ports["https"],
                                             "/healthz", layout.ca_cert),
               TIMEOUTS["caddy"], caddy)
