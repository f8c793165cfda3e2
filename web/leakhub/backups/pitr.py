"""Point-in-time recovery (issue 15 part 6): continuous WAL archiving of the native stack's
PostgreSQL cluster to a pgBackRest repository (host tooling: leakhub_host.pitr writes the
configuration and creates the stanza at every PostgreSQL start), daily base backups by the
worker (and `leakctl backup pitr-base`), the restorable window for `leakctl status` and the
Backups page, and `leakctl backup restore --to-time`.

The restore replaces the whole cluster — Leakhub's and Keycloak's databases — by its state at
the target time; uploads and secrets are files and stay as they are (see docs/backups.md).
"""
from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from leakhub_host import pitr as host_pitr
from leakhub_host.postgres import pg_bindir, pitr_site, stop_postgres

from ..core.config import get_config
from ..core.db import database, utcnow
from . import native
from .lock import backup_lock
from .restore import migrate_live_database
from .service import BackupError, audit, say, uses_postgres

DEFAULT_BASE_TIME = dt.time(1, 30)      # the daily base backup, UTC
TIME_FORMATS = ("%Y-%m-%d %H:%M:%S", "%Y-%m-%d %H:%M")
# A base backup older than this (or none) makes the worker take one at its start.
BASE_MAX_AGE = dt.timedelta(hours=26)


class PitrError(BackupError):
    """PITR is not possible here or failed; one line for the operator."""


def base_time(env=None) -> dt.time:
    raw = str((os.environ if env is None else env).get("LEAKHUB_PITR_TIME", "") or "").strip()
    if not raw:
        return DEFAULT_BASE_TIME
    try:
        return dt.datetime.strptime(raw, "%H:%M").time()
    except ValueError:
        raise PitrError(f"LEAKHUB_PITR_TIME must be HH:MM (UTC), got {raw!r}") from None


# Docker Compose: pgBackRest runs in the postgres container (compose/postgres/pitr.sh), which
# publishes `pgbackrest info` as JSON into a volume web and worker mount read-only.
INFO_FILE_ENV = "LEAKHUB_PITR_INFO_FILE"
# The postgres container publishes every minute; older than this, its loop is not running.
PUBLISHED_MAX_AGE = dt.timedelta(minutes=15)
COMPOSE_HINT = ("in Docker Compose the postgres container does this: run "
                "scripts/leakctl backup {verb} on the host")


@dataclass
class PublishedSite:
    """The repository as the Compose postgres container describes it (read-only view)."""
    path: Path
    retention_days: int = host_pitr.DEFAULT_RETENTION_DAYS
    published_at: dt.datetime | None = None

    @property
    def conf(self) -> Path:
        return self.path

    def info(self) -> list:
        try:
            data = json.loads(self.path.read_text())
        except FileNotFoundError:
            raise PitrError(f"the postgres container has not published the PITR window yet "
                            f"({self.path}); see `docker compose logs postgres`") from None
        except (OSError, ValueError) as exc:
            raise PitrError(f"cannot read {self.path}: {exc}") from None
        try:
            self.retention_days = int(data.get("retention_days") or self.retention_days)
            self.published_at = _utc(int(data["published_at"]))
        except (KeyError, TypeError, ValueError):
            raise PitrError(f"{self.path} is not what the postgres container writes") from None
        return data.get("info") or []

    def backup(self, kind: str = "full") -> None:
        raise PitrError(COMPOSE_HINT.format(verb="pitr-base"))


def restore_command(env=None) -> str:
    """How an operator restores to a time on this kind of installation (Backups page)."""
    if str((os.environ if env is None else env).get(INFO_FILE_ENV, "") or "").strip():
        return 'scripts/leakctl backup restore --to-time "YYYY-MM-DD HH:MM"'
    return 'leakctl backup restore --to-time "YYYY-MM-DD HH:MM" --stop-services'


