"""The configuration bench/rehearsal_multinode.py generates (issue 17 part 3): Keycloak's
cluster settings, the public caddy/Caddyfile with several nodes, and the internal Caddyfile
standing in for the cluster's Services — adapted by the Caddy on this machine (Debian's 2.6)."""
from __future__ import annotations

import importlib.util
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from leakhub_host.keycloak import cluster_settings
from leakhub_host.layout import CADDYFILE, Layout, StackError

REPO = Path(__file__).resolve().parents[3]


def _rehearsal():
    spec = importlib.util.spec_from_file_location(
        "rehearsal_multinode", REPO / "bench" / "rehearsal_multinode.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module      # its dataclass looks itself up there
    spec.loader.exec_module(module)
    return module


def _proxies(config: dict) -> list[dict]:
    found = []

    def walk(node):
        if isinstance(node, dict):
            if node.get("handler") == "reverse_proxy":
                found.append(node)
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)
    walk(config)
    return found


def _adapt(path: Path, env: dict, tmp_path: Path) -> dict:
    caddy = shutil.which("caddy")
    if not caddy:
        pytest.skip("caddy is not installed (scripts/install installs it)")
    env = {**env, "XDG_DATA_HOME": str(tmp_path), "XDG_CONFIG_HOME": str(tmp_path)}
    proc = subprocess.run([caddy, "adapt", "--config", str(path), "--adapter", "caddyfile"],
                          env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def test_keycloak_cluster_settings():
    assert cluster_settings("127.0.0.1:7801") == {
        "KC_CACHE": "ispn", "KC_CACHE_STACK": "jdbc-ping",
        "KC_CACHE_EMBEDDED_NETWORK_BIND_ADDRESS": "127.0.0.1",
        "KC_CACHE_EMBEDDED_NETWORK_BIND_PORT": "7801"}
    for bad in ("127.0.0.1", ":7800", "127.0.0.1:x"):
        with pytest.raises(StackError, match="ADDR:PORT"):
            cluster_settings(bad)


def test_one_node_default_is_unchanged(tmp_path):
    """Without the load-balancing variables: one upstream each, no fail-over delay, no passive
    exclusion (what compose and the single-node stack had), only idempotent retries allowed."""
    env = {"PATH": "/usr/bin:/bin", "LEAKHUB_HOSTNAME": "leakhub.test"}
    proxies = _proxies(_adapt(CADDYFILE, env, tmp_path))
    assert [p["upstreams"] for p in proxies] == [[{"dial": "keycloak:8080"}],
                                                  [{"dial": "web:8000"}]]
    for proxy in proxies:
        lb = proxy["load_balancing"]
        assert lb.get("try_duration", 0) == 0
        assert lb["retry_match"] == [{"method": ["GET", "HEAD"]}]
        assert "passive" not in proxy["health_checks"]   # 2.6: `fail_duration 0s` = all down
        # idle upstream connections closed before gunicorn's 2 s keep-alive closes them
        assert proxy["transport"]["keep_alive"]["idle_timeout"] == 1_000_000_000
    assert proxies[1]["health_checks"]["active"]["uri"] == "/healthz"


def test_public_caddyfile_with_two_nodes_each(tmp_path):
    rehearsal = _rehearsal()
    layout = Layout(home=tmp_path, db="postgres")
    env = rehearsal.public_caddy_env(layout, web=["127.0.0.1:8001", "127.0.0.1:8002"],
                                     keycloak=["127.0.0.1:8181", "127.0.0.1:8182"])
    proxies = _proxies(_adapt(CADDYFILE, env, tmp_path))
    keycloak, web = proxies
    assert [u["dial"] for u in web["upstreams"]] == ["127.0.0.1:8001", "127.0.0.1:8002"]
    assert [u["dial"] for u in keycloak["upstreams"]] == ["127.0.0.1:8181", "127.0.0.1:8182"]
    assert web["health_checks"]["active"]["uri"] == "/readyz"
    assert keycloak["health_checks"]["active"]["uri"] == "/auth/realms/master"
    for proxy in proxies:
        assert proxy["load_balancing"]["selection_policy"] == {"policy": "round_robin"}
        assert proxy["load_balancing"]["try_duration"] == 5_000_000_000


def test_internal_caddyfile(tmp_path):
    rehearsal = _rehearsal()
    path = tmp_path / "Caddyfile.internal"
    path.write_text(rehearsal.internal_caddyfile(
        keycloak=["127.0.0.1:8181", "127.0.0.1:8182"], web=["127.0.0.1:8001", "127.0.0.1:8002"],
        keycloak_port=9101, web_port=9102))
    config = _adapt(path, {"PATH": "/usr/bin:/bin"}, tmp_path)
    assert config["admin"]["disabled"] is True
    servers = config["apps"]["http"]["servers"]
    assert sorted(s["listen"][0] for s in servers.values()) == ["127.0.0.1:9101",
                                                                 "127.0.0.1:9102"]
    keycloak, web = sorted(_proxies(config), key=lambda p: p["upstreams"][0]["dial"])[::-1]
    assert keycloak["health_checks"]["active"]["uri"] == "/auth/realms/master"
    assert web["health_checks"]["active"]["uri"] == "/healthz"
    assert all(p["load_balancing"]["retry_match"] == [{"method": ["GET", "HEAD"]}]
               for p in (keycloak, web))
