"""Point-in-time recovery of the native stack's PostgreSQL with pgBackRest (Debian package
`pgbackrest`). Standard library only: scripts/stack.py (start) and the app (base backups,
restore to a time, status) share it.

One pgBackRest stanza (`leakhub`) per cluster. Its files:
- `<home>/pgbackrest/pgbackrest.conf`, its log, lock and spool directories, and the Unix
  socket directory pgBackRest connects through (the server listens on 127.0.0.1 and on that
  private socket only);
- the repository (WAL archive and base backups) in `<backup dir>/pgbackrest`;
- `<pgdata>/leakhub-pitr.conf`, included by postgresql.conf: `archive_mode` and the
  `archive_command` that pushes every finished WAL segment into the repository.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

STANZA = "leakhub"
INCLUDE_LINE = "include_if_exists = 'leakhub-pitr.conf'"
DEFAULT_RETENTION_DAYS = 7


class PitrError(Exception):
    """pgBackRest failed or is not set up; one readable line."""


def pgbackrest_bin() -> str | None:
    return shutil.which("pgbackrest")


def enabled(env=None) -> bool:
    """On by default when pgBackRest is installed; LEAKHUB_PITR=off switches it off."""
    env = os.environ if env is None else env
    if str(env.get("LEAKHUB_PITR", "on")).strip().lower() in ("off", "0", "false", "no"):
        return False
    return pgbackrest_bin() is not None


def retention_days(env=None) -> int:
    env = os.environ if env is None else env
    raw = str(env.get("LEAKHUB_PITR_RETENTION_DAYS", "") or "").strip()
    if not raw:
        return DEFAULT_RETENTION_DAYS
    try:
        days = int(raw)
    except ValueError:
        raise PitrError(f"LEAKHUB_PITR_RETENTION_DAYS must be a whole number of days, "
                        f"got {raw!r}") from None
    if not 1 <= days <= 365:
        raise PitrError(f"LEAKHUB_PITR_RETENTION_DAYS must be 1-365, got {days}")
    return days


@dataclass
class Site:
    """One PostgreSQL cluster and its pgBackRest repository."""
    pgdata: Path
    port: int
    repo: Path                      # the repository (WAL archive + base backups)
    base: Path                      # pgbackrest.conf, log, lock, spool, socket
    password: str = ""              # the superuser's, for pgBackRest's libpq connection
    superuser: str = "postgres"
    retention_days: int = DEFAULT_RETENTION_DAYS
    run_as: dict | None = None      # Popen arguments (user/group) when root runs it

    @property
    def conf(self) -> Path:
        return self.base / "pgbackrest.conf"

    @property
    def socket_dir(self) -> Path:
        return self.base / "socket"

    def command(self, *args: str) -> list[str]:
        return [pgbackrest_bin() or "pgbackrest", f"--config={self.conf}",
                f"--stanza={STANZA}", *args]

    # ----------------------------------------------------------------- files

    def write_files(self) -> None:
        """pgbackrest.conf and the server's archive settings; idempotent."""
        uid = (self.run_as or {}).get("user", os.geteuid())
        gid = (self.run_as or {}).get("group", os.getegid())
        for path in (self.base, self.repo, self.base / "log", self.base / "lock",
                     self.base / "spool", self.socket_dir):
            path.mkdir(mode=0o700, parents=True, exist_ok=True)
            os.chown(path, uid, gid)
        if uid != os.geteuid():
            # The server's user must reach the repository inside the (root-owned, 0700) backup
            # directory: search permission only (o+x), its archive names are not listable.
            for parent in (self.repo.parent, self.base.parent):
                mode = parent.stat().st_mode
                if not mode & 0o001:
                    parent.chmod((mode & 0o7777) | 0o001)
        self.conf.write_text(
            "# Written by Leakhub (host/leakhub_host/pitr.py) at every PostgreSQL start.\n"
            "[global]\n"
            f"repo1-path={self.repo}\n"
            "repo1-retention-full-type=time\n"
            f"repo1-retention-full={int(self.retention_days)}\n"
            f"log-path={self.base / 'log'}\n"
            f"lock-path={self.base / 'lock'}\n"
            f"spool-path={self.base / 'spool'}\n"
            "log-level-console=warn\n"
            "log-level-file=info\n"
            "start-fast=y\n"
            "\n"
            f"[{STANZA}]\n"
            f"pg1-path={self.pgdata}\n"
            f"pg1-port={int(self.port)}\n"
            f"pg1-socket-path={self.socket_dir}\n"
            f"pg1-user={self.superuser}\n")
        os.chown(self.conf, uid, gid)
        self.conf.chmod(0o600)
        archive = " ".join(self.command("archive-push", "%p"))
        server_conf = self.pgdata / "leakhub-pitr.conf"
        server_conf.write_text(
            "# Point-in-time recovery (Leakhub, host/leakhub_host/pitr.py): every finished WAL\n"
            "# segment goes to the pgBackRest repository; a segment at least every 60 s.\n"
            "wal_level = replica\n"
            "archive_mode = on\n"
            f"archive_command = '{archive}'\n"
            "archive_timeout = 60\n"
            f"unix_socket_directories = '{self.socket_dir}'\n"
            "unix_socket_permissions = 0700\n")
        os.chown(server_conf, uid, gid)
        main = self.pgdata / "postgresql.conf"
        if INCLUDE_LINE not in main.read_text():
            with open(main, "a") as fh:
                fh.write(f"\n# Leakhub point-in-time recovery\n{INCLUDE_LINE}\n")

    def disable_files(self) -> None:
        """PITR switched off: the include stays, the settings go."""
        server_conf = self.pgdata / "leakhub-pitr.conf"
        if server_conf.exists():
            server_conf.write_text("# Point-in-time recovery is off (LEAKHUB_PITR=off).\n")

    # ----------------------------------------------------------------- commands

    def run(self, *args: str, timeout: float = 600, check: bool = True) -> str:
        env = dict(os.environ, PGPASSWORD=self.password, LC_ALL="C.UTF-8")
        try:
            proc = subprocess.run(self.command(*args), env=env, cwd="/",
                                  stdin=subprocess.DEVNULL, capture_output=True,
                                  text=True, timeout=timeout, **(self.run_as or {}))
        except subprocess.TimeoutExpired:
            raise PitrError(f"pgbackrest {args[0]} did not finish within {timeout:.0f}s") \
                from None
        except OSError as exc:
            raise PitrError(f"cannot run pgbackrest: {exc}") from None
        if check and proc.returncode != 0:
            lines = [ln.strip() for ln in (proc.stderr + proc.stdout).splitlines()
                     if ln.strip()]
            raise PitrError(f"pgbackrest {args[0]} failed: "
                            f"{lines[-1] if lines else 'exit ' + str(proc.returncode)}")
        return proc.stdout

    def stanza_create(self) -> None:
        self.run("stanza-create", timeout=120)

    def backup(self, kind: str = "full") -> None:
        self.run("backup", f"--type={kind}", f"--repo1-retention-full={self.retention_days}")

    def info(self) -> list:
        out = self.run("--output=json", "info", timeout=60)
        try:
            return json.loads(out or "[]")
        except ValueError:
            raise PitrError("pgbackrest info gave no JSON") from None

    def restore(self, target: str) -> None:
        """Restore the (stopped) cluster to `target` ("YYYY-MM-DD HH:MM:SS+00"), then the server
        promotes itself at the target on its next start."""
        self.run("restore", "--delta", "--type=time", f"--target={target}",
                 "--target-action=promote", timeout=3600)