def site_for(config) -> host_pitr.Site | PublishedSite:
    """This installation's pgBackRest stanza, or PitrError saying why there is none."""
    if not uses_postgres(config):
        raise PitrError("PITR needs PostgreSQL: this installation uses SQLite (DATABASE_URL); "
                        "restore from a backup archive instead (leakctl backup restore FILE)")
    published = os.environ.get(INFO_FILE_ENV, "").strip()
    if published:
        return PublishedSite(Path(published))
    home = native.can_start_native_postgres(config)
    if home is None:
        raise PitrError("PITR is set up by the native stack's PostgreSQL (scripts/stack.py); "
                        "this database is elsewhere (see docs/backups.md, Docker Compose)")
    if not host_pitr.enabled():
        raise PitrError("PITR is off: pgBackRest is not installed (scripts/install) or "
                        "LEAKHUB_PITR=off")
    try:
        site = pitr_site(native.native_layout(config, home))
    except Exception as exc:   # StackError from the host tooling (missing secret, setting)
        raise PitrError(f"PITR is not usable: {exc}") from None
    if site is None or not site.conf.exists():
        raise PitrError("PITR is not set up yet: restart PostgreSQL (scripts/stack.py up) "
                        "so that WAL archiving starts")
    return site


def _run(fn, *args, **kw):
    try:
        return fn(*args, **kw)
    except host_pitr.PitrError as exc:
        raise PitrError(str(exc)) from None


# --------------------------------------------------------------------------- the window

@dataclass
class Window:
    earliest: dt.datetime | None = None    # naive UTC: the first restorable moment
    latest: dt.datetime | None = None      # naive UTC: the last archived WAL's time
    base_backups: int = 0
    newest_base: dt.datetime | None = None
    published_at: dt.datetime | None = None     # Compose: when postgres published the info
    last_archived_wal: str | None = None
    last_archived_at: dt.datetime | None = None
    failed_count: int = 0
    last_failed_wal: str | None = None
    last_failed_at: dt.datetime | None = None
    retention_days: int = host_pitr.DEFAULT_RETENTION_DAYS

    def as_dict(self) -> dict:
        out = asdict(self)
        for key, value in out.items():
            if isinstance(value, dt.datetime):
                out[key] = value.strftime("%Y-%m-%dT%H:%M:%SZ")
        return out

    @property
    def archiving_failing(self) -> bool:
        """The last attempt failed (a failure after the last success)."""
        return bool(self.last_failed_at and (self.last_archived_at is None
                                             or self.last_failed_at > self.last_archived_at))


def _utc(value) -> dt.datetime | None:
    if value is None or value == "":
        return None
    if isinstance(value, str):
        value = dt.datetime.fromisoformat(value)
    if isinstance(value, (int, float)):
        return dt.datetime.fromtimestamp(value, dt.UTC).replace(tzinfo=None)
    if value.tzinfo is not None:
        value = value.astimezone(dt.UTC).replace(tzinfo=None)
    return value


def archiver_stats() -> dict:
    """PostgreSQL's pg_stat_archiver (readable by every role) over the app's connection."""
    row = database.execute_sql(
        "SELECT last_archived_wal, last_archived_time, failed_count, last_failed_wal, "
        "last_failed_time FROM pg_stat_archiver").fetchone()
    return {"last_archived_wal": row[0], "last_archived_at": _utc(row[1]),
            "failed_count": int(row[2] or 0), "last_failed_wal": row[3],
            "last_failed_at": _utc(row[4])}


def window(site: host_pitr.Site, stats: dict | None = None) -> Window:
    """From pgBackRest's info (base backups) and the archiver's statistics."""
    info = _run(site.info)
    stanza = next((s for s in info if s.get("name") == host_pitr.STANZA), None)
    if stanza is None:
        raise PitrError(f"pgBackRest knows no stanza {host_pitr.STANZA!r} (see {site.conf})")
    backups = [b for b in stanza.get("backup") or [] if not b.get("error")]
    w = Window(retention_days=site.retention_days, base_backups=len(backups),
               published_at=getattr(site, "published_at", None))
    if backups:
        stops = [_utc(b["timestamp"]["stop"]) for b in backups]
        w.earliest, w.newest_base = min(stops), max(stops)
    for key, value in (stats or {}).items():
        setattr(w, key, value)
    if w.earliest is not None:
        w.latest = max(filter(None, (w.newest_base, w.last_archived_at)))
    return w


