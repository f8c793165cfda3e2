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
    now = dt.datetime.now(dt.UTC)
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
        "LEAKHUB_ORG_SLUG": "acme",            # the `org` fixture: the operator organization
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
    assert not checks["certificate"]["ok"] \
        and "expires in 4 days" in checks["certificate"]["detail"]


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


def _run(job, status, minutes_ago, message=""):
    from leakhub.core.db import utcnow
    from leakhub.jobs.models import JobRun

    at = utcnow() - dt.timedelta(minutes=minutes_ago)
    return JobRun.create(job=job, status=status, started_at=at, finished_at=at, message=message)


def test_a_failed_job_is_a_problem_until_a_later_run_of_it_succeeds(app, org):
    """The retention job failed while everything else ran: status, `status worker` and the
    System page say so (issue 12)."""
    _run("heartbeat", "ok", 0)
    _run("retention", "ok", 60 * 24)
    _run("retention", "failed", 30, "OperationalError: database is locked")
    _run("backup-verify", "failed", 40, "old failure")
    _run("backup-verify", "ok", 20)                   # a later success clears it
    _run("retention", "running", 1)                   # a run in progress changes nothing
    code, checks = status()
    assert code == 1
    assert not checks["jobs"]["ok"]
    assert "retention failed" in checks["jobs"]["detail"]
    assert "database is locked" in checks["jobs"]["detail"]
    assert "backup-verify" not in checks["jobs"]["detail"]
    assert checks["worker"]["ok"]                     # the heartbeat itself is fine
    runner = CliRunner()
    result = runner.invoke(cli, ["status", "worker"])
    assert result.exit_code == 1 and "retention failed" in result.output

    # The updater's gate (--since) asks about runs since the new worker started only.
    from leakhub.core.db import utcnow

    since = (utcnow() - dt.timedelta(minutes=5)).isoformat() + "Z"
    assert runner.invoke(cli, ["status", "worker", "--since", since]).exit_code == 0

    _run("retention", "ok", 0)
    code, checks = status()
    assert checks["jobs"]["ok"]
    assert runner.invoke(cli, ["status", "worker"]).exit_code == 0


def test_system_page_is_red_while_a_job_failed(app, org, login, make_user):
    from leakhub.core.db import utcnow

    _run("heartbeat", "ok", 0)
    _run("retention", "failed", 5, "OperationalError: database is locked")
    org.created_at = utcnow()
    org.save()
    c = login(make_user("admin"))
    resp = c.get("/admin/system")
    assert resp.status_code == 200
    page = resp.get_data(as_text=True)
    assert 'data-name="jobs" data-ok="false"' in page
    assert "needs attention" in page and "all good" not in page


def test_a_new_unverified_backup_counts_and_says_so(app, org):
    from leakhub.backups.models import BackupRecord
    from leakhub.core.db import utcnow

    now = utcnow()
    org.created_at = now - dt.timedelta(days=30)
    org.save()
    _run("heartbeat", "ok", 0)
    code, checks = status()
    assert not checks["backups"]["ok"] and "no verified backup" in checks["backups"]["detail"]

    # Right after `leakctl backup create`: counts, "not yet verified".
    BackupRecord.create(file_name="leakhub-backup-manual.tar.age", kind="manual",
                        created_at=now - dt.timedelta(minutes=3), verify_status=None)
    code, checks = status()
    assert checks["backups"]["ok"], checks["backups"]
    assert "leakhub-backup-manual.tar.age" in checks["backups"]["detail"]
    assert "not yet verified" in checks["backups"]["detail"]

    # Verified: says so.
    BackupRecord.update(verify_status="ok").execute()
    code, checks = status()
    assert checks["backups"]["ok"] and "(0 h old, verified)" in checks["backups"]["detail"]

    # One that failed verification does not count; an old verified one is too old.
    BackupRecord.update(verify_status="failed").execute()
    BackupRecord.create(file_name="leakhub-backup-old.tar.age", kind="scheduled",
                        created_at=now - dt.timedelta(days=3), verify_status="ok")
    code, checks = status()
    assert not checks["backups"]["ok"]
    assert "leakhub-backup-old.tar.age" in checks["backups"]["detail"]
    assert "older than 36 h" in checks["backups"]["detail"]

    # Never verified for hours (the verify job does not run): a problem too.
    BackupRecord.create(file_name="leakhub-backup-stuck.tar.age", kind="manual",
                        created_at=now - dt.timedelta(hours=5), verify_status=None)
    code, checks = status()
    assert not checks["backups"]["ok"]
    assert "still not verified" in checks["backups"]["detail"]
