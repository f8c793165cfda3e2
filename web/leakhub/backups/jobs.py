"""The worker's backup jobs (worker/schedule.py lists them; run_recorded records each run).

- backup: the nightly backup at LEAKHUB_BACKUP_TIME (UTC); also at worker start when the
  newest backup is overdue (the worker was down at the scheduled time: missed runs coalesce
  into one);
- backup-verify: verifies the newest backup when it has not been verified yet (so manual and
  pre-update backups are verified too, within one interval);
- backup-rotate: keep-daily/weekly/monthly rotation, never deleting the newest verified backup;
- backup-requests: makes the backups requested on the web page ("Create backup now"). The
  worker, not the web process, makes them: it can read the backup identity (the archive's
  signature) and every secret the archive must hold — in Compose the web container can read
  neither — and no web request holds a gunicorn worker for the minutes a backup takes.
A run interrupted by a crash stays "running" in JobRun; the next run marks it failed
("interrupted") — it can tell, because it holds the backup lock that a live run would hold.
"""
from __future__ import annotations

import datetime as dt
import socket
import time

from ..audit import writer
from ..core.config import get_config
from ..core.db import database, utcnow
from ..jobs.models import JobRun
from .create import create_backup
from .inventory import archives_on_disk, reconcile
from .lock import backup_lock, lock_is_free
from .models import BackupRecord
from .rotation import rotate
from .service import BackupBusy, BackupError
from .settings import get_settings
from .verify import verify_backup

BACKUP_JOBS = ("backup", "backup-verify", "backup-rotate")
# What the worker leaves out when an outside scheduler makes the backups
# (LEAKHUB_BACKUP_SCHEDULER=external, the Helm chart's CronJob): the scheduled jobs and the web
# page's requests, which that worker could not serve (it holds neither the backup identity nor
# the backup volume); the page offers no "Create backup now" there (views.py).
EXTERNAL_SCHEDULER_DROPS = (*BACKUP_JOBS, "backup-requests")
# A JobRun row per backup requested on the web page: "requested" until the worker takes it,
# then "running", "ok" or "failed" like any recorded run.
REQUEST = "backup-request"


def open_request() -> JobRun | None:
    return (JobRun.select()
            .where((JobRun.job == REQUEST) & JobRun.status.in_(("requested", "running")))
            .order_by(JobRun.id).first())


def request_backup(actor) -> tuple[JobRun, bool]:
    """Queue a manual backup for the worker. One at a time: while one is queued or running,
    that one is returned (new=False) instead of queueing a second."""
    with database.atomic():
        pending = open_request()
        if pending is not None:
            return pending, False
        row = JobRun.create(job=REQUEST, status="requested", started_at=utcnow(),
                            message=f"requested by {actor.display}"[:2000])
        writer.event(actor, "backup.requested", details={"request": row.id})
    return row, True


def _finish(row_id: int, status: str, message: str, started: float) -> None:
    (JobRun.update(status=status, message=message[:2000], finished_at=utcnow(),
                   duration_ms=int((time.perf_counter() - started) * 1000))
     .where(JobRun.id == row_id).execute())


