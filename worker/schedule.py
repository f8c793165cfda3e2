"""The job table: what runs when. Each entry names a service function in `leakhub`."""
from __future__ import annotations

from leakhub.jobs import service as jobs

# (job name, callable, APScheduler trigger kwargs)
JOBS = [
    ("heartbeat", jobs.heartbeat, {"trigger": "interval", "seconds": 30}),
]
