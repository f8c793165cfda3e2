"""Backup settings, read once from the environment (listed in README.md, "Configuration").

Kept beside the feature rather than in `core.config.Config` so the backup code owns its
knobs; `get_settings()` is the one reader, `set_settings()` lets tests install their own.
"""
from __future__ import annotations

import datetime as dt
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from ..core.config import ConfigError

_TIME = re.compile(r"^([01]?\d|2[0-3]):([0-5]\d)$")
_AGE_RECIPIENT = re.compile(r"^age1[02-9ac-hj-np-z]{58}$")


def _int(env, name, default, minimum=0):
    raw = env.get(name)
    if raw in (None, ""):
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{name} must be a whole number, got {raw!r}") from None
    if value < minimum:
        raise ConfigError(f"{name} must be at least {minimum}, got {value}")
    return value


@dataclass(frozen=True)
class BackupSettings:
    copy_dir: Path | None = None
    time: dt.time = dt.time(2, 30)          # nightly backup, server time (UTC)
    keep_daily: int = 7
    keep_weekly: int = 4
    keep_monthly: int = 12
    max_age_hours: int = 36                 # banner / status when the newest verified is older
    recipients: tuple[str, ...] = ()        # customer age public keys (age1...)
    keycloak_db: str = "postgres"           # postgres | h2 | none
    keycloak_database: str = "keycloak"     # PostgreSQL database of Keycloak
    keycloak_db_user: str = "keycloak"
    keycloak_h2_dir: Path | None = None     # dev-file mode: Keycloak's H2 files (default
                                            # <home>/keycloak/h2, home = data dir's parent)
    postgres_superuser: str = "postgres"
    pg_bindir: Path | None = None
    # Who makes, verifies and rotates the backups on schedule: the worker, or something
    # outside it (the Helm chart's CronJob runs `leakctl backup create/verify/prune`); with
    # "external" the worker drops its backup jobs and needs no backup key.
    scheduler: str = "worker"
    extra: dict = field(default_factory=dict)

    @classmethod
    def from_env(cls, env: dict | None = None, *,
                 database_url: str | None = None) -> BackupSettings:
        env = dict(os.environ if env is None else env)
        raw_time = (env.get("LEAKHUB_BACKUP_TIME") or "02:30").strip()
        m = _TIME.match(raw_time)
        if not m:
            raise ConfigError(f"LEAKHUB_BACKUP_TIME must be HH:MM (24 h, UTC), got {raw_time!r}")
        recipients = []
        for item in (env.get("LEAKHUB_BACKUP_RECIPIENTS") or "").split(","):
            item = item.strip()
            if not item:
                continue
            if not _AGE_RECIPIENT.match(item):
                raise ConfigError("LEAKHUB_BACKUP_RECIPIENTS must be comma-separated age public "
                                  f"keys (age1...), got {item[:12]!r}...")
            recipients.append(item)
        database_url = database_url or env.get("DATABASE_URL") or ""
        default_kc = ("postgres" if database_url.startswith(("postgresql://", "postgres://"))
                      else "h2")
        kc_db = (env.get("LEAKHUB_BACKUP_KEYCLOAK_DB") or default_kc).strip().lower()
        if kc_db not in ("postgres", "h2", "none"):
            raise ConfigError(
                f"LEAKHUB_BACKUP_KEYCLOAK_DB must be postgres, h2 or none, got {kc_db!r}")
        h2 = env.get("LEAKHUB_KEYCLOAK_H2_DIR")
        copy_dir = env.get("LEAKHUB_BACKUP_COPY_DIR")
        bindir = env.get("LEAKHUB_PG_BINDIR")
        scheduler = (env.get("LEAKHUB_BACKUP_SCHEDULER") or "worker").strip().lower()
        if scheduler not in ("worker", "external"):
            raise ConfigError(
                f"LEAKHUB_BACKUP_SCHEDULER must be worker or external, got {scheduler!r}")
        return cls(
            copy_dir=Path(copy_dir) if copy_dir else None,
            time=dt.time(int(m.group(1)), int(m.group(2))),
            keep_daily=_int(env, "LEAKHUB_BACKUP_KEEP_DAILY", 7),
            keep_weekly=_int(env, "LEAKHUB_BACKUP_KEEP_WEEKLY", 4),
            keep_monthly=_int(env, "LEAKHUB_BACKUP_KEEP_MONTHLY", 12),
            max_age_hours=_int(env, "LEAKHUB_BACKUP_MAX_AGE_HOURS", 36, minimum=1),
            recipients=tuple(recipients),
            keycloak_db=kc_db,
            keycloak_database=env.get("LEAKHUB_KEYCLOAK_DATABASE") or "keycloak",
            keycloak_db_user=env.get("LEAKHUB_KEYCLOAK_DB_USER") or "keycloak",
            keycloak_h2_dir=Path(h2) if h2 else None,
            postgres_superuser=env.get("LEAKHUB_POSTGRES_SUPERUSER") or "postgres",
            pg_bindir=Path(bindir) if bindir else None,
            scheduler=scheduler,
        )


_settings: BackupSettings | None = None


def get_settings(config=None) -> BackupSettings:
    global _settings
    if _settings is None:
        _settings = BackupSettings.from_env(database_url=config.database_url if config else None)
    return _settings


def set_settings(settings: BackupSettings | None) -> None:
    global _settings
    _settings = settings
