"""Fixtures for tests/compose: the podman engine (Docker API socket + health-check pump) and the
images (stand-ins + the app image), built or reused through composeharness."""
from __future__ import annotations

import os
import shutil
import tempfile
import time
from pathlib import Path

import pytest

import composeharness

REPO = Path(__file__).resolve().parents[2]


class Engine:
    def __init__(self, workdir: Path, service: composeharness.ApiService):
        self.workdir = workdir
        self.service = service
        # `docker compose` = docker-compose 1.29 through the test plugin (README.md).
        self.docker_config = workdir / "docker-config"
        plugins = self.docker_config / "cli-plugins"
        plugins.mkdir(parents=True, exist_ok=True)
        shutil.copy(Path(__file__).with_name("docker-compose-plugin"), plugins / "docker-compose")
        (plugins / "docker-compose").chmod(0o755)

    def env(self, **extra) -> dict:
        env = {k: v for k, v in os.environ.items()
               if not k.startswith(("LEAKHUB_", "COMPOSE_", "PYTHON", "VIRTUAL_ENV"))}
        env.update(DOCKER_HOST=self.service.docker_host, DOCKER_CONFIG=str(self.docker_config),
                   LEAKHUB_MODE="compose")
        env.update(extra)
        return env


@pytest.fixture(scope="session")
def engine():
    workdir = Path(tempfile.mkdtemp(prefix="lh-compose-"))
    started = time.monotonic()
    composeharness.ensure_standins()
    print(f"\nstand-in images ready in {time.monotonic() - started:.0f} s")
    service = composeharness.ApiService(workdir).start()
    pump = composeharness.HealthPump()
    pump.start()
    try:
        yield Engine(workdir, service)
    finally:
        pump.stop()
        service.stop()
        shutil.rmtree(workdir, ignore_errors=True)