def _psql(bindir: Path, site: Site, sql: str, database: str = "postgres") -> str:
    env = dict(os.environ, PGPASSWORD=site.password, PGCONNECT_TIMEOUT="5", LC_ALL="C.UTF-8")
    proc = subprocess.run([str(bindir / "psql"), "-h", "127.0.0.1", "-p", str(site.port),
                           "-U", site.superuser, "-d", database, "-XtAq", "-c", sql],
                          env=env, capture_output=True, text=True, timeout=30,
                          stdin=subprocess.DEVNULL)
    if proc.returncode != 0:
        raise PitrError(f"psql: {proc.stderr.strip().splitlines()[-1:] or proc.returncode}")
    return proc.stdout.strip()


def recover(site: Site, bindir: Path, target: str, log: Path, *, timeout: float = 600) -> None:
    """The cluster must be stopped. Restore it to `target`, start it once to replay the WAL
    up to the target and promote, wait until it accepts writes, stop it again."""
    site.restore(target)
    cmd = [str(bindir / "pg_ctl"), "start", "-D", str(site.pgdata), "-l", str(log), "-w",
           "-t", str(int(timeout)), "-o", f"-p {int(site.port)}"]
    proc = subprocess.run(cmd, cwd="/", stdin=subprocess.DEVNULL, capture_output=True,
                          text=True, timeout=timeout + 10, **(site.run_as or {}))
    if proc.returncode != 0:
        raise PitrError(f"PostgreSQL did not start after the restore (see {log})")
    try:
        deadline = time.monotonic() + timeout
        while True:
            try:
                if _psql(bindir, site, "SELECT pg_is_in_recovery()") == "f":
                    break
            except PitrError:
                pass
            if time.monotonic() > deadline:
                raise PitrError(f"PostgreSQL did not finish the recovery within {timeout:.0f}s "
                                f"(see {log})")
            time.sleep(0.5)
    finally:
        subprocess.run([str(bindir / "pg_ctl"), "stop", "-D", str(site.pgdata), "-m", "fast",
                        "-w", "-t", "60"], cwd="/", stdin=subprocess.DEVNULL,
                       capture_output=True, timeout=90, **(site.run_as or {}))


def switch_wal(site: Site, bindir: Path, *, timeout: float = 120) -> str:
    """Close the current WAL segment and wait until the archive holds it: everything
    committed until now becomes restorable. Returns the segment's name."""
    name = _psql(bindir, site, "SELECT pg_walfile_name(pg_switch_wal())")
    deadline = time.monotonic() + timeout
    while True:
        stats = archiver(site, bindir)
        if (stats["last_archived_wal"] or "") >= name:
            return name
        if time.monotonic() > deadline:
            raise PitrError(f"WAL segment {name} was not archived within {timeout:.0f}s "
                            f"(last failure: {stats['last_failed_wal'] or '-'}; see "
                            f"{site.base / 'log'})")
        time.sleep(0.3)


def archiver(site: Site, bindir: Path) -> dict:
    """pg_stat_archiver: last archived/failed WAL segment and when (ISO UTC, or None)."""
    iso = "to_char({} AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US')"
    row = _psql(bindir, site, "SELECT concat_ws('|', coalesce(last_archived_wal, ''), "
                f"coalesce({iso.format('last_archived_time')}, ''), failed_count, "
                f"coalesce(last_failed_wal, ''), coalesce({iso.format('last_failed_time')}, "
                "'')) FROM pg_stat_archiver")
    parts = (row.split("|") + [""] * 5)[:5]
    return {"last_archived_wal": parts[0] or None, "last_archived_at": parts[1] or None,
            "failed_count": int(parts[2] or 0), "last_failed_wal": parts[3] or None,
            "last_failed_at": parts[4] or None}
