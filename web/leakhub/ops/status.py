"""Health of the installation, as `leakctl status` and the admin "System" page see it.
Each check returns a Check; `needs_attention` drives the CLI's exit code."""
from __future__ import annotations

import datetime as dt
import shutil
from dataclasses import asdict, dataclass

import peewee as pw
import requests

from ..backups import pitr
from ..backups.inventory import newest_usable
from ..backups.settings import get_settings
from ..core import migrations
from ..core.db import database, utcnow
from ..jobs.models import JobRun
from ..orgs.models import Organization
from . import tls

HEARTBEAT_MAX_AGE = dt.timedelta(minutes=2)
# A new backup counts before the worker's backup-verify job (every 15 minutes) has checked it;
# one still unverified after this is a problem (the verification does not run).
VERIFY_GRACE = dt.timedelta(hours=2)


@dataclass
class Check:
    name: str
    ok: bool
    detail: str

    def as_dict(self):
        return asdict(self)


def check_database() -> Check:
    try:
        database.execute_sql("SELECT 1")
    except Exception as exc:
        return Check("database", False, f"not reachable: {type(exc).__name__}")
    pending = migrations.pending()
    if pending:
        return Check("database", False,
                     f"{len(pending)} migration(s) pending "
                     f"(schema {migrations.current_version()} of {migrations.head()})")
    return Check("database", True, f"schema version {migrations.head()}")


def check_keycloak(config) -> Check:
    try:
        resp = requests.get(f"{config.keycloak_url}/realms/master", timeout=5)
        return Check("keycloak", resp.status_code == 200, f"HTTP {resp.status_code}")
    except requests.RequestException as exc:
        return Check("keycloak", False, f"not reachable: {type(exc).__name__}")


def check_worker(now: dt.datetime | None = None) -> Check:
    now = now or utcnow()
    last = (JobRun.select().where((JobRun.job == "heartbeat") & (JobRun.status == "ok"))
            .order_by(JobRun.started_at.desc()).first())
    if last is None:
        return Check("worker", False, "no heartbeat recorded yet")
    age = now - (last.finished_at or last.started_at)
    if age > HEARTBEAT_MAX_AGE:
        return Check("worker", False, f"last heartbeat {int(age.total_seconds())} s ago")
    return Check("worker", True, f"last heartbeat {int(age.total_seconds())} s ago")


def failed_jobs(since: dt.datetime | None = None) -> list[JobRun]:
    """The last finished run of every job, where that run failed: a job stays failed until a
    later run of the same job succeeds. With `since`, only runs started at or after it count
    (the updater's health gate asks about the new worker, not an old failure)."""
    failed = []
    for (job,) in JobRun.select(JobRun.job).distinct().tuples():
        query = JobRun.select().where((JobRun.job == job) & (JobRun.status.in_(("ok", "failed"))))
        if since is not None:
            query = query.where(JobRun.started_at >= since)
        last = query.order_by(JobRun.started_at.desc(), JobRun.id.desc()).first()
        if last is not None and last.status == "failed":
            failed.append(last)
    return sorted(failed, key=lambda r: r.job)


def check_jobs(since: dt.datetime | None = None) -> Check:
    failed = failed_jobs(since)
    if failed:
        return Check("jobs", False, "; ".join(
            f"{r.job} failed at {r.started_at:%Y-%m-%d %H:%M} UTC: {r.message[:160]}"
            for r in failed))
    return Check("jobs", True, "no job's last run failed")


def check_disk(config, *, min_free_fraction: float = 0.10) -> list[Check]:
    checks = []
    for label, path in (("data volume", config.data_dir), ("backup volume", config.backup_dir)):
        try:
            usage = shutil.disk_usage(path)
        except FileNotFoundError:
            checks.append(Check(label, False, f"{path} does not exist"))
            continue
        free = usage.free / usage.total if usage.total else 0
        checks.append(Check(label, free >= min_free_fraction,
                            f"{usage.free / 2**30:.1f} GiB free of {usage.total / 2**30:.1f} GiB"))
    return checks