def run_requested_backups() -> str:
    """Job: make the oldest requested backup (one per run; the schedule comes back soon)."""
    # Only this job sets a request running, and the scheduler never runs it twice at once: a
    # request still "running" now was cut off by a killed worker, and would block new ones.
    (JobRun.update(status="failed", finished_at=utcnow(),
                   message=JobRun.message.concat(" — interrupted: the worker ended during the run"))
     .where((JobRun.job == REQUEST) & (JobRun.status == "running")).execute())
    row = (JobRun.select().where((JobRun.job == REQUEST) & (JobRun.status == "requested"))
           .order_by(JobRun.id).first())
    if row is None:
        return "no backup requested"
    claimed = (JobRun.update(status="running", host=socket.gethostname()[:128])
               .where((JobRun.id == row.id) & (JobRun.status == "requested")).execute())
    if not claimed:
        return "the request was taken by another run"
    requested_by = row.message
    started = time.perf_counter()
    try:
        created = create_backup(get_config(), kind="manual", label="worker (web request)")
    except BackupBusy:
        # The nightly run or a leakctl backup holds the lock: the request waits for the next run.
        JobRun.update(status="requested").where(JobRun.id == row.id).execute()
        return "another backup operation is running; the request waits"
    except Exception as exc:
        _finish(row.id, "failed", f"{requested_by}: {type(exc).__name__}: {exc}", started)
        raise
    message = (f"{created.name}: {created.size / 2**20:.1f} MiB in {created.seconds:.1f} s "
               f"({requested_by})")
    if created.warnings:
        message += "; WARNING: " + "; ".join(created.warnings)
    _finish(row.id, "ok", message, started)
    return message


def _mark_interrupted() -> int:
    """Runs left 'running' by a killed process (call while holding the backup lock)."""
    stale = list(JobRun.select().where(JobRun.job.in_(BACKUP_JOBS) & (JobRun.status == "running"))
                 .order_by(JobRun.id.desc()))
    marked = 0
    newest_per_job = {}
    for run in stale:
        if run.job not in newest_per_job:
            newest_per_job[run.job] = run.id   # the current run (just created by run_recorded)
            if run.started_at > utcnow() - dt.timedelta(minutes=1):
                continue
        run.status = "failed"
        run.finished_at = run.finished_at or utcnow()
        run.message = "interrupted: the process ended during the run" + (
            f" ({run.message})" if run.message else "")
        run.save()
        marked += 1
    return marked


def scheduled_backup() -> str:
    config = get_config()
    interrupted = 0
    if lock_is_free(config):
        interrupted = _mark_interrupted()
    created = create_backup(config, kind="scheduled", label="worker")
    message = (f"{created.name}: {created.size / 2**20:.1f} MiB in {created.seconds:.1f} s"
               + (f"; copied to {get_settings(config).copy_dir}" if created.record is not None
                  and created.record.copied else ""))
    if interrupted:
        message += f"; {interrupted} interrupted earlier run(s) marked failed"
    if created.warnings:
        message += "; WARNING: " + "; ".join(created.warnings)
    return message


def verify_pending() -> str:
    config = get_config()
    try:
        with backup_lock(config, what="reconcile"):
            reconcile(config)
    except BackupBusy:
        return "skipped: another backup operation is running"
    newest = (BackupRecord.select().order_by(BackupRecord.created_at.desc(),
                                             BackupRecord.file_name.desc()).first())
    if newest is None:
        return "no backups yet"
    if newest.verify_status is not None:
        return f"{newest.file_name} already verified ({newest.verify_status})"
    try:
        result = verify_backup(config, newest.file_name)
    except BackupBusy:
        return "skipped: another backup operation is running"
    if not result.ok:
        raise BackupError(f"{newest.file_name}: verification FAILED: {result.message}")
    return f"{newest.file_name}: verified ({result.message})"


def rotate_backups() -> str:
    config = get_config()
    try:
        keep, delete = rotate(config)
    except BackupBusy:
        return "skipped: another backup operation is running"
    return f"kept {len(keep)}, deleted {len(delete)}" + (
        ": " + ", ".join(i.name for i in delete) if delete else "")


def backup_overdue(now: dt.datetime | None = None) -> bool:
    """At worker start: run the nightly backup now if the last one was missed."""
    config = get_config()
    settings = get_settings(config)
    now = now or utcnow()
    try:
        newest = archives_on_disk(config)
    except OSError:
        return False
    if not newest:
        return False            # a fresh installation: the first backup runs at the set time
    today = dt.datetime.combine(now.date(), settings.time)
    last_due = today if now >= today else today - dt.timedelta(days=1)
    return newest[0].created_at < last_due - dt.timedelta(minutes=5)
