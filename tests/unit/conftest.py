"""Unit tests: no servers, SQLite on a temporary file.

The one place for fixtures that more than one test module uses (config, app, client, org,
other_org, make_user, make_actor, actor, login, tree); a fixture only one module needs stays in
that module. Test data and helpers are in tests/support (`from support.reporting_data import
...`), never imported from another test module."""
from __future__ import annotations

import pytest

from leakhub.core.config import Config
from leakhub.core.secrets import ensure_all

from support import unit_postgres
from support.reporting_data import make_tree
from support.session import sign_in


def _env(home) -> dict:
    return {
        "LEAKHUB_HOME": str(home),
        "LEAKHUB_PUBLIC_URL": "https://leakhub.test",
        "KEYCLOAK_URL": "http://127.0.0.1:9/auth",  # nothing listens: unit tests never call it
        "LEAKHUB_TESTING": "1",
    }


@pytest.fixture(scope="session")
def unit_pg(tmp_path_factory):
    """With LEAKHUB_TEST_UNIT_DB=postgres: a throwaway PostgreSQL cluster whose template
    database holds the migrated schema (support/unit_postgres.py); None otherwise (SQLite)."""
    if not unit_postgres.wanted():
        yield None
        return
    from leakhub.app import create_app
    from leakhub.core.config import set_config
    from leakhub.core.db import close_all_connections

    pg = unit_postgres.UnitPostgres()
    try:
        pg.start(lambda layout: ensure_all(layout.secrets_dir))
        home = tmp_path_factory.mktemp("template-home")
        cfg = Config.from_env({**_env(home), "DATABASE_URL": pg.create_template()})
        ensure_all(cfg.secrets_dir)
        create_app(cfg)  # migrates the template
        close_all_connections()
        set_config(None)
        yield pg
    finally:
        pg.stop()


@pytest.fixture
def config(tmp_path, unit_pg):
    env = _env(tmp_path)
    name = None
    if unit_pg is not None:
        name, env["DATABASE_URL"] = unit_pg.fresh_database()
    cfg = Config.from_env(env)
    ensure_all(cfg.secrets_dir)
    yield cfg
    if name is not None:
        from leakhub.core.db import close_all_connections

        close_all_connections()
        unit_pg.drop(name)


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


# ---------------------------------------------------------------- leak register fixtures

@pytest.fixture
def org(app):
    from leakhub.orgs.models import Organization

    return Organization.create(slug="acme", name="ACME GmbH", oidc_client_secret="x",
                               timezone="Europe/Berlin")


@pytest.fixture
def other_org(app):
    from leakhub.orgs.models import Organization

    return Organization.create(slug="other", name="Other AG", oidc_client_secret="y")


@pytest.fixture
def make_user(org):
    """make_user(role="editor", organization=org) → a User row."""
    from leakhub.identity.models import User

    counter = {"n": 0}

    def _make(role="editor", organization=None, name=""):
        counter["n"] += 1
        o = organization or org
        return User.create(organization=o, sub=f"sub-{o.slug}-{counter['n']}",
                           email=f"u{counter['n']}@{o.slug}.test", name=name, role=role)
    return _make


@pytest.fixture
def make_actor(org, make_user):
    """make_actor(role="admin") → an authz.Actor for a new user of `org`."""
    from leakhub.authz import Actor

    def _make(role="admin", organization=None):
        user = make_user(role, organization=organization)
        return Actor(organization=user.organization, kind="user", user=user)
    return _make


@pytest.fixture
def actor(make_actor):
    return make_actor("admin")


@pytest.fixture
def login(app, client):
    """login(user) → the test client, signed in as `user` (CSRF token "t")."""
    def _login(user, c=None):
        c = c or client
        sign_in(c, user)
        return c
    return _login


@pytest.fixture
def tree(actor):
    """BER (Werk Berlin) / H1 / A1 and MUC (Werk München), made by `actor`."""
    return make_tree(actor)
