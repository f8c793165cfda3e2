"""Dumping and restoring the two databases: Leakhub's (PostgreSQL or SQLite) and Keycloak's
(PostgreSQL, or the H2 files of Keycloak's dev-file mode).

PostgreSQL dumps are `pg_dump -Fc` taken inside an exported snapshot, so the schema version,
organizations and row counts written into the manifest describe exactly the dumped data
(verification compares them after a trial restore). Passwords travel in PGPASSWORD of the
child's environment, never on a command line.
"""
from __future__ import annotations

import os
import shutil
import signal
import sqlite3
import subprocess
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlsplit

from ..core.errors import LeakhubError
from ..core.secrets import read_secret


class DatabaseError(LeakhubError):
    """A dump/restore step failed; the message is meant for the operator."""


# ---------------------------------------------------------------------------- PostgreSQL

@dataclass(frozen=True)
class PgTarget:
    host: str
    port: int
    dbname: str
    user: str
    password: str | None

    def connect(self, dbname: str | None = None, **kw):
        import psycopg

        try:
            return psycopg.connect(host=self.host, port=self.port, dbname=dbname or self.dbname,
                                   user=self.user, password=self.password, connect_timeout=10,
                                   **kw)
        except psycopg.OperationalError as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise DatabaseError(f"cannot connect to PostgreSQL database {dbname or self.dbname!r} "
                                f"as {self.user!r} on {self.host}:{self.port}: {first}") from None

    def env(self, dbname: str | None = None) -> dict:
        env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
        env.update(PGHOST=self.host, PGPORT=str(self.port), PGUSER=self.user,
                   PGDATABASE=dbname or self.dbname, PGCONNECT_TIMEOUT="10")
        if self.password:
            env["PGPASSWORD"] = self.password
        return env


def pg_targets(config, settings) -> dict[str, PgTarget]:
    """The app role, Keycloak's role and the superuser, on the server of DATABASE_URL."""
    parts = urlsplit(config.database_url)
    host = parts.hostname or "127.0.0.1"
    port = parts.port or 5432
    app_password = unquote(parts.password) if parts.password else None

    def secret(name):
        try:
            return read_secret(config.secrets_dir, name)
        except Exception:
            return None

    return {
        "app": PgTarget(host, port, parts.path.lstrip("/") or "leakhub",
                        unquote(parts.username) if parts.username else "leakhub",
                        app_password or secret("postgres-leakhub-password")),
        "keycloak": PgTarget(host, port, settings.keycloak_database, settings.keycloak_db_user,
                             secret("postgres-keycloak-password")),
        "super": PgTarget(host, port, "postgres", settings.postgres_superuser,
                          secret("postgres-superuser-password")),
    }


def pg_tool(name: str, settings) -> str:
    """pg_dump/pg_restore: LEAKHUB_PG_BINDIR, else the newest /usr/lib/postgresql/*/bin, else
    PATH."""
    if settings.pg_bindir:
        return str(Path(settings.pg_bindir) / name)
    found = []
    for path in Path("/usr/lib/postgresql").glob(f"*/bin/{name}"):
        if path.parent.parent.name.isdigit():
            found.append((int(path.parent.parent.name), path))
    if found:
        return str(max(found)[1])
    which = shutil.which(name)
    if not which:
        raise DatabaseError(f"{name} is not installed (PostgreSQL client tools are needed for "
                            "backups; set LEAKHUB_PG_BINDIR)")
    return which


def _describe_exit(code: int) -> str:
    if code < 0:
        sig = signal.Signals(-code)
        if sig == signal.SIGXFSZ:
            return "killed by SIGXFSZ: the file size limit was reached (disk or quota full?)"
        return f"killed by {sig.name}"
    return f"exit status {code}"


def run_tool(cmd: list[str], env: dict, what: str) -> None:
    proc = subprocess.run(cmd, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                          stderr=subprocess.PIPE, text=True)
    if proc.returncode != 0:
        lines = [ln for ln in (proc.stderr or "").strip().splitlines() if ln.strip()]
        detail = lines[-1] if lines else ""
        if "No space left" in (proc.stderr or ""):
            detail = "no space left on device"
        raise DatabaseError(f"{what} failed ({_describe_exit(proc.returncode)})"
                            + (f": {detail}" if detail else ""))


