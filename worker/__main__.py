"""`python -m leakhub_worker`: one scheduler for the whole installation.

Only the process that holds the database-wide "scheduler" lock runs jobs; a second replica
stands by and takes over when the first one's connection (and so its lock) goes away.
"""
from __future__ import annotations

import logging
import signal
import sys
import threading
import time

from apscheduler.schedulers.background import BackgroundScheduler

from leakhub.core import crypto, migrations
from leakhub.core import logging as app_logging
from leakhub.core.config import get_config
from leakhub.core.db import database, exclusive_lock, init_database
from leakhub.jobs.service import run_recorded
from leakhub.ops.metrics import start_worker_metrics

from .schedule import JOBS

log = logging.getLogger("leakhub.worker")


def main() -> int:
    config = get_config()
    app_logging.configure("worker", config.log_level)
    try:
        crypto.check_ready(config)     # refuse to run without the data key
    except crypto.DataKeyError as exc:
        log.critical("cannot start: %s", exc)
        sys.stderr.write(f"leakhub worker: cannot start: {exc}\n")
        return 1
    init_database(config)
    metrics = start_worker_metrics(config)   # /metrics on LEAKHUB_METRICS_BIND (internal only)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())

    database.connect(reuse_if_open=True)
    while not stop.is_set():
        with exclusive_lock("scheduler", lock_dir=config.data_dir, blocking=False) as mine:
            if not mine:
                log.info("another worker holds the scheduler lock; standing by")
                stop.wait(15)
                continue
            while migrations.pending() and not stop.is_set():
                log.info("waiting for migrations to be applied")
                stop.wait(5)
            scheduler = BackgroundScheduler(
                timezone="UTC",
                job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": 3600},
            )
            for name, func, trigger in JOBS:
                trigger = dict(trigger)
                at_start = _run_at_start(name, trigger.pop("run_at_start", True))
                scheduler.add_job(run_recorded, args=(name, func), id=name, name=name,
                                  **({"next_run_time": _now()} if at_start else {}), **trigger)
            scheduler.start()
            log.info("scheduler started with %d job(s)", len(JOBS))
            while not stop.is_set():
                stop.wait(5)
                try:  # keep the lock's connection alive; if it died, the lock is gone too
                    database.execute_sql("SELECT 1")
                except Exception:
                    log.error("lost the database connection; restarting the scheduler")
                    break
            scheduler.shutdown(wait=True)
        if not stop.is_set():
            time.sleep(2)
            database.connect(reuse_if_open=True)
    if metrics is not None:
        metrics.stop()
    log.info("worker stopped")
    return 0


def _run_at_start(name, rule) -> bool:
    if not callable(rule):
        return bool(rule)
    try:
        return bool(rule())
    except Exception as exc:  # deciding must never keep the scheduler from starting
        log.warning("job %s: cannot decide whether to run at start: %s", name, exc)
        return False


def _now():
    import datetime as dt

    return dt.datetime.now(dt.UTC)


if __name__ == "__main__":
    sys.exit(main())
