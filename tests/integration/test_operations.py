"""Operating the running native stack: the host shim, the admin allow-list through Caddy,
the internal metrics endpoint, and Caddy's TLS against Mozilla's "intermediate" profile."""
from __future__ import annotations

import json
import os
import subprocess
import uuid
from pathlib import Path

import psycopg
import pytest
import requests

from leakhub_host.layout import port_free

from support.stackctl import OUTSIDE, free_port, raw_get, second_caddy, session_from, stop

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]


def db(stack):
    password = (stack.home / "secrets" / "postgres-leakhub-password").read_text().strip()
    return psycopg.connect(host="127.0.0.1", port=int(stack.ports["postgres"]), dbname="leakhub",
                           user="leakhub", password=password, connect_timeout=10)


def ip_denied_events(stack, path):
    with db(stack) as conn:
        return conn.execute(
            "SELECT ip, details FROM security_event WHERE kind = 'ip_denied' AND details LIKE %s",
            (f'%"path": "{path}"%',)).fetchall()


# --- scripts/leakctl natively --------------------------------------------------------------

def test_shim_runs_leakctl_with_the_stack_environment(stack):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LEAKHUB_", "DATABASE_"))}
    proc = subprocess.run([str(REPO / "scripts" / "leakctl"), "--home", str(stack.home),
                           "status", "--json"], env=env, capture_output=True, text=True,
                          timeout=120)
    report = json.loads(proc.stdout)
    checks = {c["name"]: c for c in report["checks"]}
    assert checks["database"]["ok"] and checks["keycloak"]["ok"], report
    assert proc.returncode == (0 if report["ok"] else 1)
    mode = subprocess.run([str(REPO / "scripts" / "leakctl"), "mode"], env=env,
                          capture_output=True, text=True, timeout=60)
    assert mode.stdout.strip() == "native"


# --- admin pages only from LEAKHUB_ADMIN_ALLOW -------------------------------------------------

@pytest.mark.parametrize("path", ["/security", "/admin/system", "/audit"])
def test_admin_pages_are_refused_outside_the_admin_networks(stack, path):
    marker = f"{path}?probe={uuid.uuid4().hex[:8]}"
    status, _headers = raw_get(stack.hostname, stack.https_port, marker, stack.ca_cert,
                               source=OUTSIDE)
    assert status == 403
    events = ip_denied_events(stack, path)
    assert events and events[-1][0] == OUTSIDE


def test_refusal_is_the_apps_and_cannot_be_spoofed(stack):
    http_ = session_from(stack, OUTSIDE)
    resp = http_.get(f"{stack.public_url}/security", allow_redirects=False, timeout=10,
                     headers={"X-Forwarded-For": "127.0.0.1"})    # Caddy replaces it
    assert resp.status_code == 403
    assert "LEAKHUB_ADMIN_ALLOW" in resp.text                      # the app's page
    # the same page from inside the list: the usual sign-in redirect
    inside = stack.requests_session().get(f"{stack.public_url}/security", allow_redirects=False,
                                          timeout=10)
    assert inside.status_code in (302, 303)
    # other pages stay reachable from outside
    assert http_.get(f"{stack.public_url}/healthz", timeout=10).status_code == 200


# --- metrics ---------------------------------------------------------------------------------

def test_metrics_answer_on_the_internal_port_only(stack):
    pytest.importorskip("prometheus_client", reason="prometheus-client is not installed (pin it)")
    http_ = stack.requests_session()
    for _ in range(3):
        assert http_.get(f"{stack.public_url}/healthz", timeout=10).status_code == 200
    assert http_.get(f"{stack.public_url}/metrics", timeout=10).status_code == 404
    bind = stack.state["env"]["LEAKHUB_METRICS_BIND"]
    assert bind.startswith("127.0.0.1:")
    resp = requests.get(f"http://{bind}/metrics", timeout=30)
    assert resp.status_code == 200
    text = resp.text
    assert "leakhub_database_up 1.0" in text
    assert "leakhub_organizations " in text
    assert 'leakhub_job_runs{job="heartbeat",status="ok"}' in text
    assert 'leakhub_http_requests_total{endpoint="home.healthz",method="GET",status="200"}' in text
    assert requests.get(f"http://{bind}/", timeout=10).status_code == 404


