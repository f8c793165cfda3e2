"""`leakctl status --json`: a stopped worker, an old backup and an expiring customer
certificate are problems (exit 1); `status worker --since` for the updater's health gate."""
from __future__ import annotations

import datetime as dt
import json

import pytest
from click.testing import CliRunner
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from leakhub.cli import cli
from leakhub.core.config import Config
from leakhub.core.secrets import ensure_all


def _self_signed(path, days):
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "leakhub.plant.test")])
    now = dt.datetime.now(dt.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(days=300))
            .not_valid_after(now + dt.timedelta(days=days)).sign(key, hashes.SHA256()))
    (path / "cert.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (path / "key.pem").write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption()))
    return f"{path / 'cert.pem'} {path / 'key.pem'}"


@pytest.fixture
def config(tmp_path):
    certs = tmp_path / "certs"
    certs.mkdir()
    cfg = Config.from_env({
        "LEAKHUB_HOME": str(tmp_path), "LEAKHUB_PUBLIC_URL": "https://leakhub.test",
        "KEYCLOAK_URL": "http://127.0.0.1:9/auth", "LEAKHUB_TESTING": "1",
        "LEAKHUB_TLS": _self_signed(certs, days=5)})
    ensure_all(cfg.secrets_dir)
    return cfg


def status():
    result = CliRunner().invoke(cli, ["status", "--json"], catch_exceptions=False)
    return result.exit_code, {c["name"]: c for c in json.loads(result.output)["checks"]}


def test_stopped_worker_old_backup_and_expiring_certificate_are_problems(app, org):
    from leakhub.backups.models import BackupRecord
    from leakhub.core.db import utcnow
    from leakhub.jobs.models import JobRun

    now = utcnow()
    org.created_at = now - dt.timedelta(days=30)
    org.save()
    JobRun.create(job="heartbeat", status="ok", started_at=now - dt.timedelta(minutes=20),
                  finished_at=now - dt.timedelta(minutes=20))
    BackupRecord.create(file_name="leakhub-backup-old.tar.age", kind="scheduled",
                        created_at=now - dt.timedelta(days=3), verify_status="ok")
    code, checks = status()
    assert code == 1
    assert not checks["worker"]["ok"] and "1200 s ago" in checks["worker"]["detail"]
    assert not checks["backups"]["ok"] and "72 h old" in checks["backups"]["detail"]
    assert not checks["certificate"]["ok"] and "expires in 4 days" in checks["certificate"]["detail"]


def test_worker_since(app):
    from leakhub.core.db import utcnow
    from leakhub.jobs.models import JobRun

    now = utcnow()
    JobRun.create(job="heartbeat", status="ok", started_at=now - dt.timedelta(seconds=40),
                  finished_at=now - dt.timedelta(seconds=40))
    runner = CliRunner()
    assert runner.invoke(cli, ["status", "worker"]).exit_code == 0
    since = (now - dt.timedelta(seconds=10)).isoformat() + "Z"
    result = runner.invoke(cli, ["status", "worker", "--since", since])
    assert result.exit_code == 1 and "no heartbeat since" in result.output
    JobRun.create(job="heartbeat", status="ok", started_at=now, finished_at=now)
    assert runner.invoke(cli, ["status", "worker", "--since", since]).exit_code == 0
    result = runner.invoke(cli, ["status", "worker", "--since", "later"])
    assert result.exit_code != 0 and "--since" in result.output
