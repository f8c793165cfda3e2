"""Large exports as jobs (issue 19): a web request that would export more than DIRECT_MAX_ROWS
leaks only records an ExportJob; the worker writes the file (streamed: rows are read in
batches and written as they come, XLSX through openpyxl's write-only mode), reports progress
in the row, and the requesting user downloads it from the job's page. No web worker is held
for the minutes a 100,000-leak export can take on a busy machine.

Files live in <data dir>/exports, encrypted at rest like uploads (core.crypto: the job's file
name bound as associated data) and decrypted when downloaded (`open_file`). The worker writes
the plaintext into an anonymous temporary file in that folder (no name: nothing is left by a
crash), seals it a chunk at a time under a temporary name, fsynced and renamed; the download
decrypts a chunk at a time too (core.crypto.seal_stream/open_stream: memory per chunk, not
per file). Files are deleted with their row after RETENTION. Only the user who asked may
download (same organization, through authz.scope, then the job's user), and the worker exports
as that user at run time: a grant revoked meanwhile narrows the export, a disabled user gets
none.
"""
from __future__ import annotations

import datetime as dt
import json
import logging
import secrets
import tempfile
from collections.abc import Iterator
from pathlib import Path

import peewee as pw

from .. import authz
from ..audit import writer
from ..core import crypto
from ..core.config import get_config
from ..core.db import database, on_a_connection_of_its_own, utcnow
from ..core.files import atomic_write_with
from ..identity.models import User
from ..leaks import service as leaks
from . import service
from .models import ExportJob

log = logging.getLogger("leakhub.exports")

# Up to this many rows an export is written inside the request: about a second of CPU for
# CSV (100,000 rows took 4.9 s of CPU, XLSX about three times that), short of what a user
# waits for a download to start and of gunicorn's timeout even on a loaded machine.
DIRECT_MAX_ROWS = 10_000
RETENTION = dt.timedelta(hours=24)
STALE_RUNNING = dt.timedelta(hours=2)  # a worker that died mid-export: the job is failed
PROGRESS_EVERY = 2000


def exports_dir() -> Path:
    path = get_config().data_dir / "exports"
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    return path


def count(actor, flt: leaks.LeakFilter, *, tzname: str | None) -> int:
    return (leaks.filtered_query(actor, flt, tzname=tzname).select(pw.fn.COUNT(pw.SQL("*")))
            .order_by().scalar() or 0)


def request_export(actor, flt: leaks.LeakFilter, *, fmt: str, opts: service.Options,
                   total: int) -> ExportJob:
    """Queue an export of the list's filter for the worker; returns the job."""
    authz.require(actor, "report")
    if fmt not in service.FORMATS:
        raise ValueError(fmt)
    args = {"filter": flt.args(), "semicolon": opts.semicolon,
            "decimal_comma": opts.decimal_comma}
    return ExportJob.create(uid=secrets.token_hex(16), organization=actor.organization,
                            user=actor.user, fmt=fmt, args=json.dumps(args),
                            rows_total=total, created_at=utcnow())


def own_job(actor, uid: str) -> ExportJob | None:
    """The actor's own export job with this uid (tenant-scoped; another user's or another
    organization's job is None, as if it did not exist)."""
    if actor.user is None or not isinstance(uid, str) or len(uid) != 32:
        return None
    return (authz.scope(actor, ExportJob, "report")
            .where((ExportJob.uid == uid) & (ExportJob.user == actor.user)).first())


def file_path(job: ExportJob) -> Path | None:
    if job.status != "done" or not job.file_name:
        return None
    path = exports_dir() / job.file_name
    return path if path.is_file() else None


def open_file(job: ExportJob) -> Iterator[bytes] | None:
    """The plaintext of a finished job's file in chunks (a file from before encryption as it
    is): a download holds one chunk in memory, not the file twice."""
    path = file_path(job)
    if path is None:
        return None
    return crypto.open_stream(get_config(), path, job.file_name, path)


def _set(job: ExportJob, **values) -> None:
    ExportJob.update(**values).where(ExportJob.id == job.id).execute()


