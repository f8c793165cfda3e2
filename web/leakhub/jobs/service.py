"""Run a job and record the run (JobRun), whoever calls it: the worker, leakctl or a test."""
from __future__ import annotations

import logging
import socket
import time
import traceback

from ..core.db import database, utcnow
from .models import JobRun

log = logging.getLogger("leakhub.jobs")


def run_recorded(job: str, func, *args, **kwargs):
    database.connect(reuse_if_open=True)
    try:
        run = JobRun.create(job=job, started_at=utcnow(), host=socket.gethostname()[:128])
        started = time.perf_counter()
        try:
            message = func(*args, **kwargs) or ""
            status = "ok"
        except Exception as exc:
            message = f"{type(exc).__name__}: {exc}"[:2000]
            status = "failed"
            log.error("job %s failed: %s", job, message, extra={"job": job})
            log.debug(traceback.format_exc())
        run.finished_at = utcnow()
        run.duration_ms = int((time.perf_counter() - started) * 1000)
        run.status = status
        run.message = str(message)[:2000]
        run.save()
        return run
    finally:
        database.close()


def heartbeat():
    return "alive"


def last_run(job: str) -> JobRun | None:
    return JobRun.select().where(JobRun.job == job).order_by(JobRun.started_at.desc()).first()
