"""Processes of a native stack: is a pid alive (and is it ours: the home's marker in its
environment), start a service in its own session with its log, run a one-shot command, stop a
process group, wait for health, and find what a stack left running.
"""
from __future__ import annotations

import http.client
import os
import shlex
import signal
import socket
import ssl
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from .layout import MARKER, REPO, STOP_TIMEOUT, Layout, StackError, say


def pid_alive(pid: int | None) -> bool:
    """True for a running process (zombies count as dead: nobody may reap detached children)."""
    if not pid:
        return False
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return False
    return stat.rsplit(")", 1)[-1].split()[0] not in ("Z", "X")


def start_ticks(pid: int | None) -> int | None:
    """The process's start time (clock ticks since boot, /proc/PID/stat field 22): with the pid
    it names one process, even after the pid is reused."""
    if not pid:
        return None
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        return int(stat.rsplit(")", 1)[-1].split()[19])
    except (OSError, ValueError, IndexError):
        return None


def supervisor_alive(state: dict) -> int | None:
    """The pid of the foreground supervisor recorded in `state` if that very process still runs
    (same start time; older state files: a stack.py command line), else None."""
    pid = state.get("supervisor_pid")
    if not pid or pid == os.getpid() or not pid_alive(pid):
        return None
    if state.get("supervisor_start") is not None:
        return pid if start_ticks(pid) == state["supervisor_start"] else None
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return None
    return pid if b"stack.py" in cmdline else None


def has_marker(pid: int, home: Path) -> bool:
    try:
        environ = Path(f"/proc/{pid}/environ").read_bytes()
    except OSError:
        return False
    return f"{MARKER}={home}".encode() in environ.split(b"\0")


def tail(path: Path, lines: int = 30) -> str:
    try:
        with open(path, "rb") as fh:
            fh.seek(0, os.SEEK_END)
            size = fh.tell()
            fh.seek(max(0, size - 64 * 1024))
            data = fh.read().decode("utf-8", "replace")
    except FileNotFoundError:
        return f"(no log at {path})"
    return "\n".join(data.splitlines()[-lines:])


def open_log(path: Path, title: str):
    path.parent.mkdir(parents=True, exist_ok=True)
    fh = open(path, "ab", buffering=0)
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    fh.write(f"\n===== stack.py: {title} at {stamp} =====\n".encode())
    return fh


@dataclass
class Service:
    name: str
    pid: int | None = None
    port: int | None = None
    kind: str = "process"          # "process" (own session) or "postgres" (pg_ctl)
    proc: subprocess.Popen | None = None
    started: float = 0.0

    def alive(self) -> bool:
        if self.proc is not None and self.proc.poll() is not None:
            return False
        return pid_alive(self.pid)

    def to_json(self) -> dict:
        return {"name": self.name, "pid": self.pid, "port": self.port, "kind": self.kind}


def spawn(layout: Layout, name: str, cmd: list[str], env: dict, *, port: int | None = None,
          cwd: Path = REPO, **popen) -> Service:
    log = open_log(layout.log(name), " ".join(shlex.quote(str(c)) for c in cmd))
    try:
        proc = subprocess.Popen([str(c) for c in cmd], env=env, cwd=str(cwd),
                                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True,
                                **popen)
    except OSError as exc:
        raise StackError(f"{name}: cannot start {cmd[0]}: {exc}", name) from None
    finally:
        log.close()
    return Service(name=name, pid=proc.pid, port=port, proc=proc, started=time.monotonic())


