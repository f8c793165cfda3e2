"""Unit tests: no servers, SQLite on a temporary file."""
from __future__ import annotations

import pytest

from leakhub.core.config import Config
from leakhub.core.secrets import ensure_all


@pytest.fixture
def config(tmp_path):
    env = {
        "LEAKHUB_HOME": str(tmp_path),
        "LEAKHUB_PUBLIC_URL": "https://leakhub.test",
        "KEYCLOAK_URL": "http://127.0.0.1:9/auth",  # nothing listens: unit tests never call it
        "LEAKHUB_TESTING": "1",
    }
    cfg = Config.from_env(env)
    ensure_all(cfg.secrets_dir)
    return cfg


@pytest.fixture
def app(config):
    from leakhub.app import create_app

    app = create_app(config)
    yield app
    from leakhub.core.config import set_config

    set_config(None)


@pytest.fixture
def client(app):
    return app.test_client()
