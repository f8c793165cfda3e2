"""Unit tests on PostgreSQL instead of SQLite (LEAKHUB_TEST_UNIT_DB=postgres; scripts/test
runs the SQL-heavy feature folders this way after the main run).

The SQL that differs between the two (to_char vs substr, GROUP BY rules, FILTER, partial and
expression indexes, triggers) is written per dialect in places; SQLite alone would never see
the PostgreSQL half. One throwaway cluster per pytest session (the native stack's own start
code, archiving off); the schema is migrated once into a template database and every test gets
a copy of it (CREATE DATABASE … TEMPLATE: ~0.1 s instead of running every migration)."""
from __future__ import annotations

import itertools
import os
import shutil
import socket
import tempfile
from pathlib import Path

import psycopg

from leakhub_host import layout as host_layout
from leakhub_host.layout import read_secret
from leakhub_host.postgres import start_postgres, stop_postgres

TEMPLATE = "leakhub_unit_template"


def wanted() -> bool:
    return os.environ.get("LEAKHUB_TEST_UNIT_DB", "sqlite").strip().lower() == "postgres"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class UnitPostgres:
    def __init__(self):
        self.home = Path(tempfile.mkdtemp(prefix="leakhub-unit-pg-"))
        self.home.chmod(0o755)  # PostgreSQL runs as an unprivileged user when we are root
        self.port = _free_port()
        self.layout = host_layout.Layout(home=self.home, db="postgres",
                                         ports={**host_layout.DEFAULT_PORTS,
                                                "postgres": self.port})
        self.layout.logs_dir.mkdir(parents=True, exist_ok=True)
        self._names = itertools.count()
        self.svc = None

    def start(self, init_secrets) -> None:
        init_secrets(self.layout)
        os.environ["LEAKHUB_PITR"] = "off"  # no WAL archive for a throwaway cluster
        self.svc = start_postgres(self.layout)
        self.leakhub_password = read_secret(self.layout, "postgres-leakhub-password")
        self.superuser_password = read_secret(self.layout, "postgres-superuser-password")
        # Nothing here must survive a crash: skip the disk flushes that dominate a database
        # copy per test (the copies' WAL and checkpoints).
        with self._admin() as conn:
            for setting in ("fsync = off", "synchronous_commit = off",
                            "full_page_writes = off"):
                conn.execute(f"ALTER SYSTEM SET {setting}")
            conn.execute("SELECT pg_reload_conf()")
            version = conn.execute("SHOW server_version_num").fetchone()[0]
        # A file copy of the small template beats WAL-logging every page (PostgreSQL >= 15).
        self.copy = " STRATEGY = FILE_COPY" if int(version) >= 150000 else ""

    def url(self, dbname: str) -> str:
        return (f"postgresql://leakhub:{self.leakhub_password}@127.0.0.1:{self.port}/"
                f"{dbname}")

    def _admin(self):
        return psycopg.connect(host="127.0.0.1", port=self.port, user="postgres",
                               password=self.superuser_password, dbname="postgres",
                               autocommit=True)

    def create_template(self) -> str:
        with self._admin() as conn:
            conn.execute(f'CREATE DATABASE "{TEMPLATE}" OWNER leakhub')
        return self.url(TEMPLATE)

    def fresh_database(self) -> tuple[str, str]:
        name = f"unit_{os.getpid()}_{next(self._names)}"
        with self._admin() as conn:
            conn.execute(f'CREATE DATABASE "{name}" OWNER leakhub TEMPLATE "{TEMPLATE}"'
                         + self.copy)
        return name, self.url(name)

    def drop(self, name: str) -> None:
        with self._admin() as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def stop(self) -> None:
        if self.svc is not None:
            stop_postgres(self.layout, self.svc)
        shutil.rmtree(self.home, ignore_errors=True)
