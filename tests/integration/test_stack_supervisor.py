"""The native stack's foreground supervisor (`scripts/run` = `scripts/stack.py up`) stops its
services whatever happens to its own output, and a later `up` cleans up after a supervisor that
is gone (issue 12, item 8).

`scripts/run 2>&1 | tee run.log`, then Ctrl-C: the terminal sends SIGINT to tee and to the
supervisor; tee ends first, so every line the supervisor prints while stopping hits a closed
pipe. Here the supervisor's stdout is a pipe this test closes before it sends the signal.
The stacks use the embedded SQLite database (no PostgreSQL) to keep each start short; Keycloak,
gunicorn, the worker and Caddy are the real ones.
"""
from __future__ import annotations

import os
import select
import signal
import subprocess
import threading
import time
from pathlib import Path

import pytest

from support.stackctl import REPO, STACK_PY, VENV_BIN, _stack_py

pytestmark = pytest.mark.integration

MARKER = "LEAKHUB_STACK_HOME"
START_TIMEOUT = 600      # Keycloak's first start in a fresh home on a busy machine
STOP_BOUND = 90          # every child gone within this after the signal


def marked_processes(home: Path) -> set[int]:
    """Live processes started by the stack of `home` (they carry its marker)."""
    want = f"{MARKER}={home}".encode()
    found = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            env = (entry / "environ").read_bytes().split(b"\0")
            state = (entry / "stat").read_text().rsplit(")", 1)[-1].split()[0]
        except OSError:
            continue
        if want in env and state not in ("Z", "X"):
            found.add(int(entry.name))
    return found


class Foreground:
    """`scripts/stack.py up` in the foreground, its stdout+stderr into a pipe we hold."""

    def __init__(self, home: Path):
        self.home = home
        self.lines: list[str] = []
        self.ready = threading.Event()
        self.proc = subprocess.Popen(
            [str(VENV_BIN / "python"), str(STACK_PY), "up", "--home", str(home), "--db", "sqlite",
             "--ports", "auto"],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            cwd=str(REPO), start_new_session=True, env={k: v for k, v in os.environ.items()
                                                        if not k.startswith("LEAKHUB_")})
        self.stop_reading = threading.Event()
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self):
        fd, buf = self.proc.stdout.fileno(), b""
        while not self.stop_reading.is_set():
            if not select.select([fd], [], [], 0.5)[0]:
                continue
            chunk = os.read(fd, 65536)
            if not chunk:
                return
            buf += chunk
            *done, buf = buf.split(b"\n")
            for raw in done:
                line = raw.decode("utf-8", "replace") + "\n"
                self.lines.append(line)
                if "Press Ctrl-C to stop." in line:
                    self.ready.set()

    def wait_ready(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT
        while not self.ready.wait(1):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError("the stack did not start:\n" + "".join(self.lines[-60:]))

    def close_output(self) -> None:
        """Like tee ending: the reading end of the supervisor's output goes away."""
        self.stop_reading.set()
        self.reader.join(timeout=10)
        self.proc.stdout.close()

    def kill_all(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


@pytest.fixture
def home(tmp_path):
    home = tmp_path / "stack"
    home.mkdir()
    yield home
    _stack_py("down", "--home", str(home), timeout=300)     # whatever the test left


def wait_all_gone(sup: subprocess.Popen, home: Path, children: set[int]) -> float:
    started = time.monotonic()
    deadline = started + STOP_BOUND
    while time.monotonic() < deadline:
        left = {p for p in children if Path(f"/proc/{p}").exists()
                and _state(p) not in ("Z", "X")} | marked_processes(home)
        if sup.poll() is not None and not left:
            return time.monotonic() - started
        time.sleep(0.5)
    raise AssertionError(f"still running {STOP_BOUND} s after the signal: supervisor "
                         f"{'exited' if sup.poll() is not None else 'alive'}, processes "
                         f"{sorted(left)}")


def _state(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[-1].split()[0]
    except OSError:
        return "X"


def test_sigint_with_a_closed_output_pipe_stops_every_service(home):
    fg = Foreground(home)
    try:
        fg.wait_ready()
        children = marked_processes(home)
        assert len(children) >= 4, children   # keycloak, gunicorn (+ workers), worker, caddy
        fg.close_output()
        os.kill(fg.proc.pid, signal.SIGINT)
        took = wait_all_gone(fg.proc, home, children)
        print(f"all stopped {took:.1f} s after SIGINT")
        assert not (home / "stack.json").exists()
    finally:
        fg.kill_all()


def test_sigkilled_supervisor_is_cleaned_up_by_the_next_start_and_sighup_stops_it(home):
    first = Foreground(home)
    try:
        first.wait_ready()
        orphans = marked_processes(home)
        first.proc.send_signal(signal.SIGKILL)
        first.proc.wait(timeout=10)
        time.sleep(1)
        assert marked_processes(home) >= orphans     # nobody stopped them: orphans
    finally:
        first.kill_all()

    second = Foreground(home)
    try:
        second.wait_ready()
        text = "".join(second.lines)
        assert "cleaning up" in text and "left by a supervisor that is gone" in text, text
        assert not (orphans & marked_processes(home)), "the orphans still run"
        status = _stack_py("status", "--home", str(home), timeout=60)
        assert status.returncode == 0, status.stdout + status.stderr
        # While a supervisor lives, its services are never taken for orphans.
        children = marked_processes(home)
        again = _stack_py("up", "--home", str(home), "--db", "sqlite", "--ports", "auto",
                          timeout=60)
        assert again.returncode == 1 and "supervisor pid" in again.stderr, again.stderr
        assert children <= marked_processes(home)

        # A terminal that goes away: SIGHUP, and its output is gone too.
        children = marked_processes(home)
        second.close_output()
        os.kill(second.proc.pid, signal.SIGHUP)
        took = wait_all_gone(second.proc, home, children)
        print(f"all stopped {took:.1f} s after SIGHUP")
    finally:
        second.kill_all()
