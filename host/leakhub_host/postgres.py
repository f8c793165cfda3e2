"""The native stack's PostgreSQL (Debian's server binaries): initdb on first start with the
superuser password from the secrets, pg_ctl start/stop as an unprivileged user when run as
root, and the same roles/databases script the postgres image runs (compose/postgres/).
"""
from __future__ import annotations

import os
import pwd
import stat
import subprocess
import tempfile
import time
from pathlib import Path

from .layout import (
    PG_INIT_SCRIPT,
    PG_OS_USER,
    STOP_TIMEOUT,
    TIMEOUTS,
    Layout,
    StackError,
    child_env,
    read_secret,
    say,
)
from .pitr import PitrError, Site, enabled, retention_days
from .procs import Service, pid_alive, run_logged, stop_pid


def pg_bindir() -> Path:
    candidates = []
    for path in Path("/usr/lib/postgresql").glob("*/bin"):
        if (path / "initdb").exists() and path.parent.name.isdigit():
            candidates.append((int(path.parent.name), path))
    if not candidates:
        raise StackError("PostgreSQL server binaries not found under /usr/lib/postgresql/*/bin "
                         "(scripts/install installs Debian's postgresql)", "postgres")
    return max(candidates)[1]


def pg_run_as() -> dict:
    """Popen arguments that drop root to the unprivileged PostgreSQL user (nothing otherwise)."""
    if os.geteuid() != 0:
        return {}
    try:
        entry = pwd.getpwnam(PG_OS_USER)
    except KeyError:
        subprocess.run(["useradd", "--system", "--user-group", "--no-create-home",
                        "--home-dir", "/nonexistent", "--shell", "/usr/sbin/nologin", PG_OS_USER],
                       check=True, stdout=subprocess.DEVNULL)
        entry = pwd.getpwnam(PG_OS_USER)
    return {"user": entry.pw_uid, "group": entry.pw_gid, "extra_groups": []}


def _check_traversable(path: Path, uid: int) -> None:
    """Every parent of `path` must be searchable by `uid` (0700 temp dirs are not)."""
    for parent in reversed(path.parents):
        st = parent.stat()
        ok = (st.st_mode & stat.S_IXUSR) if st.st_uid == uid else (st.st_mode & stat.S_IXOTH)
        if not ok:
            raise StackError(f"PostgreSQL runs as user {PG_OS_USER!r}, which cannot enter "
                             f"{parent}; allow it with: chmod o+x {parent}", "postgres")