# --- TLS: Mozilla's "intermediate" configuration -------------------------------------------

def assert_mozilla_intermediate(hostname: str, port: int, ca: Path) -> None:
    from sslyze import (
        ScanCommandsExtraArguments,
        Scanner,
        ServerNetworkLocation,
        ServerScanRequest,
        ServerScanStatusEnum,
    )
    from sslyze.mozilla_tls_profile.tls_config_checker import (
        SCAN_COMMANDS_NEEDED_BY_MOZILLA_CHECKER,
        MozillaTlsConfiguration,
        ServerNotCompliantWithTlsConfiguration,
        TlsConfigurationEnum,
        check_server_against_tls_configuration,
    )
    from sslyze.plugins.certificate_info.implementation import CertificateInfoExtraArgument

    request = ServerScanRequest(
        server_location=ServerNetworkLocation(hostname=hostname, port=port,
                                              ip_address="127.0.0.1"),
        scan_commands=SCAN_COMMANDS_NEEDED_BY_MOZILLA_CHECKER,
        scan_commands_extra_arguments=ScanCommandsExtraArguments(
            certificate_info=CertificateInfoExtraArgument(custom_ca_file=ca)))
    scanner = Scanner()
    scanner.queue_scans([request])
    [result] = list(scanner.get_results())
    assert result.scan_status == ServerScanStatusEnum.COMPLETED, result.connectivity_error_trace
    try:
        check_server_against_tls_configuration(
            result, MozillaTlsConfiguration.get(TlsConfigurationEnum.MOZILLA_INTERMEDIATE))
    except ServerNotCompliantWithTlsConfiguration as exc:
        pytest.fail(f"not compliant with Mozilla intermediate: {exc.issues}")


def test_caddy_passes_mozilla_intermediate(stack):
    """The default mode: Caddy's internal CA."""
    assert_mozilla_intermediate(stack.hostname, stack.https_port, stack.ca_cert)


