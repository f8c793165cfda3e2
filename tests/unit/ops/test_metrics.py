"""Prometheus metrics: the worker's appliance gauges (from the database), its internal-only
HTTP endpoint, and the web's request counters in prometheus_client's multiprocess mode."""
from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import pytest

# prometheus-client==0.26.0 must be pinned in requirements.lock; until it is, say so and skip.
prometheus_client = pytest.importorskip("prometheus_client",
                                        reason="prometheus-client is not installed (pin it)")
from prometheus_client import generate_latest  # noqa: E402

from leakhub.ops import metrics  # noqa: E402

REPO = Path(__file__).resolve().parents[3]


def scrape(config, web_dir=None) -> str:
    return generate_latest(metrics.registry(config, web_dir)).decode()


def test_appliance_gauges(app, org, config):
    from leakhub.backups.models import BackupRecord
    from leakhub.core.db import utcnow
    from leakhub.demo.seed import seed
    from leakhub.jobs.models import JobRun
    from leakhub.security.models import SecurityEvent

    seed(org, leaks=6, sites=1, rng_seed=3)
    now = utcnow()
    JobRun.create(job="heartbeat", status="ok", started_at=now - dt.timedelta(seconds=30))
    JobRun.create(job="heartbeat", status="ok", started_at=now - dt.timedelta(seconds=60))
    JobRun.create(job="backup", status="failed", started_at=now - dt.timedelta(hours=2))
    for _ in range(3):
        SecurityEvent.create(organization=org, kind="sign_in_failed", source="keycloak", at=now)
    SecurityEvent.create(organization=org, kind="sign_in", source="leakhub", at=now)
    BackupRecord.create(file_name="leakhub-backup-x.tar.age", kind="scheduled",
                        created_at=now - dt.timedelta(hours=5), verify_status="ok")

    text = scrape(config)
    assert "leakhub_database_up 1.0" in text
    assert 'leakhub_job_runs{job="heartbeat",status="ok"} 2.0' in text
    assert 'leakhub_job_runs{job="backup",status="failed"} 1.0' in text
    age = float(text.split('leakhub_job_last_run_age_seconds{job="heartbeat",status="ok"} ')[1]
                .split()[0])
    assert 29 <= age < 120
    backup_age = float(text.split("\nleakhub_backup_newest_verified_age_seconds ")[1].split()[0])
    assert 5 * 3600 - 5 < backup_age < 5 * 3600 + 120
    assert 'leakhub_security_events{kind="sign_in_failed",source="keycloak"} 3.0' in text
    assert "leakhub_organizations 1.0" in text
    leaks = {line.split('"')[1]: float(line.split()[-1]) for line in text.splitlines()
             if line.startswith("leakhub_leaks{")}
    assert sum(leaks.values()) == 6


def test_no_database_is_reported_not_raised(config):
    from leakhub.core.db import database, open_database

    database.initialize(open_database(f"sqlite:///{config.data_dir}/missing/nope/x.db"))
    try:
        database.obj.connect = lambda *a, **k: (_ for _ in ()).throw(RuntimeError("down"))
        assert "leakhub_database_up 0.0" in scrape(config)
    finally:
        database.initialize(None)


def test_endpoint_serves_only_metrics(app, config):
    server = metrics.MetricsServer(config, ("127.0.0.1", 0))
    server.start()
    try:
        base = f"http://127.0.0.1:{server.port}"
        with urllib.request.urlopen(f"{base}/metrics", timeout=10) as resp:
            assert resp.status == 200
            assert resp.headers["Content-Type"].startswith("text/plain")
            assert b"leakhub_organizations" in resp.read()
        for path in ("/", "/metrics/x", "/readyz"):
            with pytest.raises(urllib.error.HTTPError) as err:
                urllib.request.urlopen(f"{base}{path}", timeout=10)
            assert err.value.code == 404
    finally:
        server.stop()


@pytest.mark.parametrize("value,expected", [
    ("127.0.0.1:9464", ("127.0.0.1", 9464)), ("0.0.0.0:9", ("0.0.0.0", 9)),
    ("[::1]:9464", ("::1", 9464)), ("off", None), ("", None)])
def test_parse_bind(value, expected):
    assert metrics.parse_bind(value) == expected


def test_parse_bind_names_the_variable():
    with pytest.raises(ValueError, match="LEAKHUB_METRICS_BIND"):
        metrics.parse_bind("localhost")


WEB_REQUESTS = """
import json, sys
from leakhub.core.config import Config
from leakhub.app import create_app
config = Config.from_env(json.loads(sys.argv[1]))
app = create_app(config)
client = app.test_client()
for path in ("/healthz", "/healthz", "/healthz", "/no-such-page"):
    client.get(path)
"""


def test_web_requests_are_counted_across_processes(app, config, tmp_path):
    """gunicorn's workers are processes: a child process counts, the worker's registry reads
    the files (multiprocess mode); a web start wipes the previous run's files."""
    web_dir = tmp_path / "web-metrics"
    web_dir.mkdir()
    (web_dir / "counter_99999.db").write_bytes(b"stale")
    env = {"LEAKHUB_HOME": str(config.data_dir.parent), "LEAKHUB_PUBLIC_URL": config.public_url,
           "KEYCLOAK_URL": config.keycloak_url, "LEAKHUB_TESTING": "1"}
    proc = subprocess.run([sys.executable, "-c", WEB_REQUESTS, json.dumps(env)],
                          env={**os.environ, **env, "PROMETHEUS_MULTIPROC_DIR": str(web_dir)},
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert not (web_dir / "counter_99999.db").exists()
    text = scrape(config, web_dir)
    assert 'leakhub_http_requests_total{endpoint="home.healthz",method="GET",status="200"} 3.0' \
        in text
    assert 'leakhub_http_requests_total{endpoint="unmatched",method="GET",status="404"} 1.0' \
        in text
    assert 'leakhub_http_request_duration_seconds_count{endpoint="home.healthz",method="GET"} 3.0' \
        in text