def run_job(job: ExportJob) -> None:
    """Write one claimed job's file (temporary name, fsync, rename) as its user."""
    user = User.get_or_none(User.id == job.user_id)
    org = job.organization
    actor = authz.Actor(organization=org, kind="user", user=user, label="export job")
    if user is None or actor.role is None or not authz.can(actor, "report"):
        raise PermissionError("the user may no longer export")
    args = json.loads(job.args or "{}")
    flt = leaks.parse_filter({k: v if isinstance(v, list) else str(v)
                              for k, v in (args.get("filter") or {}).items()})
    opts = service.Options(semicolon=bool(args.get("semicolon")),
                           decimal_comma=bool(args.get("decimal_comma")))
    name = f"{job.uid}.{job.fmt}"
    final = exports_dir() / name

    def progress(n):
        # The export's rows are still being read on this thread's connection.
        on_a_connection_of_its_own(lambda: _set(job, rows_done=n))

    with tempfile.TemporaryFile(dir=exports_dir()) as out:
        n = service.write(actor, flt, fmt=job.fmt, tzname=org.timezone, opts=opts, out=out,
                          progress=progress, every=PROGRESS_EVERY)
        out.seek(0)
        sealed = {}
        atomic_write_with(final, lambda fh: sealed.setdefault(
            "size", crypto.seal_stream(get_config(), out, fh, name)), mode=0o600)
    size = sealed["size"]
    now = utcnow()
    with database.atomic():
        _set(job, status="done", rows_done=n, rows_total=n, file_name=name,
             size=size, finished_at=now, expires_at=now + RETENTION)
        writer.event(actor, "export", details={"format": job.fmt, "rows": n,
                                               "filter": flt.args(), "job": job.uid})


def run_pending(limit: int = 3) -> str:
    """Worker job: claim queued exports oldest first and write them; then clean up."""
    done = []
    for _ in range(limit):
        job = (ExportJob.select().where(ExportJob.status == "queued")
               .order_by(ExportJob.created_at, ExportJob.id).first())
        if job is None:
            break
        claimed = (ExportJob.update(status="running", started_at=utcnow())
                   .where((ExportJob.id == job.id) & (ExportJob.status == "queued")).execute())
        if not claimed:
            continue  # another worker took it
        try:
            run_job(job)
            done.append(job.uid[:8])
        except Exception as exc:  # the job fails, the worker goes on
            log.error("export %s failed: %s", job.uid[:8], exc)
            _set(job, status="failed", message=f"{type(exc).__name__}"[:200],
                 finished_at=utcnow(), expires_at=utcnow() + RETENTION)
    removed = clean_up()
    return f"exports written: {len(done)}; removed: {removed}"


def clean_up(now: dt.datetime | None = None) -> int:
    """Delete expired exports (file and row), fail jobs whose worker died, and remove files
    no row points at (a crash between writing and renaming leaves a temporary file)."""
    now = now or utcnow()
    ExportJob.update(status="failed", message="interrupted", finished_at=now,
                     expires_at=now + RETENTION).where(
        (ExportJob.status == "running") & (ExportJob.started_at < now - STALE_RUNNING)).execute()
    expired = list(ExportJob.select().where(ExportJob.expires_at < now))
    folder = exports_dir()
    for job in expired:
        if job.file_name:
            (folder / job.file_name).unlink(missing_ok=True)
    if expired:
        ExportJob.delete().where(ExportJob.id.in_([j.id for j in expired])).execute()
    known = {name for (name,) in ExportJob.select(ExportJob.file_name).tuples() if name}
    running = {f"{uid}" for (uid,) in ExportJob.select(ExportJob.uid)
               .where(ExportJob.status == "running").tuples()}
    for path in folder.iterdir():
        if path.name in known or path.name.split(".")[0] in running:
            continue
        if path.stat().st_mtime < (now - STALE_RUNNING).replace(tzinfo=dt.UTC).timestamp():
            path.unlink(missing_ok=True)
    return len(expired)
