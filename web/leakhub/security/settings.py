"""Settings of the security feature, read from the environment when a job runs.

Same rules as core.config: a malformed value raises ConfigError naming the variable.
Listed in README.md ("Configuration").
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass

from ..core.config import ConfigError, get_config, smtp_from_env


def _env(env):
    return os.environ if env is None else env


def env_int(name: str, default: int, *, minimum: int = 0, env=None) -> int:
    raw = (_env(env).get(name) or "").strip()
    if raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{name} must be a whole number, got {raw!r}") from None
    if value < minimum:
        raise ConfigError(f"{name} must be at least {minimum}, got {value}")
    return value


def env_str(name: str, default: str = "", *, env=None) -> str:
    return (_env(env).get(name) or default).strip()


@dataclass(frozen=True)
class Retention:
    security_events_days: int
    job_runs_days: int
    findings_days: int
    audit_days: int
    ip_truncate_days: int

    @classmethod
    def from_env(cls, env=None) -> Retention:
        return cls(
            security_events_days=env_int("LEAKHUB_RETENTION_SECURITY_EVENTS_DAYS", 180,
                                         minimum=1, env=env),
            job_runs_days=env_int("LEAKHUB_RETENTION_JOB_RUNS_DAYS", 90, minimum=1, env=env),
            findings_days=env_int("LEAKHUB_RETENTION_FINDINGS_DAYS", 365, minimum=1, env=env),
            audit_days=env_int("LEAKHUB_RETENTION_AUDIT_DAYS", 3650, minimum=1, env=env),
            ip_truncate_days=env_int("LEAKHUB_RETENTION_IP_TRUNCATE_DAYS", 30, minimum=0,
                                     env=env),
        )


_HOURS = re.compile(r"^(\d{1,2})-(\d{1,2})$")


def work_hours(env=None) -> tuple[int, int] | None:
    """LEAKHUB_WORK_HOURS "06-20": activity from 06:00 to 19:59 local time is normal.
    "off" disables the unusual-hours rule. A range like "22-06" wraps past midnight."""
    raw = env_str("LEAKHUB_WORK_HOURS", "06-20", env=env).lower()
    if raw in ("off", "none", "0", "false"):
        return None
    m = _HOURS.match(raw)
    if not m or not (0 <= int(m.group(1)) <= 23 and 1 <= int(m.group(2)) <= 24) \
            or int(m.group(1)) == int(m.group(2)):
        raise ConfigError(
            f"LEAKHUB_WORK_HOURS must look like 06-20 (start hour 0-23, end hour 1-24) or off, "
            f"got {raw!r}")
    return int(m.group(1)), int(m.group(2))


def in_work_hours(hour: int, hours: tuple[int, int]) -> bool:
    start, end = hours
    if start < end:
        return start <= hour < end
    return hour >= start or hour < end


def smtp(env=None, config=None):
    """Outgoing mail settings: the configuration's, or parsed from `env` (tests) by the one
    parser in core.config."""
    config = config or get_config()
    if env is None:
        return config.smtp
    return smtp_from_env(env, config.public_url)
