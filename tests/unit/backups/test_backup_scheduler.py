"""LEAKHUB_BACKUP_SCHEDULER: the worker's backup jobs, or an outside scheduler (the Helm
chart's CronJob) — issue 17."""
import importlib

import pytest

import leakhub_worker.schedule as schedule
from leakhub.backups.jobs import BACKUP_JOBS
from leakhub.backups.settings import BackupSettings, set_settings
from leakhub.core.config import ConfigError


def test_default_is_the_worker():
    assert BackupSettings.from_env({}).scheduler == "worker"
    assert BackupSettings.from_env({"LEAKHUB_BACKUP_SCHEDULER": " External "}).scheduler == \
        "external"


def test_bad_value_names_the_variable():
    with pytest.raises(ConfigError, match="LEAKHUB_BACKUP_SCHEDULER"):
        BackupSettings.from_env({"LEAKHUB_BACKUP_SCHEDULER": "cron"})


@pytest.mark.parametrize("scheduler", ["worker", "external"])
def test_worker_job_table(scheduler):
    set_settings(BackupSettings(scheduler=scheduler))
    try:
        names = {name for name, _func, _trigger in importlib.reload(schedule).JOBS}
    finally:
        set_settings(None)
        importlib.reload(schedule)
    assert "heartbeat" in names and "security-review" in names
    if scheduler == "worker":
        assert set(BACKUP_JOBS) <= names
    else:
        assert not set(BACKUP_JOBS) & names
