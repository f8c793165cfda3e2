"""Integration fixtures: the real native stack (PostgreSQL, Keycloak, web, worker, Caddy).

`stack` starts one stack per pytest session through `scripts/stack.py up --detach --ports auto
--db postgres` in a fresh temporary home and stops it with `down` at the end, even when tests
fail. If it cannot start, every test using it fails with the service's log tail (never skips).

Development shortcut: LEAKHUB_TEST_STACK_HOME=/some/dir reuses the stack running in that home
(and starts one there, left running, when none runs), so repeated runs skip the start-up;
LEAKHUB_TEST_SQLITE_STACK_HOME does the same for `sqlite_stack` (the embedded database).
Stop it with `.venv/bin/python scripts/stack.py down --home /some/dir`.
LEAKHUB_TEST_KEEP_HOME=1 keeps the temporary home (logs, data) after the session.
"""
from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pytest

from support.stackctl import Stack, StackStartError, _stack_py


@pytest.fixture(scope="session")
def stack(request):
    yield from _session_stack(request, db="postgres", reuse_var="LEAKHUB_TEST_STACK_HOME")


@pytest.fixture(scope="session")
def sqlite_stack(request):
    """The same stack on the embedded default (SQLite), for the tests that must hold on both
    databases (concurrency). Started only when such a test runs."""
    yield from _session_stack(request, db="sqlite", reuse_var="LEAKHUB_TEST_SQLITE_STACK_HOME")


def _session_stack(request, *, db: str, reuse_var: str):
    reuse = os.environ.get(reuse_var)
    if reuse:
        home = Path(reuse).resolve()
        home.mkdir(parents=True, exist_ok=True)
        running = Stack.attach(home)
        if running is None:
            running = Stack.start(home, db=db)   # raises StackStartError with the log tail
            running.owned = False                 # left running for the next session
        yield running
        return

    home = Path(tempfile.mkdtemp(prefix=f"leakhub-it-{db}-"))
    home.chmod(0o755)   # PostgreSQL runs as an unprivileged user and must enter it
    try:
        started = Stack.start(home, db=db)
    except StackStartError:
        _down_quietly(home)   # stack.py already stopped what it started; make sure
        raise
    try:
        yield started
    finally:
        result = started.stop()
        keep = os.environ.get("LEAKHUB_TEST_KEEP_HOME") or request.session.testsfailed
        if result.returncode != 0:
            print(f"\nscripts/stack.py down failed:\n{result.stdout}\n{result.stderr}")
        elif not keep:
            shutil.rmtree(home, ignore_errors=True)
        else:
            print(f"\nnative stack home kept: {home}")


def _down_quietly(home: Path) -> None:
    try:
        _stack_py("down", "--home", str(home), timeout=300)
    except Exception:
        pass
