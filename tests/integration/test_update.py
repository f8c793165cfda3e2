"""Update rehearsal on the native stack (DESIGN §7: upgrade from the previous version as a
scenario), with its own stack — started once, from a previous release:

1. the repository is cloned into a temporary directory (tags stay there); the previous
   release (the newest earlier commit with `leakctl backup` and an older schema, or
   $LEAKHUB_UPDATE_FROM) is tagged v0.1.0 and checked out as a worktree with its own .venv;
2. its stack runs (PostgreSQL) and gets data: an organization with demo locations, surveys,
   leaks (and their audit chain);
3. this checkout's updater updates it to HEAD: data intact, migrations applied, the new
   release serving, the deployment logged;
4. an update to HEAD plus two injected migrations — one that works, one that raises — is
   rolled back: the pre-update backup restored, HEAD serving again, data intact, the
   failure logged with the error.
Durations of the update and of the rollback are printed (pytest -s shows them).
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
import requests

from support.stackctl import git, pick_previous, schema_head

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
PY = REPO / ".venv" / "bin" / "python"
UPDATE_PY = ["-m", "leakhub_host.update"]     # the host tooling package of this tree
DATA_TABLES = ("organization", "location", "survey", "leak", "energy_settings", "user")


class Rehearsal:
    def __init__(self, base: Path):
        self.base = base
        self.clone = base / "repo"
        self.home = base / "home"
        self.old = base / "old"

    def stack_env(self):
        state = json.loads((self.home / "stack.json").read_text())
        return state, {**os.environ, **state["env"]}

    def leakctl(self, tree, *args, check=True, input=None):
        _state, env = self.stack_env()
        proc = subprocess.run([str(tree / ".venv" / "bin" / "leakctl"), *args], env=env,
                              capture_output=True, text=True, timeout=600, input=input,
                              stdin=None if input is not None else subprocess.DEVNULL)
        if check and proc.returncode != 0:
            raise AssertionError(f"leakctl {' '.join(args)}: {proc.stdout}\n{proc.stderr}")
        return proc

    def serving(self) -> Path:
        return Path(self.stack_env()[0]["repo"])

    def update(self, to: str):
        t0 = time.monotonic()
        proc = subprocess.run([str(PY), *UPDATE_PY, "--home", str(self.home), "--source",
                               str(self.clone), "--to", to, "--json"], capture_output=True,
                              text=True, timeout=1800, stdin=subprocess.DEVNULL)
        seconds = time.monotonic() - t0
        try:
            entry = json.loads(proc.stdout.strip().splitlines()[-1])
        except (IndexError, ValueError):
            raise AssertionError(f"update printed no entry (exit {proc.returncode}):\n"
                                 f"{proc.stdout}\n{proc.stderr}") from None
        return proc, entry, seconds

    def db(self):
        import psycopg

        state, _env = self.stack_env()
        password = (self.home / "secrets" / "postgres-leakhub-password").read_text().strip()
        return psycopg.connect(host="127.0.0.1", port=int(state["ports"]["postgres"]),
                               dbname="leakhub", user="leakhub", password=password,
                               connect_timeout=10)

    def counts(self) -> dict:
        with self.db() as conn:
            return {t: conn.execute(f'SELECT COUNT(*) FROM "{t}"').fetchone()[0]
                    for t in DATA_TABLES}

    def schema(self) -> int:
        with self.db() as conn:
            return conn.execute("SELECT MAX(version) FROM schema_version").fetchone()[0]

    def has_table(self, name) -> bool:
        with self.db() as conn:
            return conn.execute("SELECT to_regclass(%s)", (name,)).fetchone()[0] is not None

    def readyz(self) -> int:
        state, _env = self.stack_env()
        return requests.get(f"{state['urls']['web']}/readyz", timeout=10).status_code


@pytest.fixture(scope="module")
def rehearsal(request):
    sys.path.insert(0, str(REPO / "web"))
    from leakhub_host import update as upd

    base = Path(tempfile.mkdtemp(prefix="leakhub-update-"))
    base.chmod(0o755)       # PostgreSQL runs as an unprivileged user and must enter it
    r = Rehearsal(base)
    subprocess.run(["git", "clone", "-q", str(REPO), str(r.clone)], check=True, timeout=300)
    previous = pick_previous(r.clone)
    git(r.clone, "tag", "-f", "v0.1.0", previous)
    git(r.clone, "worktree", "add", "-q", "--detach", str(r.old), "v0.1.0")
    log = upd.RunLog(base / "prepare.log")
    upd.prepare_release(r.old, REPO, log)
    r.home.mkdir()
    r.home.chmod(0o755)
    t0 = time.monotonic()
    up = subprocess.run([str(r.old / ".venv" / "bin" / "python"), str(r.old / "scripts" /
                         "stack.py"), "up", "--detach", "--home", str(r.home), "--db",
                         "postgres", "--ports", "auto"], capture_output=True, text=True,
                        timeout=900, stdin=subprocess.DEVNULL)
    print(f"\nprevious release {previous[:12]} started in {time.monotonic() - t0:.0f} s")
    try:
        assert up.returncode == 0, f"stack of the previous release did not start:\n" \
                                   f"{up.stdout}\n{up.stderr}"
        yield r
    finally:
        down = subprocess.run([str(PY), str(REPO / "scripts" / "stack.py"), "down", "--home",
                               str(r.home)], capture_output=True, text=True, timeout=600)
        failed = request.session.testsfailed or down.returncode != 0
        if failed or os.environ.get("LEAKHUB_TEST_KEEP_HOME"):
            print(f"\nupdate rehearsal kept in {base}")
        else:
            shutil.rmtree(base, ignore_errors=True)


def test_update_from_the_previous_release_and_a_rolled_back_one(rehearsal):
    r = rehearsal
    # -- data in the previous release -------------------------------------------------------
    r.leakctl(r.old, "org", "create", "--slug", "plant", "--name", "Plant GmbH",
              "--admin-email", "it@plant.test")
    seeded = json.loads(r.leakctl(r.old, "demo", "seed", "--org", "plant", "--leaks", "40",
                                  "--sites", "1", "--seed", "7", "--json").stdout)
    assert seeded["leaks"] == 40
    before = r.counts()
    old_schema = r.schema()
    head = git(r.clone, "rev-parse", "HEAD")
    head_schema = schema_head(r.clone, "HEAD")
    assert old_schema < head_schema

    # -- update to HEAD -----------------------------------------------------------------------
    proc, entry, seconds = r.update(head)
    print(f"\nupdate {entry['from_version']} -> {entry['to_version']}: {seconds:.1f} s "
          f"(recorded {entry['duration_ms'] / 1000:.1f} s)")
    assert proc.returncode == 0 and entry["result"] == "ok", proc.stderr + entry["log_excerpt"]
    new_release = r.serving()
    assert new_release.parent == r.home / "releases"
    assert git(new_release, "rev-parse", "HEAD") == head
    assert r.schema() == head_schema
    assert entry["from_schema"] == old_schema and entry["to_schema"] == head_schema
    assert entry["components"]["migrations"] == list(range(old_schema + 1, head_schema + 1))
    assert r.counts() == before
    assert r.readyz() == 200
    r.leakctl(new_release, "audit", "verify")
    logged = json.loads(r.leakctl(new_release, "deployments", "--json").stdout)
    assert [(d["result"], d["uid"]) for d in logged] == [("ok", entry["uid"])]
    assert logged[0]["components"]["backup"].endswith("pre-update.tar.age")
    backups = json.loads(r.leakctl(new_release, "backup", "list", "--json").stdout)
    assert any(b["kind"] == "pre-update" for b in backups)
    # a second run to the same version is refused and changes nothing
    proc, again, _ = r.update(head)
    assert proc.returncode != 0 and "already installed" in again["summary"]
    assert r.serving() == new_release

    # -- a broken release: one migration that works, one that raises --------------------------
    mig = r.clone / "web" / "leakhub" / "core" / "migrations"
    (mig / f"m{head_schema + 1:04d}_rehearsal_probe.py").write_text(
        '"""Update rehearsal: works."""\n\n\ndef up(db):\n'
        '    db.execute_sql("CREATE TABLE rehearsal_probe (id INTEGER PRIMARY KEY)")\n')
    (mig / f"m{head_schema + 2:04d}_rehearsal_boom.py").write_text(
        '"""Update rehearsal: fails."""\n\n\ndef up(db):\n'
        '    raise RuntimeError("deliberately failing migration (update rehearsal)")\n')
    git(r.clone, "add", "-A")
    git(r.clone, "-c", "user.email=t@t", "-c", "user.name=t", "commit", "-qm", "broken")
    broken = git(r.clone, "rev-parse", "HEAD")
    proc, failed, seconds = r.update(broken)
    print(f"rolled-back update {failed['to_version']}: {seconds:.1f} s "
          f"(recorded {failed['duration_ms'] / 1000:.1f} s)")
    assert proc.returncode == 1 and failed["result"] == "rolled_back", failed["log_excerpt"]
    assert "deliberately failing migration" in failed["log_excerpt"]
    assert "pre-update backup restored" in failed["summary"]
    assert r.serving() == new_release                       # HEAD serves again
    assert r.schema() == head_schema and not r.has_table("rehearsal_probe")
    assert r.counts() == before
    assert r.readyz() == 200
    r.leakctl(new_release, "status", "worker")
    r.leakctl(new_release, "audit", "verify")
    logged = json.loads(r.leakctl(new_release, "deployments", "--json").stdout)
    assert [d["result"] for d in logged] == ["rolled_back", "ok"]
    assert logged[0]["uid"] == failed["uid"] and logged[0]["to_version"] == failed["to_version"]
