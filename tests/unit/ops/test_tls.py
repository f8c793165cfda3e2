"""Customer-certificate checks: key/cert match, chain order, expiry warning."""
import datetime as dt

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from leakhub.ops import tls

NOW = dt.datetime(2026, 11, 23, tzinfo=dt.UTC)


def _name(cn):
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _cert(subject, issuer, key, signer, days):
    return (x509.CertificateBuilder().subject_name(_name(subject)).issuer_name(_name(issuer))
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(NOW - dt.timedelta(days=1))
            .not_valid_after(NOW + dt.timedelta(days=days))
            .sign(signer, hashes.SHA256()))


def _pem(*certs):
    return b"".join(c.public_bytes(serialization.Encoding.PEM) for c in certs)


def _key_pem(key):
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


@pytest.fixture
def pki(tmp_path):
    ca_key, leaf_key, other_key = (ec.generate_private_key(ec.SECP256R1()) for _ in range(3))
    ca = _cert("Customer CA", "Customer CA", ca_key, ca_key, 3650)
    return tmp_path, ca, ca_key, leaf_key, other_key


def test_good_chain_and_matching_key(pki):
    d, ca, ca_key, leaf_key, _ = pki
    leaf = _cert("leakhub.example.com", "Customer CA", leaf_key, ca_key, 200)
    (d / "c.pem").write_bytes(_pem(leaf, ca))
    (d / "k.pem").write_bytes(_key_pem(leaf_key))
    report = tls.inspect(d / "c.pem", d / "k.pem", now=NOW)
    assert report.ok and report.days_left == 200 and len(report.sha256) == 95


def test_mismatched_key_wrong_order_and_expiry(pki):
    d, ca, ca_key, leaf_key, other_key = pki
    leaf = _cert("leakhub.example.com", "Customer CA", leaf_key, ca_key, 10)
    (d / "c.pem").write_bytes(_pem(ca, leaf))
    (d / "k.pem").write_bytes(_key_pem(other_key))
    report = tls.inspect(d / "c.pem", d / "k.pem", now=NOW)
    assert any("out of order" in p for p in report.problems)
    assert any("does not belong" in p for p in report.problems)
    (d / "c2.pem").write_bytes(_pem(leaf, ca))
    soon = tls.inspect(d / "c2.pem", None, now=NOW)
    assert not soon.ok and not soon.problems and "expires in 10 days" in soon.warnings[0]


def test_mode_parsing(config):
    from dataclasses import replace

    assert tls.mode(config) == "internal"
    assert tls.mode(replace(config, tls="/c.pem /k.pem")) == "files"
    assert tls.mode(replace(config, tls="it@example.com")) == "acme"
    assert tls.mode(replace(config, tls="bogus")) == "invalid"
