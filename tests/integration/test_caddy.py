"""Caddy in front of the real native stack: HTTPS only, TLS >= 1.2, security headers, the
admin/app allow lists, request ids shared with the app, /metrics hidden."""
from __future__ import annotations

import http.client
import json
import os
import re
import shutil
import socket
import ssl
import subprocess
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import requests

from support.stackctl import OUTSIDE, REPO, raw_get, second_caddy, session_from

CADDYFILE = REPO / "caddy" / "Caddyfile"

pytestmark = pytest.mark.integration

OUR_CSP = ("default-src 'self'; img-src 'self' data: blob:; style-src 'self'; script-src 'self'; "
           "frame-ancestors 'none'; base-uri 'self'; form-action 'self'")
UUID_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
def tls_handshake(stack, version: ssl.TLSVersion) -> str:
    """Handshake with exactly `version`; returns the negotiated version or raises SSLError.
    SECLEVEL=0 lets *our* client offer TLS 1.0/1.1, so a failure is the server's refusal."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.load_verify_locations(str(stack.ca_cert))
    ctx.set_ciphers("DEFAULT:@SECLEVEL=0")
    ctx.minimum_version = version
    ctx.maximum_version = version
    with socket.create_connection(("127.0.0.1", stack.https_port), timeout=10) as raw:
        with ctx.wrap_socket(raw, server_hostname=stack.hostname) as tls:
            return tls.version()


# --- HTTPS only ---------------------------------------------------------------------------------

def test_http_redirects_to_https(stack):
    resp = requests.get(f"http://127.0.0.1:{stack.http_port}/some/page?x=1",
                        headers={"Host": f"{stack.hostname}:{stack.http_port}"},
                        allow_redirects=False, timeout=10)
    assert resp.status_code in (301, 308)
    assert resp.headers["Location"] == f"{stack.public_url}/some/page?x=1"
    assert "Server" not in resp.headers


def test_https_offers_http2(stack):
    """Browsers get HTTP/2 (ALPN h2); HTTP/1.1 stays available (the end-to-end tests use it:
    support/browser.py STEADY_NETWORK)."""
    def negotiated(offer: list[str]) -> str | None:
        ctx = ssl.create_default_context(cafile=str(stack.ca_cert))
        ctx.set_alpn_protocols(offer)
        with socket.create_connection(("127.0.0.1", stack.https_port), timeout=10) as raw:
            with ctx.wrap_socket(raw, server_hostname=stack.hostname) as tls:
                return tls.selected_alpn_protocol()

    assert negotiated(["h2", "http/1.1"]) == "h2"
    assert negotiated(["http/1.1"]) == "http/1.1"


def test_https_certificate_is_issued_by_the_stack_ca(stack):
    resp = stack.requests_session().get(f"{stack.public_url}/healthz", timeout=10)
    assert resp.status_code == 200
    with pytest.raises(requests.exceptions.SSLError):
        requests.get(f"{stack.public_url}/healthz", timeout=10)  # system CAs don't know it


@pytest.mark.parametrize("version", ["TLSv1", "TLSv1_1"])
def test_old_tls_versions_are_refused(stack, version):
    with pytest.raises(ssl.SSLError) as err:
        tls_handshake(stack, getattr(ssl.TLSVersion, version))
    # The server's alert, not a client-side refusal.
    assert "PROTOCOL_VERSION" in str(err.value).upper().replace(" ", "_")


@pytest.mark.parametrize("version,name", [("TLSv1_2", "TLSv1.2"), ("TLSv1_3", "TLSv1.3")])
def test_tls_12_and_13_are_accepted(stack, version, name):
    assert tls_handshake(stack, getattr(ssl.TLSVersion, version)) == name


def test_openssl_s_client_cannot_use_tls_11(stack):
    if not shutil.which("openssl"):
        pytest.fail("openssl is missing (scripts/install installs it)")
    proc = subprocess.run(
        ["openssl", "s_client", "-connect", f"127.0.0.1:{stack.https_port}", "-servername",
         stack.hostname, "-tls1_1", "-cipher", "DEFAULT@SECLEVEL=0", "-CAfile", str(stack.ca_cert)],
        input="", capture_output=True, text=True, timeout=30)
    assert proc.returncode != 0
    assert "alert protocol version" in (proc.stdout + proc.stderr)


# --- headers ------------------------------------------------------------------------------------

@pytest.mark.parametrize("path", ["/", "/healthz", "/no-such-page"])
def test_security_headers_on_app_responses(stack, path):
    resp = stack.requests_session().get(f"{stack.public_url}{path}", allow_redirects=False,
                                        timeout=10)
    h = resp.headers
    assert h["Strict-Transport-Security"] == "max-age=31536000"
    assert h["X-Content-Type-Options"] == "nosniff"
    assert h["Referrer-Policy"] in ("same-origin", "strict-origin-when-cross-origin")
    assert h["X-Frame-Options"] == "DENY"
    assert h["Content-Security-Policy"] == OUR_CSP
    assert "Server" not in h
    assert UUID_RE.match(h["X-Request-ID"])


def test_keycloak_pages_keep_keycloak_csp(stack):
    """Our strict CSP would break Keycloak's login page (inline handlers, its own frames):
    under /auth Caddy only adds HSTS and nosniff."""
    http_ = stack.requests_session()
    params = {"client_id": "security-admin-console", "response_type": "code", "scope": "openid",
              "redirect_uri": f"{stack.public_url}/auth/admin/master/console/",
              "code_challenge": "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM",
              "code_challenge_method": "S256", "state": "s", "nonce": "n"}
    resp = http_.get(f"{stack.public_url}/auth/realms/master/protocol/openid-connect/auth",
                     params=params, timeout=30)
    assert resp.status_code == 200, resp.text[:500]
    assert 'id="kc-form-login"' in resp.text
    h = resp.headers
    assert h["Content-Security-Policy"] != OUR_CSP
    assert "frame-ancestors 'self'" in h["Content-Security-Policy"]
    assert h.get("X-Frame-Options") != "DENY"
    assert h["Strict-Transport-Security"] == "max-age=31536000"
    assert h["X-Content-Type-Options"] == "nosniff"
    assert "Server" not in h


def test_keycloak_issuer_is_the_public_url(stack):
    resp = stack.requests_session().get(
        f"{stack.public_url}/auth/realms/master/.well-known/openid-configuration", timeout=30)
    assert resp.status_code == 200
    assert resp.json()["issuer"] == f"{stack.public_url}/auth/realms/master"


def test_keycloak_backchannel_urls_stay_internal(stack):
    """KC_HOSTNAME_BACKCHANNEL_DYNAMIC: the app, talking to Keycloak directly, gets internal
    endpoints for server-to-server calls but the public issuer (which tokens carry)."""
    meta = requests.get(f"{stack.keycloak_url}/realms/master/.well-known/openid-configuration",
                        timeout=30).json()
    assert meta["issuer"] == f"{stack.public_url}/auth/realms/master"
    assert meta["token_endpoint"].startswith(f"{stack.keycloak_url}/realms/master/")
    assert meta["jwks_uri"].startswith(f"{stack.keycloak_url}/realms/master/")
    assert meta["authorization_endpoint"].startswith(f"{stack.public_url}/auth/realms/master/")


@pytest.mark.parametrize("path", ["/auth/health", "/auth/health/ready", "/auth/metrics"])
def test_keycloak_health_and_metrics_are_not_proxied(stack, path):
    assert stack.requests_session().get(f"{stack.public_url}{path}", timeout=30).status_code == 404
    # ...they live on the management port only.
    mgmt = requests.get(f"{stack.keycloak_management_url}{path.removeprefix('/auth')}", timeout=30)
    assert mgmt.status_code == 200


# --- request id ---------------------------------------------------------------------------------

def _wait_for_line(path: Path, needle: str, timeout: float = 10) -> str | None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists():
            for line in path.read_text(errors="replace").splitlines():
                if needle in line:
                    return line
        time.sleep(0.2)
    return None


def test_request_id_is_set_by_caddy_and_shared_with_the_app(stack):
    spoofed = "client-chosen-id-" + uuid.uuid4().hex[:8]
    resp = stack.requests_session().get(f"{stack.public_url}/", headers={"X-Request-ID": spoofed},
                                        allow_redirects=False, timeout=10)
    rid = resp.headers["X-Request-ID"]
    assert UUID_RE.match(rid) and rid != spoofed
    web_line = _wait_for_line(stack.logs_dir / "web.log", rid)
    assert web_line, "the app did not log Caddy's request id"
    assert json.loads(web_line)["request_id"] == rid
    caddy_line = _wait_for_line(stack.logs_dir / "caddy.log", rid)
    assert caddy_line, "Caddy's access log lacks the request id"
    entry = json.loads(caddy_line)
    assert entry["resp_headers"]["X-Request-Id"] == [rid]
    assert spoofed not in (stack.logs_dir / "web.log").read_text(errors="replace")


# --- what is not reachable ----------------------------------------------------------------------

@pytest.mark.parametrize("path", ["/metrics", "/metrics/", "/METRICS"])
def test_app_metrics_are_not_reachable_through_caddy(stack, path):
    resp = stack.requests_session().get(f"{stack.public_url}{path}", timeout=10)
    assert resp.status_code == 404


@pytest.mark.parametrize("path", [
    "/auth/admin/", "/auth/admin/master/console/", "/auth/admin/realms",
    "/auth/realms/master/", "/auth/realms/master/protocol/openid-connect/token",
    # normalisation tricks must not get around the matcher
    "/auth//admin/", "/auth/./admin/", "/auth/realms/x/../master/", "/auth/realms/x/%2e%2e/master/",
    "/AUTH/ADMIN/", "/auth/realms/MASTER/",
])
def test_keycloak_admin_is_forbidden_outside_the_admin_networks(stack, path):
    status, _ = raw_get(stack.hostname, stack.https_port, path, stack.ca_cert, source=OUTSIDE)
    assert status == 403


def test_keycloak_admin_is_reachable_from_the_admin_networks(stack):
    resp = stack.requests_session().get(f"{stack.public_url}/auth/admin/master/console/",
                                        timeout=30)
    assert resp.status_code == 200


def test_organization_realms_are_reachable_from_anywhere_allowed(stack):
    http_ = session_from(stack, OUTSIDE)
    resp = http_.get(f"{stack.public_url}/auth/realms/master-not/.well-known/openid-configuration",
                     timeout=30)
    assert resp.status_code == 404            # Keycloak's answer (no such realm), not Caddy's 403
    assert http_.get(f"{stack.public_url}/healthz", timeout=10).status_code == 200


# --- a header the app sets itself survives Caddy ------------------------------------------------

PHOTO_CSP = "default-src 'none'; sandbox"


class _OwnCspApp(BaseHTTPRequestHandler):
    """A stand-in for the web app: /own sends its own (stricter) CSP, the rest none."""

    def do_GET(self):
        self.send_response(200)
        if self.path == "/own":
            self.send_header("Content-Security-Policy", PHOTO_CSP)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *args):
        pass


@pytest.fixture
def caddy_before_stub_app(stack, tmp_path):
    server = ThreadingHTTPServer(("127.0.0.1", 0), _OwnCspApp)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        with second_caddy(stack, tmp_path,
                          LEAKHUB_WEB_UPSTREAM=f"127.0.0.1:{server.server_port}") as started:
            yield started
    finally:
        server.shutdown()
        server.server_close()


def _header_list(host: str, port: int, path: str, cafile: Path) -> tuple[int, list]:
    """GET through Caddy; every header line as sent (a repeated field appears twice)."""
    ctx = ssl.create_default_context(cafile=str(cafile))
    conn = http.client.HTTPSConnection("127.0.0.1", port, timeout=10, context=ctx)
    conn.sock = ctx.wrap_socket(socket.create_connection(("127.0.0.1", port), timeout=10),
                                server_hostname=host)
    try:
        conn.request("GET", path, headers={"Host": f"{host}:{port}"})
        resp = conn.getresponse()
        resp.read()
        return resp.status, resp.getheaders()
    finally:
        conn.close()


def test_app_set_csp_survives_caddy_and_the_default_fills_the_rest(stack, caddy_before_stub_app):
    """Caddy's CSP is a default (`header ?Content-Security-Policy`): an app-set one (photos)
    reaches the browser unchanged and alone; responses without one get ours."""
    port, ca = caddy_before_stub_app
    status, headers = _header_list(stack.hostname, port, "/own", ca)
    assert status == 200
    csp = [v for k, v in headers if k.lower() == "content-security-policy"]
    assert csp == [PHOTO_CSP]
    status, headers = _header_list(stack.hostname, port, "/other", ca)
    csp = [v for k, v in headers if k.lower() == "content-security-policy"]
    assert status == 200 and csp == [OUR_CSP]
    names = {k.lower() for k, _v in headers}
    assert {"strict-transport-security", "x-frame-options", "x-content-type-options"} <= names
    assert "server" not in names


# --- the application-wide allow list (a second Caddy with a narrow list) ----------------------

@pytest.fixture
def narrow_caddy(stack, tmp_path):
    with second_caddy(stack, tmp_path, LEAKHUB_APP_ALLOW="127.0.0.1/32",
                      LEAKHUB_ADMIN_ALLOW="127.0.0.3/32") as started:
        yield started


def test_app_allow_list_forbids_other_networks(stack, narrow_caddy):
    port, ca = narrow_caddy
    assert raw_get(stack.hostname, port, "/healthz", ca, source="127.0.0.1")[0] == 200
    assert raw_get(stack.hostname, port, "/healthz", ca, source=OUTSIDE)[0] == 403
    assert raw_get(stack.hostname, port, "/auth/realms/master-not/", ca, source=OUTSIDE)[0] == 403


def test_admin_allow_list_comes_from_the_environment(stack, narrow_caddy):
    port, ca = narrow_caddy
    # 127.0.0.1 is inside the app list but outside LEAKHUB_ADMIN_ALLOW=127.0.0.3/32 here.
    assert raw_get(stack.hostname, port, "/auth/admin/master/console/", ca)[0] == 403
    assert raw_get(stack.hostname, port, "/auth/realms/master/", ca)[0] == 403


# --- logs ---------------------------------------------------------------------------------------

def test_access_log_drops_query_strings(stack):
    marker = "code-" + uuid.uuid4().hex
    resp = stack.requests_session().get(f"{stack.public_url}/oidc/callback/nope",
                                        params={"code": marker, "state": marker},
                                        headers={"Referer": f"{stack.public_url}/x?code={marker}"},
                                        allow_redirects=False, timeout=10)
    line = _wait_for_line(stack.logs_dir / "caddy.log", resp.headers["X-Request-ID"])
    assert line, "no access log entry"
    assert marker not in line
    assert json.loads(line)["request"]["uri"] == "/oidc/callback/nope?REDACTED"


def _secret_values(secrets_dir: Path) -> dict[str, str]:
    values = {}
    for path in secrets_dir.iterdir():
        text = path.read_text(errors="replace").strip()
        try:
            data = json.loads(text)
        except ValueError:
            data = text
        items = data.items() if isinstance(data, dict) else [("", data)]
        for key, value in items:
            if isinstance(value, str) and len(value) >= 8 and "@" not in value:
                values[f"{path.name}:{key}"] = value
    return values


def test_stack_logs_contain_no_secret_values(stack):
    secrets = _secret_values(stack.home / "secrets")
    assert "postgres-superuser-password:" in secrets \
        and "keycloak-bootstrap-client-secret:" in secrets
    for log in sorted(stack.logs_dir.glob("*.log")):
        text = log.read_text(errors="replace")
        leaked = [name for name, value in secrets.items() if value in text]
        assert not leaked, f"{log.name} contains secret values of {leaked}"


# --- the three TLS modes as Caddy (the installed version) reads them -------------------------

def test_internal_mode_adapts_to_the_internal_issuer_only():
    assert _adapted_tls("internal") == {"automation": {"policies": [
        {"subjects": ["leakhub.plant.example"], "issuers": [{"module": "internal"}]}]}}


def test_customer_files_mode_loads_the_files():
    tls_app = _adapted_tls("/etc/leakhub/tls/chain.pem /etc/leakhub/tls/key.pem")
    assert tls_app["certificates"] == {"load_files": [
        {"certificate": "/etc/leakhub/tls/chain.pem", "key": "/etc/leakhub/tls/key.pem",
         "tags": ["cert0"]}]}
    # (Caddy manages no certificate for a name a loaded certificate covers: the served chain
    # is checked end to end in test_operations.)


def test_acme_mode_asks_lets_encrypt_or_the_configured_acme_ca():
    [policy] = _adapted_tls("it@plant.example")["automation"]["policies"]
    assert policy["subjects"] == ["leakhub.plant.example"]
    assert policy["issuers"][0]["module"] == "acme"
    assert all(i["email"] == "it@plant.example" for i in policy["issuers"])
    assert policy["issuers"][0]["ca"] == "https://acme-v02.api.letsencrypt.org/directory"
    [policy] = _adapted_tls("it@plant.example", LEAKHUB_ACME_CA="https://ca.plant.example/dir",
                            LEAKHUB_ACME_CA_ROOT="/etc/leakhub/certs/root.pem"
                            )["automation"]["policies"]
    assert {i["ca"] for i in policy["issuers"]} == {"https://ca.plant.example/dir"}
    assert all(i["trusted_roots_pem_files"] == ["/etc/leakhub/certs/root.pem"]
               for i in policy["issuers"])


def _adapted_tls(tls_value: str, **extra) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LEAKHUB_ACME_")}
    env.update(LEAKHUB_HOSTNAME="leakhub.plant.example", LEAKHUB_TLS=tls_value, **extra)
    proc = subprocess.run(["caddy", "adapt", "--config", str(CADDYFILE), "--adapter",
                           "caddyfile"], env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)["apps"].get("tls", {})
