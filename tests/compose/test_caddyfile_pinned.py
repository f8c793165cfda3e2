"""caddy/Caddyfile against the Caddy version docker-compose.yml pins (caddy:2.11.7-alpine):
Caddy v2.11.7 built with Go from the module proxy (tests/compose/composeharness.py, cached),
not only Debian's 2.6 that the native stack runs. Each TLS mode compose/README.md documents,
with the environment docker-compose.yml gives the caddy service."""
from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

import composeharness

REPO = Path(__file__).resolve().parents[2]
CADDYFILE = REPO / "caddy" / "Caddyfile"

# The first test may build Caddy with Go (a cold build takes minutes on 2 cores; cached in
# ~/.cache/leakhub/compose by version), longer than scripts/test's default per-test timeout.
pytestmark = [pytest.mark.compose, pytest.mark.timeout(2400)]


@pytest.fixture(scope="module")
def caddy():
    return composeharness.caddy_binary()


def _env(tmp_path: Path, **extra) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LEAKHUB_")}
    env.update({
        # docker-compose.yml's caddy environment with the defaults it interpolates.
        "LEAKHUB_HOSTNAME": "leakhub.example.test", "LEAKHUB_HTTP_PORT": "80",
        "LEAKHUB_HTTPS_PORT": "443", "LEAKHUB_WEB_UPSTREAM": "web:8000",
        "LEAKHUB_KEYCLOAK_UPSTREAM": "keycloak:8080", "LEAKHUB_TLS": "internal",
        "LEAKHUB_ACME_CA": "https://acme-v02.api.letsencrypt.org/directory",
        "LEAKHUB_ACME_CA_ROOT": "/etc/ssl/certs/ca-certificates.crt",
        "LEAKHUB_ADMIN_ALLOW": "private_ranges", "LEAKHUB_APP_ALLOW": "0.0.0.0/0 ::/0",
        "XDG_DATA_HOME": str(tmp_path / "data"), "XDG_CONFIG_HOME": str(tmp_path / "config"),
    })
    env.update(extra)
    return env


def _caddy(caddy, verb, env):
    return subprocess.run([str(caddy), verb, "--adapter", "caddyfile", "--config", str(CADDYFILE)],
                          env=env, capture_output=True, text=True, timeout=120)


def test_the_pinned_caddy_is_the_pinned_version(caddy):
    composeharness.check_caddy_version(caddy)


def _self_signed(tmp_path: Path) -> tuple[Path, Path]:
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:P-256", "-nodes", "-days", "2", "-subj",
                    "/CN=leakhub.example.test", "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True)
    return cert, key


@pytest.mark.parametrize("mode", ["internal", "certificate", "acme"])
def test_caddyfile_validates_in_every_tls_mode(caddy, tmp_path, mode):
    extra = {}
    if mode == "certificate":
        cert, key = _self_signed(tmp_path)
        extra["LEAKHUB_TLS"] = f"{cert} {key}"
    elif mode == "acme":
        extra["LEAKHUB_TLS"] = "it-admin@example.test"
    result = _caddy(caddy, "validate", _env(tmp_path, **extra))
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Valid configuration" in result.stdout + result.stderr


def test_adapted_config_keeps_the_appliance_rules(caddy, tmp_path):
    result = _caddy(caddy, "adapt", _env(tmp_path, LEAKHUB_HTTPS_PORT="8443",
                                         LEAKHUB_HTTP_PORT="8080"))
    assert result.returncode == 0, result.stderr[-3000:]
    config = json.loads(result.stdout)
    assert config["admin"]["disabled"] is True
    servers = config["apps"]["http"]["servers"]
    listens = sorted(a for s in servers.values() for a in s["listen"])
    assert listens == ["0.0.0.0:8080", "0.0.0.0:8443"]
    https = next(s for s in servers.values() if s["listen"] == ["0.0.0.0:8443"])
    assert https["protocols"] == ["h1", "h2"]          # no HTTP/3
    text = json.dumps(https).lower()      # header names as Caddy canonicalises them
    for needle in ("Strict-Transport-Security", "X-Content-Type-Options", "keycloak:8080",
                   "web:8000", "/auth/admin", "/metrics", "X-Request-ID"):
        assert needle.lower() in text, needle
    policies = config["apps"]["tls"]["automation"]["policies"]
    assert any(i.get("module") == "internal" for p in policies for i in p.get("issuers", []))