def current_window(config) -> Window:
    site = site_for(config)
    return window(site, archiver_stats())


# --------------------------------------------------------------------------- base backups

def base_backup(config, *, log_fn=None) -> str:
    """A full base backup now; pgBackRest then expires what is older than the retention
    (keeping the WAL the remaining backups need)."""
    site = site_for(config)
    started = time.monotonic()
    say(log_fn, "pgBackRest: full base backup")
    # pgBackRest's own lock keeps base backups apart; the archive directory's lock is not
    # taken, so archive backups and their tests never wait for a base backup.
    _run(site.backup, "full")
    seconds = time.monotonic() - started
    w = window(site)
    return (f"base backup in {seconds:.1f} s; {w.base_backups} base backup(s), restorable from "
            f"{w.earliest:%Y-%m-%d %H:%M:%S} UTC")


def base_backup_job() -> str:
    """The worker's daily job (a no-op where PITR is not available)."""
    config = get_config()
    try:
        site = site_for(config)
    except PitrError as exc:
        return f"skipped: {exc}"
    if isinstance(site, PublishedSite):
        return "skipped: the postgres container takes the base backups (Docker Compose)"
    return base_backup(config)


def base_backup_overdue() -> bool:
    config = get_config()
    try:
        site = site_for(config)
        if isinstance(site, PublishedSite):
            return False
        w = window(site)
    except (PitrError, OSError):
        return False
    return w.newest_base is None or utcnow() - w.newest_base > BASE_MAX_AGE


# --------------------------------------------------------------------------- restore to a time

def parse_target(text: str, tz: str) -> dt.datetime:
    """"YYYY-MM-DD HH:MM[:SS]" in time zone `tz` → naive UTC."""
    try:
        zone = ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError):
        raise PitrError(f"--tz {tz!r} is not a time zone (use a name like Europe/Berlin "
                        "or UTC)") from None
    for fmt in TIME_FORMATS:
        try:
            local = dt.datetime.strptime((text or "").strip(), fmt)
            break
        except ValueError:
            continue
    else:
        raise PitrError(f"--to-time {text!r} is not a time: use \"YYYY-MM-DD HH:MM\" or "
                        "\"YYYY-MM-DD HH:MM:SS\"")
    return local.replace(tzinfo=zone).astimezone(dt.UTC).replace(tzinfo=None)


def check_target(target: dt.datetime, w: Window, now: dt.datetime | None = None) -> None:
    now = now or utcnow()
    if target > now:
        raise PitrError(f"{target:%Y-%m-%d %H:%M:%S} UTC is in the future (now "
                        f"{now:%Y-%m-%d %H:%M:%S} UTC)")
    if w.earliest is None:
        raise PitrError("no base backup yet, so no point in time is restorable: take one with "
                        "`leakctl backup pitr-base`")
    if target < w.earliest:
        raise PitrError(f"{target:%Y-%m-%d %H:%M:%S} UTC is before the earliest restorable "
                        f"point, {w.earliest:%Y-%m-%d %H:%M:%S} UTC")


def _is_running(site: host_pitr.Site, bindir: Path) -> bool:
    proc = subprocess.run([str(bindir / "pg_ctl"), "status", "-D", str(site.pgdata)],
                          cwd="/", stdin=subprocess.DEVNULL, capture_output=True,
                          **(site.run_as or {}))
    return proc.returncode == 0


def _close_app_connection() -> None:
    try:
        if not database.is_closed():
            database.close()
    except Exception:   # an uninitialised proxy: nothing is open
        pass


