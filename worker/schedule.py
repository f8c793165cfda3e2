"""The job table: what runs when. Each entry names a service function in `leakhub`."""
from __future__ import annotations

from leakhub.backups import jobs as backups
from leakhub.backups import pitr
from leakhub.backups.settings import get_settings as backup_settings
from leakhub.exports import jobs as exports
from leakhub.followup.service import send_follow_up_mails
from leakhub.jobs import service as jobs
from leakhub.photos.service import collect_garbage_everywhere
from leakhub.security.keycloak_sync import sync_keycloak_events
from leakhub.security.retention import apply_retention
from leakhub.security.review import review_security_events

_backup_time = backup_settings().time
_pitr_time = pitr.base_time()

# (job name, callable, APScheduler trigger kwargs). "run_at_start" (default True): run once
# when the scheduler starts; a callable decides then (e.g. only when a run was missed).
JOBS = [
    ("heartbeat", jobs.heartbeat, {"trigger": "interval", "seconds": 30}),
    # Large leak exports requested on the web (issue 19): written here, not in a request.
    ("exports", exports.run_pending, {"trigger": "interval", "seconds": 10}),
    ("keycloak-event-sync", sync_keycloak_events, {"trigger": "interval", "seconds": 60}),
    ("security-review", review_security_events, {"trigger": "interval", "minutes": 5}),
    ("retention", apply_retention, {"trigger": "cron", "hour": 3, "minute": 17}),
    ("photo-cleanup", collect_garbage_everywhere, {"trigger": "cron", "hour": 3, "minute": 47}),
    # Repair follow-up (issue 18): hourly, each assignee gets at most one mail a day from 06:00
    # in the organization's time zone (followup/service.py).
    ("follow-up-mail", send_follow_up_mails, {"trigger": "cron", "minute": 5}),
    ("backup", backups.scheduled_backup,
     {"trigger": "cron", "hour": _backup_time.hour, "minute": _backup_time.minute,
      "run_at_start": backups.backup_overdue}),
    ("backup-verify", backups.verify_pending, {"trigger": "interval", "minutes": 15}),
    ("backup-rotate", backups.rotate_backups, {"trigger": "interval", "hours": 1}),
    ("backup-requests", backups.run_requested_backups, {"trigger": "interval", "seconds": 20}),
    # Point-in-time recovery: a pgBackRest base backup daily (a no-op without PostgreSQL).
    ("pitr-base", pitr.base_backup_job,
     {"trigger": "cron", "hour": _pitr_time.hour, "minute": _pitr_time.minute,
      "run_at_start": pitr.base_backup_overdue}),
]

# LEAKHUB_BACKUP_SCHEDULER=external (the Helm chart: a CronJob makes, verifies and rotates the
# backups; the web page queues none): the worker keeps every other job.
if backup_settings().scheduler == "external":
    JOBS = [job for job in JOBS if job[0] not in backups.EXTERNAL_SCHEDULER_DROPS]