def _customer_pki(directory: Path, hostname: str, days: int) -> tuple[Path, Path, Path]:
    """A customer CA with an intermediate, and a server certificate for `hostname`:
    (CA file to trust, full chain PEM, key PEM)."""
    import datetime as dt

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    now = dt.datetime.now(dt.UTC)

    def cert(cn, issuer_cn, key, signer, lifetime, *, ca, san=None):
        b = (x509.CertificateBuilder()
             .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)]))
             .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer_cn)]))
             .public_key(key.public_key()).serial_number(x509.random_serial_number())
             .not_valid_before(now - dt.timedelta(hours=1))
             .not_valid_after(now + dt.timedelta(days=lifetime))
             .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
        # What a real PKI issues (and RFC 5280 path validation insists on): key identifiers,
        # key usage, and for the server a SAN and serverAuth.
        b = (b.add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()),
                             critical=False)
             .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(
                 signer.public_key()), critical=False)
             .add_extension(x509.KeyUsage(
                 digital_signature=not ca, key_cert_sign=ca, crl_sign=ca,
                 content_commitment=False, key_encipherment=False, data_encipherment=False,
                 key_agreement=False, encipher_only=False, decipher_only=False), critical=True))
        if san:
            b = (b.add_extension(x509.SubjectAlternativeName([x509.DNSName(san)]), critical=False)
                 .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]),
                                critical=False))
        return b.sign(signer, hashes.SHA256())

    root_key, inter_key, leaf_key = (ec.generate_private_key(ec.SECP256R1()) for _ in range(3))
    root = cert("Customer Root CA", "Customer Root CA", root_key, root_key, 3650, ca=True)
    inter = cert("Customer Issuing CA", "Customer Root CA", inter_key, root_key, 1825, ca=True)
    leaf = cert(hostname, "Customer Issuing CA", leaf_key, inter_key, days, ca=False, san=hostname)
    pem = serialization.Encoding.PEM
    (directory / "root.pem").write_bytes(root.public_bytes(pem))
    (directory / "chain.pem").write_bytes(leaf.public_bytes(pem) + inter.public_bytes(pem))
    (directory / "key.pem").write_bytes(leaf_key.private_bytes(
        pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    (directory / "key.pem").chmod(0o600)
    return directory / "root.pem", directory / "chain.pem", directory / "key.pem"


def test_customer_certificate_mode_passes_mozilla_intermediate_and_is_checked(stack, tmp_path):
    """LEAKHUB_TLS="cert.pem key.pem": Caddy serves the customer's chain; sslyze finds it
    compliant; `leakctl tls check` confirms key and chain and warns of the coming expiry."""
    root, chain, key = _customer_pki(tmp_path, stack.hostname, days=20)
    with second_caddy(stack, tmp_path, ca=root, LEAKHUB_TLS=f"{chain} {key}") as (port, ca):
        assert raw_get(stack.hostname, port, "/healthz", ca)[0] == 200
        assert_mozilla_intermediate(stack.hostname, port, ca)
    check = stack.leakctl("tls", "check", "--cert", str(chain), "--key", str(key), "--json",
                          check=False)
    report = json.loads(check.stdout)
    assert not report["problems"], report
    assert any("expires in" in w for w in report["warnings"]), report


ACME_SERVER = """{
	admin off
	skip_install_trust
	http_port %(http)d
	https_port %(https)d
}
https://127.0.0.1:%(https)d {
	tls internal
	acme_server
}
"""


def test_acme_mode_gets_its_certificate_from_an_acme_ca_and_passes_mozilla_intermediate(
        stack, tmp_path):
    """LEAKHUB_TLS=e-mail with LEAKHUB_ACME_CA pointing at an ACME CA on this machine (a Caddy
    with `acme_server`, as a company CA would be): the challenge is answered on port 80 or
    443, the certificate is issued by that CA and the TLS setup passes sslyze."""
    import time

    # The CA validates on the standard ports of the name: 80 (HTTP-01) and 443 (TLS-ALPN-01).
    if os.geteuid() != 0 or not (port_free(80) and port_free(443)):
        pytest.skip("ACME validation needs ports 80 and 443 on 127.0.0.1 (root, ports free)")

    server_dir = tmp_path / "acme-ca"
    server_dir.mkdir()
    acme_https = free_port()
    (server_dir / "Caddyfile").write_text(ACME_SERVER % {"http": free_port(),
                                                          "https": acme_https})
    env = dict(os.environ, XDG_DATA_HOME=str(server_dir / "data"),
               XDG_CONFIG_HOME=str(server_dir / "config"))
    with open(server_dir / "caddy.log", "wb") as log:
        server = subprocess.Popen(["caddy", "run", "--config", str(server_dir / "Caddyfile"),
                                   "--adapter", "caddyfile"], env=env, stdout=log,
                                  stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    root = server_dir / "data" / "caddy" / "pki" / "authorities" / "local" / "root.crt"
    directory = f"https://127.0.0.1:{acme_https}/acme/local/directory"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if root.exists() and requests.get(directory, verify=str(root),
                                                  timeout=5).status_code == 200:
                    break
            except requests.RequestException:
                pass
            assert server.poll() is None and time.monotonic() < deadline, \
                (server_dir / "caddy.log").read_text(errors="replace")[-3000:]
            time.sleep(0.3)
        client_dir = tmp_path / "leakhub-caddy"
        client_dir.mkdir()
        with second_caddy(stack, client_dir, ca=root, http_port=80, https_port=443,
                          LEAKHUB_TLS="it@plant.example", LEAKHUB_ACME_CA=directory,
                          LEAKHUB_ACME_CA_ROOT=str(root)) as (port, ca):
            # second_caddy returned once the served chain verified against the ACME CA's
            # root: the certificate came through ACME (Caddy's own CA is another one).
            assert raw_get(stack.hostname, port, "/healthz", ca)[0] == 200
            assert_mozilla_intermediate(stack.hostname, port, ca)
        log_text = (client_dir / "caddy.log").read_text(errors="replace")
        assert '"certificate obtained successfully"' in log_text and directory in log_text
    finally:
        stop(server)