def check_backups(config, now: dt.datetime | None = None) -> Check:
    """The newest backup (verified, or new and not yet verified; one that failed verification
    does not count) is recent enough, and the last scheduled run did not fail."""
    settings = get_settings(config)
    now = now or utcnow()
    limit = dt.timedelta(hours=settings.max_age_hours)
    last = (JobRun.select().where(JobRun.job == "backup").order_by(JobRun.started_at.desc())
            .first())
    if last is not None and last.status == "failed":
        return Check("backups", False, f"the last scheduled backup failed: {last.message[:200]}")
    newest = newest_usable()
    if newest is None:
        first = Organization.select(pw.fn.MIN(Organization.created_at)).scalar()
        if first is None or now - first < limit:
            return Check("backups", True, "no backup yet; the first runs at "
                                          f"{settings.time.strftime('%H:%M')} UTC")
        return Check("backups", False, "no verified backup")
    age = now - newest.created_at
    verified = newest.verify_status == "ok"
    detail = (f"newest {newest.file_name} ({int(age.total_seconds() // 3600)} h old, "
              + ("verified)" if verified else "not yet verified)"))
    if age > limit:
        return Check("backups", False, detail + f", older than {settings.max_age_hours} h")
    if not verified and age > VERIFY_GRACE:
        return Check("backups", False, detail + f", still not verified after "
                                                f"{int(VERIFY_GRACE.total_seconds() // 3600)} h")
    if settings.copy_dir and not newest.copied:
        return Check("backups", False, detail + f", not copied to {settings.copy_dir}")
    return Check("backups", True, detail)


def check_pitr(config, now: dt.datetime | None = None) -> Check | None:
    """Point-in-time recovery: WAL archiving health and the restorable window (None where
    PITR does not apply: SQLite, or a database the native stack does not run)."""
    try:
        site = pitr.site_for(config)
    except pitr.PitrError as exc:
        text = str(exc)
        if text.startswith(("PITR needs PostgreSQL", "PITR is set up by")):
            return None
        return Check("point-in-time recovery", False, text)
    now = now or utcnow()
    try:
        w = pitr.window(site, pitr.archiver_stats())
    except (pitr.PitrError, pw.DatabaseError) as exc:
        return Check("point-in-time recovery", False, str(exc)[:300])
    last = (f"last archived WAL {w.last_archived_wal} "
            f"{int((now - w.last_archived_at).total_seconds())} s ago"
            if w.last_archived_at else "no WAL archived yet")
    errors = (f"; {w.failed_count} archiving failure(s), last {w.last_failed_wal} at "
              f"{w.last_failed_at:%Y-%m-%d %H:%M:%S} UTC" if w.failed_count else "")
    if w.archiving_failing:
        return Check("point-in-time recovery", False, "WAL archiving FAILS: " + last + errors)
    if w.published_at is not None and now - w.published_at > pitr.PUBLISHED_MAX_AGE:
        return Check("point-in-time recovery", False,
                     f"the postgres container last published the window "
                     f"{int((now - w.published_at).total_seconds())} s ago (its PITR loop is not "
                     f"running: docker compose logs postgres); {last}{errors}")
    if w.earliest is None:
        return Check("point-in-time recovery", False,
                     f"no base backup yet (the worker takes one daily; now: leakctl backup "
                     f"pitr-base); {last}{errors}")
    detail = (f"restorable {w.earliest:%Y-%m-%d %H:%M:%S} – {w.latest:%Y-%m-%d %H:%M:%S} UTC "
              f"({w.base_backups} base backup(s), retention {w.retention_days} days); "
              f"{last}{errors}")
    if now - w.newest_base > dt.timedelta(hours=36):
        return Check("point-in-time recovery", False, detail + "; newest base backup older "
                                                            "than 36 h")
    return Check("point-in-time recovery", True, detail)


def organizations() -> Check:
    return Check("organizations", True, str(Organization.select().count()))


def check_certificate(config) -> Check | None:
    report = tls.check(config)
    if report is None:
        return None
    if report.problems or report.warnings:
        return Check("certificate", False, "; ".join(report.problems + report.warnings))
    return Check("certificate", True, f"{report.subject}: valid until "
                                      f"{report.not_after:%Y-%m-%d} ({report.days_left} days)")


def all_checks(config) -> list[Check]:
    checks = [check_database(), check_keycloak(config)]
    cert = check_certificate(config)
    if cert is not None:
        checks.append(cert)
    if checks[0].ok:
        checks += [check_worker(), check_jobs(), organizations(), check_backups(config)]
        pitr_check = check_pitr(config)
        if pitr_check is not None:
            checks.append(pitr_check)
    checks += check_disk(config)
    return checks
