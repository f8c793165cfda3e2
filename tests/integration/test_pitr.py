"""Point-in-time recovery (issue 15 part 6) on a real PostgreSQL cluster with pgBackRest.

Its own small native home in a temp directory (only PostgreSQL, through the host tooling's
start_postgres: archive settings, stanza), not the session stack: a restore to a time replaces
the whole cluster, which the other tests share. Everything else goes through `leakctl`:
migrate, `backup pitr-base`, `status`, `backup restore --to-time`.

Write, note time T, write more, restore to T: exactly the writes before T are there.
"""
from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from leakhub_host import layout as host_layout
from leakhub_host import pitr as host_pitr
from leakhub_host.postgres import pg_bindir, pitr_site, start_postgres, stop_postgres

LEAKCTL = Path(sys.executable).parent / "leakctl"

pytestmark = pytest.mark.skipif(shutil.which("pgbackrest") is None,
                                reason="pgbackrest is not installed (scripts/install)")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def pitr_home():
    home = Path(tempfile.mkdtemp(prefix="leakhub-pitr-"))
    home.chmod(0o755)
    port = _free_port()
    (home / "settings.json").write_text(json.dumps({"ports": {"postgres": port}}))
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("LEAKHUB_", "DATABASE_URL", "KEYCLOAK_URL"))}
    env.update({
        "LEAKHUB_HOME": str(home),
        "DATABASE_URL": f"postgresql://leakhub@127.0.0.1:{port}/leakhub",
        # nothing serves here: the restore's "is Leakhub running?" asks closed ports
        "LEAKHUB_INTERNAL_URL": f"http://127.0.0.1:{_free_port()}",
        "KEYCLOAK_URL": f"http://127.0.0.1:{_free_port()}/auth",
        "LEAKHUB_PITR_RETENTION_DAYS": "7",
    })
    layout = host_layout.Layout(home=home, db="postgres",
                                ports={**host_layout.DEFAULT_PORTS, "postgres": port})
    layout.logs_dir.mkdir(parents=True, exist_ok=True)
    run(env, "secrets", "init")
    svc = start_postgres(layout)
    try:
        yield env, layout
    finally:
        stop_postgres(layout, svc)
        if not os.environ.get("LEAKHUB_TEST_KEEP_HOME"):
            shutil.rmtree(home, ignore_errors=True)


def run(env, *args, ok=True):
    proc = subprocess.run([str(LEAKCTL), *args], env=env, capture_output=True, text=True,
                          timeout=600, stdin=subprocess.DEVNULL)
    if ok:
        assert proc.returncode == 0, f"leakctl {' '.join(args)}: {proc.stderr}{proc.stdout}"
    return proc


def sql(layout, text: str) -> str:
    return host_pitr._psql(pg_bindir(), pitr_site(layout), text, database="leakhub")


def test_restore_to_time_keeps_exactly_the_writes_before_it(pitr_home):
    env, layout = pitr_home
    t_start = time.monotonic()
    run(env, "migrate")
    base = json.loads(run(env, "backup", "pitr-base", "--json").stdout)
    assert base["window"]["base_backups"] == 1
    t_base = time.monotonic() - t_start

    sql(layout, "CREATE TABLE pitr_probe (label text PRIMARY KEY)")
    sql(layout, "INSERT INTO pitr_probe VALUES ('before-1'), ('before-2')")
    time.sleep(1.1)
    target = sql(layout, "SELECT to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS')")
    time.sleep(1.1)
    sql(layout, "INSERT INTO pitr_probe VALUES ('after-1')")
    sql(layout, "DELETE FROM pitr_probe WHERE label = 'before-1'")

    # status: archiving health and the window
    status = json.loads(run(env, "status", "--json", ok=False).stdout)
    checks = status["checks"] if isinstance(status, dict) else status
    (pitr_check,) = [c for c in checks if c["name"] == "point-in-time recovery"]
    assert pitr_check["ok"], pitr_check
    assert "restorable" in pitr_check["detail"] and "last archived WAL" in pitr_check["detail"]

    # clear refusals, nothing changed
    future = (dt.datetime.now(dt.UTC) + dt.timedelta(hours=1)).strftime("%Y-%m-%d %H:%M")
    proc = run(env, "backup", "restore", "--to-time", future, "--tz", "UTC", "--yes", ok=False)
    assert proc.returncode != 0 and "in the future" in proc.stderr
    proc = run(env, "backup", "restore", "--to-time", "2020-01-01 00:00", "--tz", "UTC",
               "--yes", ok=False)
    assert proc.returncode != 0 and "before the earliest restorable point" in proc.stderr
    proc = run(env, "backup", "restore", "--to-time", "yesterday", "--yes", ok=False)
    assert proc.returncode != 0 and "is not a time" in proc.stderr
    sqlite_env = dict(env, DATABASE_URL=f"sqlite:///{layout.home}/x.db")
    proc = run(sqlite_env, "backup", "restore", "--to-time", target, "--yes", ok=False)
    assert proc.returncode != 0 and "PITR needs PostgreSQL" in proc.stderr
    assert sql(layout, "SELECT count(*) FROM pitr_probe") == "2"

    # restore to T (Europe/Berlin given: the same instant)
    local = (dt.datetime.strptime(target, "%Y-%m-%d %H:%M:%S").replace(tzinfo=dt.UTC)
             .astimezone(ZoneInfo("Europe/Berlin")))
    t0 = time.monotonic()
    report = json.loads(run(env, "backup", "restore", "--to-time",
                            local.strftime("%Y-%m-%d %H:%M:%S"), "--tz", "Europe/Berlin",
                            "--yes", "--json").stdout)
    t_restore = time.monotonic() - t0
    assert report["to_time"] == target.replace(" ", "T") + "Z"

    # the restore leaves PostgreSQL stopped, as the archive restore does
    svc = start_postgres(layout)
    try:
        rows = sql(layout, "SELECT label FROM pitr_probe ORDER BY label").splitlines()
        assert rows == ["before-1", "before-2"]
        # a writable primary again, and archiving goes on (on a new timeline)
        assert sql(layout, "SELECT pg_is_in_recovery()") == "f"
        host_pitr.switch_wal(pitr_site(layout), pg_bindir())
    finally:
        stop_postgres(layout, svc)
    print(f"\nPITR: base backup {t_base:.1f} s, restore to a time {t_restore:.1f} s "
          f"(recovery {report['recovery_seconds']} s), load {os.getloadavg()[0]:.2f}")
