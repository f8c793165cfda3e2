"""LEAKHUB_BACKUP_SCHEDULER: the worker's backup jobs, or an outside scheduler (the Helm
chart's CronJob) — issue 17."""
import importlib

import pytest

import leakhub_worker.schedule as schedule
from leakhub.backups.jobs import BACKUP_JOBS, EXTERNAL_SCHEDULER_DROPS
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
        assert set(BACKUP_JOBS) <= names and "backup-requests" in names
    else:
        # Nor the web page's requests: no worker there could make them.
        assert not set(EXTERNAL_SCHEDULER_DROPS) & names
        assert "backup-requests" in EXTERNAL_SCHEDULER_DROPS
