"""TLS as Caddy serves it: the internal CA's root for client machines, and checks of a
customer certificate (key matches, chain in order, expiry)."""
from __future__ import annotations

import datetime as dt
import hashlib
from dataclasses import dataclass, field
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization

EXPIRY_WARNING_DAYS = 21


@dataclass
class CertReport:
    path: str
    subject: str = ""
    issuer: str = ""
    not_after: dt.datetime | None = None
    days_left: int | None = None
    sha256: str = ""
    problems: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems and not self.warnings


def mode(config) -> str:
    """internal | files | acme, from LEAKHUB_TLS (the same value Caddy reads)."""
    value = config.tls.split()
    if value == ["internal"]:
        return "internal"
    if len(value) == 2:
        return "files"
    if len(value) == 1 and "@" in value[0]:
        return "acme"
    return "invalid"


def fingerprint(cert: x509.Certificate) -> str:
    digest = hashlib.sha256(cert.public_bytes(serialization.Encoding.DER)).hexdigest().upper()
    return ":".join(digest[i:i + 2] for i in range(0, len(digest), 2))


def root_ca_path(config) -> Path:
    return config.caddy_data_dir / "pki" / "authorities" / "local" / "root.crt"


def _load_chain(path: Path) -> list[x509.Certificate]:
    return x509.load_pem_x509_certificates(Path(path).read_bytes())


def inspect(cert_path: Path, key_path: Path | None = None, *, now: dt.datetime | None = None,
            warn_days: int = EXPIRY_WARNING_DAYS) -> CertReport:
    report = CertReport(str(cert_path))
    now = now or dt.datetime.now(dt.UTC)
    try:
        chain = _load_chain(cert_path)
    except FileNotFoundError:
        report.problems.append(f"certificate file {cert_path} does not exist")
        return report
    except ValueError:
        report.problems.append(f"{cert_path} holds no PEM certificate")
        return report
    leaf = chain[0]
    report.subject = leaf.subject.rfc4514_string()
    report.issuer = leaf.issuer.rfc4514_string()
    report.not_after = leaf.not_valid_after_utc
    report.days_left = (report.not_after - now).days
    report.sha256 = fingerprint(leaf)
    if report.not_after <= now:
        report.problems.append(f"certificate expired on {report.not_after:%Y-%m-%d}")
    elif report.days_left < warn_days:
        report.warnings.append(f"certificate expires in {report.days_left} days "
                               f"({report.not_after:%Y-%m-%d}): renew it")
    for child, parent in zip(chain, chain[1:], strict=False):
        if child.issuer != parent.subject:
            report.problems.append("the chain is out of order: each certificate must be "
                                   "followed by its issuer")
            break
        try:
            child.verify_directly_issued_by(parent)
        except Exception:
            report.problems.append(f"{child.subject.rfc4514_string()} is not signed by the "
                                   "next certificate in the file")
            break
    if key_path is not None:
        try:
            key = serialization.load_pem_private_key(Path(key_path).read_bytes(), password=None)
        except FileNotFoundError:
            report.problems.append(f"key file {key_path} does not exist")
        except (ValueError, TypeError):
            report.problems.append(f"{key_path} holds no unencrypted PEM private key")
        else:
            pub = serialization.PublicFormat.SubjectPublicKeyInfo
            enc = serialization.Encoding.DER
            if key.public_key().public_bytes(enc, pub) != leaf.public_key().public_bytes(enc, pub):
                report.problems.append("the private key does not belong to the certificate")
    return report


def check(config, *, now=None) -> CertReport | None:
    """The certificate Leakhub is served with, when Leakhub can see it (customer files or the
    internal CA's root); None in ACME mode (Caddy renews by itself)."""
    m = mode(config)
    if m == "files":
        cert, key = config.tls.split()
        return inspect(Path(cert), Path(key), now=now)
    if m == "internal":
        path = root_ca_path(config)
        return inspect(path, now=now, warn_days=60) if path.exists() else None
    if m == "invalid":
        report = CertReport(config.tls)
        report.problems.append("LEAKHUB_TLS must be 'internal', 'CERT.pem KEY.pem' or an e-mail")
        return report
    return None