def _table_counts_pg(cur) -> dict[str, int]:
    cur.execute("SELECT table_name FROM information_schema.tables "
                "WHERE table_schema = 'public' AND table_type = 'BASE TABLE' ORDER BY 1")
    names = [r[0] for r in cur.fetchall()]
    counts = {}
    for name in names:
        cur.execute(f'SELECT count(*) FROM public."{name}"')
        counts[name] = cur.fetchone()[0]
    return counts


def app_facts_pg(cur) -> dict:
    counts = _table_counts_pg(cur)
    facts = {"table_counts": counts, "schema_version": 0, "organizations": []}
    if "schema_version" in counts:
        cur.execute("SELECT MAX(version) FROM schema_version")
        facts["schema_version"] = cur.fetchone()[0] or 0
    if "organization" in counts:
        cur.execute("SELECT slug, name FROM organization ORDER BY id")
        facts["organizations"] = [{"slug": s, "name": n} for s, n in cur.fetchall()]
    return facts


def keycloak_facts_pg(cur) -> dict:
    counts = _table_counts_pg(cur)
    facts = {"table_counts": counts, "version": "unknown", "realms": []}
    if "migration_model" in counts:
        cur.execute("SELECT version FROM migration_model ORDER BY update_time DESC, version DESC "
                    "LIMIT 1")
        row = cur.fetchone()
        facts["version"] = row[0] if row else "unknown"
    if "realm" in counts:
        cur.execute("SELECT name FROM realm ORDER BY name")
        facts["realms"] = [r[0] for r in cur.fetchall()]
    return facts


def dump_pg(target: PgTarget, out: Path, settings, facts) -> dict:
    """pg_dump -Fc of `target` into `out`, inside one exported snapshot shared with `facts`."""
    from psycopg import IsolationLevel

    conn = target.connect()
    try:
        conn.isolation_level = IsolationLevel.REPEATABLE_READ
        conn.read_only = True
        with conn.cursor() as cur:
            cur.execute("SELECT pg_export_snapshot()")
            snapshot = cur.fetchone()[0]
            info = facts(cur)
            run_tool([pg_tool("pg_dump", settings), "--format=custom", f"--snapshot={snapshot}",
                      "--file", str(out)], target.env(), f"pg_dump of {target.dbname}")
        conn.rollback()
    finally:
        conn.close()
    return info


def scratch_name(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:10]}"


def create_database(superuser: PgTarget, name: str, owner: str) -> None:
    with superuser.connect(autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}" OWNER "{owner}" ENCODING \'UTF8\' '
                     "TEMPLATE template0")


def drop_database(superuser: PgTarget, name: str) -> None:
    with superuser.connect(autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def list_databases(superuser: PgTarget, like: str) -> list[str]:
    with superuser.connect(autocommit=True) as conn:
        return [r[0] for r in conn.execute(
            "SELECT datname FROM pg_database WHERE datname LIKE %s ORDER BY 1", (like,))]


def restore_pg(dump: Path, role: PgTarget, dbname: str, settings) -> None:
    """pg_restore into the (new, empty) database `dbname`, as its owner `role`."""
    jobs = max(1, min(4, os.cpu_count() or 1))
    run_tool([pg_tool("pg_restore", settings), "--no-owner", "--no-privileges",
              "--exit-on-error", f"--jobs={jobs}", "--dbname", dbname, str(dump)],
             role.env(dbname), f"pg_restore into {dbname}")


def facts_of(role: PgTarget, dbname: str, facts) -> dict:
    with role.connect(dbname=dbname) as conn, conn.cursor() as cur:
        return facts(cur)


def swap_databases(superuser: PgTarget, swaps: list[tuple[str, str, str, str]]) -> None:
    """For each (live, new, keep_as, owner): live -> keep_as, new -> live, in one transaction.
    Connections to the live databases are ended first (the services are stopped by then)."""
    live = [s[0] for s in swaps]
    with superuser.connect(autocommit=True) as conn:
        for _ in range(3):
            conn.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                         "WHERE datname = ANY(%s) AND pid <> pg_backend_pid()", (live,))
            time.sleep(0.2)
            try:
                with conn.transaction():
                    existing = {r[0] for r in conn.execute("SELECT datname FROM pg_database")}
                    for old, new, keep_as, _owner in swaps:
                        if old in existing:
                            conn.execute(f'ALTER DATABASE "{old}" RENAME TO "{keep_as}"')
                        conn.execute(f'ALTER DATABASE "{new}" RENAME TO "{old}"')
                break
            except Exception as exc:  # a connection came back in between: try again
                last = exc
        else:
            raise DatabaseError(f"could not switch to the restored databases: {last}")
        for old, _new, _keep, owner in swaps:
            # The same database-level rights as compose/postgres/init-databases.sh.
            conn.execute(f'ALTER DATABASE "{old}" OWNER TO "{owner}"')
            conn.execute(f'REVOKE CONNECT, TEMPORARY ON DATABASE "{old}" FROM PUBLIC')
            conn.execute(f'GRANT CONNECT, TEMPORARY ON DATABASE "{old}" TO "{owner}"')