def start_postgres(layout: Layout) -> Service:
    bindir = pg_bindir()
    run_as = pg_run_as()
    uid = run_as.get("user", os.geteuid())
    gid = run_as.get("group", os.getegid())
    pgdata = layout.pg_dir
    log_path = layout.log("postgres")
    env = child_env(layout, {"LC_ALL": "C.UTF-8", "LANG": "C.UTF-8"})
    env.pop("PGDATA", None)
    _check_traversable(pgdata, uid)
    log_path.parent.mkdir(parents=True, exist_ok=True)
    log_path.touch()
    os.chown(log_path, uid, gid)

    if not (pgdata / "PG_VERSION").exists():
        if pgdata.exists() and any(pgdata.iterdir()):
            raise StackError(f"{pgdata} exists but is not a PostgreSQL data directory", "postgres")
        pgdata.mkdir(mode=0o700, parents=True, exist_ok=True)
        os.chown(pgdata, uid, gid)
        # initdb reads the superuser password from a file only that user can read.
        fd, pwfile = tempfile.mkstemp(prefix=".pwfile-", dir=layout.home)
        try:
            os.write(fd, (read_secret(layout, "postgres-superuser-password") + "\n").encode())
            os.close(fd)
            os.chown(pwfile, uid, gid)
            run_logged(layout, "postgres",
                       [bindir / "initdb", "-D", pgdata, "-U", "postgres", f"--pwfile={pwfile}",
                        "--auth=scram-sha-256", "--encoding=UTF8", "--locale=C.UTF-8",
                        "--no-instructions"],
                       env, timeout=120, cwd=pgdata, **run_as)
        finally:
            os.unlink(pwfile)
        with open(pgdata / "postgresql.conf", "a") as conf:
            conf.write("\n# Leakhub native stack (scripts/stack.py); the port is given at start.\n"
                       "listen_addresses = '127.0.0.1'\n"
                       "unix_socket_directories = ''\n"
                       "password_encryption = 'scram-sha-256'\n"
                       "log_timezone = 'UTC'\n"
                       "timezone = 'UTC'\n")
        say("postgres: initialized " + str(pgdata))

    # Point-in-time recovery (pgBackRest): archive settings before the start, stanza after.
    site = pitr_site(layout, run_as)
    if site is not None:
        site.write_files()
    elif (pgdata / "leakhub-pitr.conf").exists():
        Site(pgdata=pgdata, port=0, repo=pgdata, base=pgdata).disable_files()

    if (pgdata / "postmaster.pid").exists():
        # A crash or SIGKILL left it behind; pg_ctl start copes when the pid is gone.
        pid = _postmaster_pid(pgdata)
        if pid and pid_alive(pid):
            raise StackError(f"PostgreSQL already runs on {pgdata} (pid {pid}); "
                             f"run scripts/stack.py down --home {layout.home}", "postgres")

    started = time.monotonic()
    port = layout.ports["postgres"]
    run_logged(layout, "postgres",
               [bindir / "pg_ctl", "start", "-D", pgdata, "-l", log_path, "-w",
                "-t", str(TIMEOUTS["postgres"]), "-o", f"-p {port}"],
               env, timeout=TIMEOUTS["postgres"] + 10, cwd=pgdata, **run_as)
    pid = _postmaster_pid(pgdata)
    svc = Service(name="postgres", pid=pid, port=port, kind="postgres", started=started)

    # Roles and databases: the same script the postgres image runs at first start.
    init_env = child_env(layout, {
        "PATH": f"{bindir}:{os.environ.get('PATH', '/usr/bin:/bin')}",
        "PGHOST": "127.0.0.1", "PGPORT": str(port), "PGUSER": "postgres",
        "PGDATABASE": "postgres", "PGCONNECT_TIMEOUT": "10",
        "PGPASSWORD": read_secret(layout, "postgres-superuser-password"),
        "POSTGRES_LEAKHUB_PASSWORD_FILE": str(layout.secrets_dir / "postgres-leakhub-password"),
        "POSTGRES_KEYCLOAK_PASSWORD_FILE": str(layout.secrets_dir / "postgres-keycloak-password"),
    })
    try:
        run_logged(layout, "postgres", ["bash", PG_INIT_SCRIPT], init_env, timeout=60)
    except StackError:
        stop_postgres(layout, svc)
        raise
    if site is not None:
        try:
            site.stanza_create()
        except PitrError as exc:
            # The stack still serves; `leakctl status` reports archiving as failing.
            say(f"postgres: point-in-time recovery not ready: {exc}")
    return svc


def pitr_site(layout: Layout, run_as: dict | None = None) -> Site | None:
    """The pgBackRest stanza of this home's cluster, None when PITR is off (LEAKHUB_PITR=off
    or pgBackRest not installed)."""
    if not enabled():
        return None
    try:
        days = retention_days()
    except PitrError as exc:
        raise StackError(str(exc), "postgres") from None
    return Site(pgdata=layout.pg_dir, port=layout.ports["postgres"],
                repo=layout.backup_dir / "pgbackrest", base=layout.home / "pgbackrest",
                password=read_secret(layout, "postgres-superuser-password"),
                retention_days=days, run_as=pg_run_as() if run_as is None else run_as)


def _postmaster_pid(pgdata: Path) -> int | None:
    try:
        return int((pgdata / "postmaster.pid").read_text().split("\n", 1)[0])
    except (OSError, ValueError):
        return None


def stop_postgres(layout: Layout, svc: Service | None = None) -> None:
    pgdata = layout.pg_dir
    pid = _postmaster_pid(pgdata) or (svc.pid if svc else None)
    if not pid or not pid_alive(pid):
        return
    try:
        bindir = pg_bindir()
        subprocess.run([str(bindir / "pg_ctl"), "stop", "-D", str(pgdata), "-m", "fast", "-w",
                        "-t", str(STOP_TIMEOUT)], env=child_env(layout), cwd=str(pgdata),
                       stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL, timeout=STOP_TIMEOUT + 10, **pg_run_as())
    except (StackError, subprocess.SubprocessError, OSError):
        pass
    if pid_alive(pid):
        stop_pid(pid, "postgres", timeout=10)