def run_logged(layout: Layout, name: str, cmd: list[str], env: dict, *, timeout: float,
               cwd: Path = REPO, capture_stdout: bool = False, **popen) -> str:
    """Run a one-shot command, output appended to the service log; return stdout if captured."""
    log = open_log(layout.log(name), " ".join(shlex.quote(str(c)) for c in cmd))
    try:
        proc = subprocess.Popen([str(c) for c in cmd], env=env, cwd=str(cwd),
                                stdin=subprocess.DEVNULL,
                                stdout=subprocess.PIPE if capture_stdout else log, stderr=log,
                                start_new_session=True, **popen)
        try:
            out, _ = proc.communicate(timeout=timeout)
        except BaseException:
            _kill_group(proc.pid, signal.SIGKILL)
            proc.wait()
            raise
    except subprocess.TimeoutExpired:
        raise StackError(f"{name}: {Path(str(cmd[0])).name} did not finish within {timeout:.0f}s",
                         name) from None
    except OSError as exc:
        raise StackError(f"{name}: cannot run {cmd[0]}: {exc}", name) from None
    finally:
        log.close()
    text = out.decode("utf-8", "replace") if out else ""
    if proc.returncode != 0:
        # Captured output is for the operator (it may hold a one-time password): shown, not logged.
        shown = "\n".join(text.splitlines()[-20:])
        raise StackError(f"{name}: {Path(str(cmd[0])).name} exited with status {proc.returncode}"
                         + (f"; its output:\n{shown}" if shown else ""), name)
    return text


def _kill_group(pid: int, sig: int) -> None:
    try:
        os.killpg(pid, sig)
    except (ProcessLookupError, PermissionError):
        try:
            os.kill(pid, sig)
        except (ProcessLookupError, PermissionError):
            pass


def stop_pid(pid: int, name: str, timeout: float = STOP_TIMEOUT, proc=None) -> None:
    """SIGTERM the process group of a session leader, then SIGKILL after `timeout`."""
    if not pid_alive(pid):
        if proc is not None:
            proc.poll()
        return
    _kill_group(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            break
        if not pid_alive(pid):
            break
        time.sleep(0.2)
    else:
        say(f"{name} did not stop within {timeout:.0f}s; killing it")
    _kill_group(pid, signal.SIGKILL)   # also reaches children left in the group
    if proc is not None:
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            pass


def wait_until(name: str, check, timeout: float, service: Service | None = None,
               interval: float = 0.5) -> None:
    deadline = time.monotonic() + timeout
    last = ""
    while True:
        if service is not None and not service.alive():
            raise StackError(f"{name} exited during start-up", name)
        try:
            ok, last = check()
            if ok:
                return
        except Exception as exc:  # not up yet
            last = f"{type(exc).__name__}: {exc}"
        if time.monotonic() > deadline:
            raise StackError(f"{name} not healthy within {timeout:.0f}s (last check: {last})", name)
        time.sleep(interval)


def http_status(url: str, timeout: float = 3) -> tuple[bool, str]:
    parts = url.split("/", 3)
    host, _, port = parts[2].partition(":")
    conn = http.client.HTTPConnection(host, int(port or 80), timeout=timeout)
    try:
        conn.request("GET", "/" + (parts[3] if len(parts) > 3 else ""))
        resp = conn.getresponse()
        resp.read()
        return resp.status == 200, f"HTTP {resp.status}"
    finally:
        conn.close()


def https_status(hostname: str, port: int, path: str, cafile: Path, timeout: float = 5,
                 connect_to: str = "127.0.0.1") -> tuple[bool, str]:
    """GET https://hostname:port/path, connecting to 127.0.0.1, verifying with Caddy's root CA."""
    if not cafile.exists():
        return False, "no CA root certificate yet"
    ctx = ssl.create_default_context(cafile=str(cafile))
    raw = socket.create_connection((connect_to, port), timeout=timeout)
    try:
        tls = ctx.wrap_socket(raw, server_hostname=hostname)
    except BaseException:
        raw.close()
        raise
    conn = http.client.HTTPSConnection(hostname, port, timeout=timeout, context=ctx)
    conn.sock = tls
    try:
        conn.request("GET", path)
        resp = conn.getresponse()
        resp.read()
        return resp.status == 200, f"HTTP {resp.status}"
    finally:
        conn.close()



def any_alive(state: dict) -> bool:
    home = Path(state["home"])
    if supervisor_alive(state):
        return True
    return any(pid_alive(s.get("pid"))
               and (s.get("kind") == "postgres" or has_marker(s["pid"], home))
               for s in state.get("services", []))


def stragglers(home: Path) -> list[int]:
    me = {os.getpid(), os.getppid()}
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and int(entry.name) not in me and has_marker(int(entry.name), home):
            if pid_alive(int(entry.name)):
                found.append(int(entry.name))
    return found


