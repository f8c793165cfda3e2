"""The job table: what runs when. Each entry names a service function in `leakhub`."""
from __future__ import annotations

from leakhub.jobs import service as jobs
from leakhub.security.keycloak_sync import sync_keycloak_events
from leakhub.security.retention import apply_retention
from leakhub.security.review import review_security_events

# (job name, callable, APScheduler trigger kwargs)
JOBS = [
    ("heartbeat", jobs.heartbeat, {"trigger": "interval", "seconds": 30}),
    ("keycloak-event-sync", sync_keycloak_events, {"trigger": "interval", "seconds": 60}),
    ("security-review", review_security_events, {"trigger": "interval", "minutes": 5}),
    ("retention", apply_retention, {"trigger": "cron", "hour": 3, "minute": 17}),
]