# ---------------------------------------------------------------------------- SQLite

def sqlite_path(config) -> Path:
    return Path(config.database_url[len("sqlite:///"):])


def app_facts_sqlite(path: Path) -> dict:
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        names = [r[0] for r in conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' "
            "ORDER BY name")]
        counts = {n: conn.execute(f'SELECT count(*) FROM "{n}"').fetchone()[0] for n in names}
        facts = {"table_counts": counts, "schema_version": 0, "organizations": []}
        if "schema_version" in counts:
            facts["schema_version"] = conn.execute(
                "SELECT MAX(version) FROM schema_version").fetchone()[0] or 0
        if "organization" in counts:
            facts["organizations"] = [{"slug": s, "name": n} for s, n in conn.execute(
                "SELECT slug, name FROM organization ORDER BY id")]
        return facts
    except sqlite3.DatabaseError as exc:
        raise DatabaseError(f"the SQLite database {path.name} is not readable: {exc}") from None
    finally:
        conn.close()


def dump_sqlite(path: Path, out: Path) -> dict:
    """SQLite's online backup API: a transactionally consistent copy while the app runs."""
    if not path.exists():
        raise DatabaseError(f"the database {path} does not exist")
    src = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30)
    dst = sqlite3.connect(str(out))
    try:
        src.backup(dst, pages=4096)
        dst.execute("PRAGMA journal_mode=DELETE")
    except sqlite3.Error as exc:
        raise DatabaseError(f"SQLite backup failed: {exc}") from None
    finally:
        dst.close()
        src.close()
    return app_facts_sqlite(out)


# ---------------------------------------------------------------------------- Keycloak H2

H2_SKIP_SUFFIXES = (".lock.db", ".trace.db")


def _h2_state(h2_dir: Path) -> dict:
    state = {}
    for f in sorted(h2_dir.iterdir()):
        if f.is_file() and not f.name.endswith(H2_SKIP_SUFFIXES):
            st = f.stat()
            state[f.name] = (st.st_size, st.st_mtime_ns, st.st_ino)
    return state


def copy_h2(h2_dir: Path, dest: Path, *, attempts: int = 10, pause: float = 1.0) -> dict:
    """Copy Keycloak's H2 files while they do not change.

    Keycloak's dev-file mode embeds H2 in its JVM (no second client can open it), so the
    files are copied as they are on disk, and the copy counts only if no file changed during
    it (size, mtime and inode equal before and after). Such a copy is crash-consistent: what
    H2 would find after a power cut at that moment; H2 recovers it to the last complete
    commit (changes committed under ~1 s before may be missing). For a fully quiescent copy,
    stop Keycloak during the backup; for production use PostgreSQL.
    """
    if not h2_dir.is_dir():
        raise DatabaseError(f"Keycloak's H2 directory {h2_dir} does not exist "
                            "(set LEAKHUB_KEYCLOAK_H2_DIR, or LEAKHUB_BACKUP_KEYCLOAK_DB=none)")
    lock_present = any(f.name.endswith(".lock.db") for f in h2_dir.iterdir())
    for attempt in range(1, attempts + 1):
        before = _h2_state(h2_dir)
        if dest.exists():
            shutil.rmtree(dest)
        dest.mkdir(parents=True, mode=0o700)
        for name in before:
            shutil.copy2(h2_dir / name, dest / name)
        if _h2_state(h2_dir) == before:
            return {"files": sorted(before), "attempts": attempt,
                    "consistency": "crash-consistent copy while Keycloak ran" if lock_present
                    else "copy of a stopped database"}
        time.sleep(pause)
    raise DatabaseError(f"Keycloak's H2 database kept changing during {attempts} copy attempts; "
                        "retry later, stop Keycloak for the backup, or use PostgreSQL")

