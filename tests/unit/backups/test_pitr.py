"""Point-in-time recovery (issue 15 part 6) without servers: the --to-time parsing, the target
checks, the window from pgBackRest's info, and where PITR does not apply (SQLite).
The real thing: tests/integration/test_pitr.py."""
import datetime as dt

import pytest
from click.testing import CliRunner

from leakhub.backups import pitr
from leakhub.cli import cli
from leakhub.core.config import Config
from leakhub.core.secrets import ensure_all
from leakhub.ops import status
from leakhub_host import pitr as host_pitr

from support.reporting_data import BASE


@pytest.fixture
def config(tmp_path):
    """The operator organization is the test organization (the Backups page is theirs)."""
    cfg = Config.from_env({"LEAKHUB_HOME": str(tmp_path), "LEAKHUB_TESTING": "1",
                           "LEAKHUB_PUBLIC_URL": "https://leakhub.test",
                           "LEAKHUB_INTERNAL_URL": "http://127.0.0.1:9",
                           "KEYCLOAK_URL": "http://127.0.0.1:9/auth",
                           "LEAKHUB_ORG_SLUG": "acme"})
    ensure_all(cfg.secrets_dir)
    return cfg


def test_parse_target_in_a_time_zone():
    assert pitr.parse_target("2026-07-01 12:00", "Europe/Berlin") == dt.datetime(2026, 7, 1, 10)
    assert pitr.parse_target("2026-01-01 12:00:30", "UTC") == dt.datetime(2026, 1, 1, 12, 0, 30)
    with pytest.raises(pitr.PitrError, match="is not a time"):
        pitr.parse_target("01.07.2026 12:00", "UTC")
    with pytest.raises(pitr.PitrError, match="not a time zone"):
        pitr.parse_target("2026-07-01 12:00", "Mars/Olympus")


def test_check_target():
    now = dt.datetime(2026, 7, 8, 12)
    w = pitr.Window(earliest=dt.datetime(2026, 7, 1, 2), latest=now)
    pitr.check_target(dt.datetime(2026, 7, 5), w, now)
    with pytest.raises(pitr.PitrError, match="in the future"):
        pitr.check_target(now + dt.timedelta(minutes=1), w, now)
    with pytest.raises(pitr.PitrError, match="before the earliest restorable point, "
                                             "2026-07-01 02:00:00 UTC"):
        pitr.check_target(dt.datetime(2026, 6, 30), w, now)
    with pytest.raises(pitr.PitrError, match="no base backup yet"):
        pitr.check_target(dt.datetime(2026, 7, 5), pitr.Window(), now)


class FakeSite:
    retention_days = 7
    conf = "/x/pgbackrest.conf"

    def info(self):
        def backup(start, stop, error=False):
            return {"timestamp": {"start": start, "stop": stop}, "error": error}
        return [{"name": host_pitr.STANZA, "backup": [
            backup(1782871200, 1782871210), backup(1782957600, 1782957612),
            backup(1782957700, 1782957800, error=True)]}]


def test_window_from_info_and_archiver():
    stats = {"last_archived_wal": "000000010000000000000009",
             "last_archived_at": dt.datetime(2026, 7, 2, 3), "failed_count": 1,
             "last_failed_wal": "000000010000000000000008",
             "last_failed_at": dt.datetime(2026, 7, 2, 2)}
    w = pitr.window(FakeSite(), stats)
    assert w.base_backups == 2
    assert w.earliest == dt.datetime(2026, 7, 1, 2, 0, 10)
    assert w.latest == dt.datetime(2026, 7, 2, 3)
    assert not w.archiving_failing          # a success after the failure
    w.last_failed_at = dt.datetime(2026, 7, 2, 4)
    assert w.archiving_failing
    assert w.as_dict()["earliest"] == "2026-07-01T02:00:10Z"


def test_sqlite_installation(app, config):
    with pytest.raises(pitr.PitrError, match="PITR needs PostgreSQL"):
        pitr.site_for(config)
    assert status.check_pitr(config) is None
    result = CliRunner().invoke(cli, ["backup", "restore", "--to-time", "2026-01-01 10:00",
                                      "--tz", "UTC", "--yes"])
    assert result.exit_code == 1 and "PITR needs PostgreSQL" in result.output
    result = CliRunner().invoke(cli, ["backup", "restore", "x.tar.age", "--to-time",
                                      "2026-01-01 10:00"])
    assert result.exit_code != 0 and "not both" in result.output


def test_base_backup_job_is_a_no_op_without_postgresql(app, config, monkeypatch):
    monkeypatch.setattr(pitr, "get_config", lambda: config)
    assert pitr.base_backup_job().startswith("skipped: PITR needs PostgreSQL")
    assert pitr.base_backup_overdue() is False


def test_host_config_files(tmp_path):
    pgdata = tmp_path / "pg"
    pgdata.mkdir()
    (pgdata / "postgresql.conf").write_text("port = 5432\n")
    site = host_pitr.Site(pgdata=pgdata, port=5999, repo=tmp_path / "backups" / "pgbackrest",
                          base=tmp_path / "pgbackrest", retention_days=9)
    site.write_files()
    site.write_files()      # idempotent
    conf = site.conf.read_text()
    assert "repo1-retention-full=9" in conf and "pg1-port=5999" in conf
    assert "archive_mode = on" in (pgdata / "leakhub-pitr.conf").read_text()
    assert (pgdata / "postgresql.conf").read_text().count(host_pitr.INCLUDE_LINE) == 1
    with pytest.raises(host_pitr.PitrError, match="1-365"):
        host_pitr.retention_days({"LEAKHUB_PITR_RETENTION_DAYS": "0"})
    assert host_pitr.enabled({"LEAKHUB_PITR": "off"}) is False