def restore_to_time(config, target: dt.datetime, *, stop_services: bool = False,
                    confirm=None, log_fn=None, now: dt.datetime | None = None) -> dict:
    """Restore the cluster to `target` (naive UTC). Stops nothing but the native stack (with
    `stop_services`) and PostgreSQL; PostgreSQL is stopped again at the end like the archive
    restore leaves it, the stack stays down."""
    site = site_for(config)
    if isinstance(site, PublishedSite):
        raise PitrError(COMPOSE_HINT.format(verb="restore --to-time …"))
    home = native.can_start_native_postgres(config)
    layout = native.native_layout(config, home)
    bindir = pg_bindir()
    report: dict = {"to_time": target.strftime("%Y-%m-%dT%H:%M:%SZ")}
    # Refuse a target outside the window before anything is stopped (the repository alone
    # knows the base backups; the end of the window is checked again below).
    check_target(target, window(site), now)
    with backup_lock(config, what="point-in-time restore"):
        state = native.serving(config)
        if state.any:
            if not stop_services:
                raise PitrError("Leakhub is running (" + ", ".join(state.services) + "); stop "
                                "it first or pass --stop-services")
            say(log_fn, f"stopping the native stack in {home}")
            try:
                native.stop_native_stack(home)
            except native.NativeStackError as exc:
                raise PitrError(str(exc)) from None
            report["stopped_stack"] = str(home)
        started = None
        if not _is_running(site, bindir):
            started = native.NativePostgres(config, home)
            try:
                started.start()
            except native.NativeStackError as exc:
                raise PitrError(str(exc)) from None
        try:
            # The WAL up to now must be in the repository: close the current segment.
            _run(host_pitr.switch_wal, site, bindir)
            stats = host_pitr.archiver(site, bindir)
            w = window(site, {k: _utc(v) if k.endswith("_at") else v for k, v in stats.items()})
            check_target(target, w, now)
            report["window"] = w.as_dict()
            if confirm is not None and not confirm(w):
                raise PitrError("restore cancelled; nothing was changed")
        except BaseException:
            if started is not None:
                started.stop()
            raise
        _close_app_connection()
        say(log_fn, "stopping PostgreSQL")
        stop_postgres(layout, started.service if started else None)
        say(log_fn, f"pgBackRest: restoring the cluster to {target:%Y-%m-%d %H:%M:%S} UTC "
                     "and replaying the WAL")
        t0 = time.monotonic()
        _run(host_pitr.recover, site, bindir, target.strftime("%Y-%m-%d %H:%M:%S+00"),
             layout.log("postgres"))
        report["recovery_seconds"] = round(time.monotonic() - t0, 1)
        say(log_fn, "starting PostgreSQL: migrations and the audit event")
        pg = native.NativePostgres(config, home)
        try:
            pg.start()
        except native.NativeStackError as exc:
            raise PitrError(str(exc)) from None
        try:
            report["migrations_applied"] = migrate_live_database(config, log_fn)
            audit(config, "backup.restored_to_time", {"to_time": report["to_time"]},
                  label="leakctl backup restore --to-time")
        finally:
            _close_app_connection()
            pg.stop()
    return report


def check_request(config, text: str, tz: str, now: dt.datetime | None = None) -> dict:
    """The checks of a restore to a time, changing nothing: the target parsed in `tz`, inside
    the window, not in the future. For the Compose host's `leakctl backup restore --to-time`,
    which then does the restore with the containers (host/leakhub_host/composepitr.py)."""
    target = parse_target(text, tz)
    w = current_window(config)
    check_target(target, w, now)
    return {"to_time": target.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "target": target.strftime("%Y-%m-%d %H:%M:%S+00"), "tz": tz,
            "window": w.as_dict()}


def record_restore(config, to_time: str, *, log_fn=None) -> dict:
    """After the Compose host restored the cluster to `to_time` (ISO UTC) and PostgreSQL has
    been promoted: migrate Leakhub's database forward and write the audit event, as the native
    restore does."""
    try:
        _utc(to_time)
    except (TypeError, ValueError):
        raise PitrError(f"--to-time must be the restored time as ISO 8601 (UTC), got "
                        f"{to_time!r}") from None
    applied = migrate_live_database(config, log_fn)
    try:
        audit(config, "backup.restored_to_time", {"to_time": to_time},
              label="leakctl backup restore --to-time")
    finally:
        _close_app_connection()
    return {"to_time": to_time, "migrations_applied": applied}
