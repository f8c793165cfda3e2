"""`leakctl setup` outlasts a Keycloak that is briefly unavailable (its database restarting
under it, as `docker compose up -d` does after a change) and fails at once on anything else."""
from __future__ import annotations

import time

import pytest
import requests

from leakhub.core.clikit import CliError
from leakhub.core.errors import LeakhubError
from leakhub.identity.keycloak_admin import KeycloakUnreachable, _fetch_token
from leakhub.setup.cli import _while_unavailable


class FakeSession:
    def __init__(self, status):
        self.status = status

    def post(self, url, data=None, timeout=None):
        resp = requests.Response()
        resp.status_code = self.status
        resp._content = b'{"error": "unknown_error"}'
        return resp


@pytest.mark.parametrize("status", [500, 502, 503, 504])
def test_a_token_endpoint_failing_on_its_side_is_unavailable(status):
    with pytest.raises(KeycloakUnreachable):
        _fetch_token(FakeSession(status), "http://kc.test/auth", "c", "s", 5)


def test_rejected_credentials_are_a_verdict_not_unavailability():
    token, _expires, problem = _fetch_token(FakeSession(401), "http://kc.test/auth", "c", "s", 5)
    assert token is None and "HTTP 401" in problem


def test_setup_retries_while_unavailable(monkeypatch):
    monkeypatch.setattr(time, "sleep", lambda s: None)
    calls = []

    def step():
        calls.append(1)
        if len(calls) < 3:
            raise KeycloakUnreachable("Keycloak is not reachable: HTTP 500", status=500)
        return "ok"

    assert _while_unavailable("Keycloak", step, time.monotonic() + 60) == "ok"
    assert len(calls) == 3


def test_setup_gives_up_at_the_deadline_and_at_once_on_other_errors(monkeypatch):
    monkeypatch.setattr(time, "sleep", lambda s: None)

    def down():
        raise KeycloakUnreachable("Keycloak is not reachable: HTTP 503", status=503)

    with pytest.raises(CliError, match="Keycloak not available"):
        _while_unavailable("Keycloak", down, time.monotonic() - 1)
    calls = []

    def wrong():
        calls.append(1)
        raise LeakhubError("rejected")

    with pytest.raises(LeakhubError):
        _while_unavailable("Keycloak", wrong, time.monotonic() + 60)
    assert calls == [1]