def test_backups_page_shows_the_window(app, config, login, make_user, monkeypatch):
    page = login(make_user("admin")).get("/admin/backups", base_url=BASE)
    assert 'data-testid="pitr-off"' in page.get_data(as_text=True)     # SQLite here
    w = pitr.Window(earliest=dt.datetime(2026, 7, 1, 2), latest=dt.datetime(2026, 7, 8, 11),
                    base_backups=7, last_archived_wal="00000001000000000000002A",
                    last_archived_at=dt.datetime(2026, 7, 8, 11))
    monkeypatch.setattr(pitr, "current_window", lambda config: w)
    text = login(make_user("admin")).get("/admin/backups", base_url=BASE).get_data(as_text=True)
    assert 'data-testid="pitr-window"' in text and "00000001000000000000002A" in text
    assert "pitr-failing" not in text


# --- Docker Compose: the postgres container publishes pgBackRest's info (compose/postgres/pitr.sh)

def published(tmp_path, monkeypatch, *, age_s=30, info=None):
    import json
    now = dt.datetime(2026, 7, 2, 12)
    path = tmp_path / "pitr" / "info.json"
    path.parent.mkdir()
    stamp = int((now - dt.timedelta(seconds=age_s)).replace(tzinfo=dt.UTC).timestamp())
    path.write_text(json.dumps({"published_at": stamp, "retention_days": 9,
                                "info": FakeSite().info() if info is None else info}))
    monkeypatch.setenv(pitr.INFO_FILE_ENV, str(path))
    return path, now


@pytest.fixture
def pg_config(tmp_path):
    cfg = Config.from_env({"LEAKHUB_HOME": str(tmp_path), "LEAKHUB_TESTING": "1",
                           "DATABASE_URL": "postgresql://leakhub@postgres:5432/leakhub",
                           "LEAKHUB_PUBLIC_URL": "https://leakhub.test",
                           "KEYCLOAK_URL": "http://127.0.0.1:9/auth", "LEAKHUB_ORG_SLUG": "acme"})
    return cfg


def test_compose_window_from_the_published_info(pg_config, tmp_path, monkeypatch):
    path, now = published(tmp_path, monkeypatch)
    site = pitr.site_for(pg_config)
    assert isinstance(site, pitr.PublishedSite)
    stats = {"last_archived_wal": "000000010000000000000009",
             "last_archived_at": dt.datetime(2026, 7, 2, 11, 59)}
    w = pitr.window(site, stats)
    assert (w.base_backups, w.retention_days) == (2, 9)
    assert w.earliest == dt.datetime(2026, 7, 1, 2, 0, 10)
    assert w.published_at == now - dt.timedelta(seconds=30)
    monkeypatch.setattr(pitr, "archiver_stats", lambda: stats)
    check = status.check_pitr(pg_config, now=now)
    assert check.ok and "restorable 2026-07-01 02:00:10" in check.detail, check.detail
    # The container's loop stopped publishing: red, and says where to look.
    (tmp_path / "old").mkdir()
    published(tmp_path / "old", monkeypatch, age_s=3600)
    check = status.check_pitr(pg_config, now=now)
    assert not check.ok and "docker compose logs postgres" in check.detail, check.detail
    # In the containers, base backups and restores are the host's verbs.
    with pytest.raises(pitr.PitrError, match="scripts/leakctl backup pitr-base"):
        pitr.base_backup(pg_config)
    with pytest.raises(pitr.PitrError, match="scripts/leakctl backup restore --to-time"):
        pitr.restore_to_time(pg_config, dt.datetime(2026, 7, 2, 10))
    monkeypatch.setattr(pitr, "get_config", lambda: pg_config)
    assert pitr.base_backup_job().startswith("skipped: the postgres container")
    assert pitr.base_backup_overdue() is False
    assert pitr.restore_command().startswith("scripts/leakctl backup restore --to-time")


def test_compose_not_published_yet_and_the_check_request(pg_config, tmp_path, monkeypatch):
    monkeypatch.setenv(pitr.INFO_FILE_ENV, str(tmp_path / "none" / "info.json"))
    monkeypatch.setattr(pitr, "archiver_stats", lambda: {})
    with pytest.raises(pitr.PitrError, match="has not published the PITR window yet"):
        pitr.current_window(pg_config)
    path, now = published(tmp_path, monkeypatch)
    out = pitr.check_request(pg_config, "2026-07-02 13:00", "Europe/Berlin", now=now)
    assert out["target"] == "2026-07-02 11:00:00+00" and out["to_time"] == "2026-07-02T11:00:00Z"
    with pytest.raises(pitr.PitrError, match="in the future"):
        pitr.check_request(pg_config, "2026-07-02 12:30", "UTC", now=now)
    with pytest.raises(pitr.PitrError, match="before the earliest restorable point"):
        pitr.check_request(pg_config, "2026-06-30 12:00", "UTC", now=now)
