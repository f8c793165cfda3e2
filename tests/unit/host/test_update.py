"""leakhub_host/update.py without servers: version rules, git ancestry, the venv clone, and
the whole Docker Compose update (success and rolled back) against a fake `docker` that plays a
Compose host. The native update runs for real in tests/integration/test_update.py."""
from __future__ import annotations

import json
import os
import subprocess
import textwrap
from pathlib import Path

import pytest

from leakhub_host import update as upd

REPO = Path(__file__).resolve().parents[3]


# --------------------------------------------------------------------------- small pieces

def test_parse_schema_and_last_json():
    assert upd.parse_schema("schema version 7 of 9; pending: [8, 9]") == (7, 9)
    assert upd.parse_schema("nothing") is None
    assert upd.last_json('noise\n{"a": 1}\n') == {"a": 1}
    with pytest.raises(upd.UpdateError):
        upd.last_json("no json here")


def test_release_versions_are_compared_as_numbers():
    assert upd.version_key("0.10.0") > upd.version_key("v0.9.3")
    with pytest.raises(upd.Refused):
        upd.version_key("latest")


def _git(repo, *args):
    return subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True,
                          text=True).stdout.strip()


@pytest.fixture
def history(tmp_path):
    """A repository: v0.1.0 -> v0.2.0 -> main, plus a side branch off v0.1.0."""
    repo = tmp_path / "repo"
    repo.mkdir()
    _git(repo, "init", "-q", "-b", "main")
    mig = repo / "web" / "leakhub" / "core" / "migrations"
    mig.mkdir(parents=True)
    (repo / "web" / "leakhub" / "ops").mkdir()

    def commit(msg, migration=None, min_schema=None):
        if migration:
            (mig / migration).write_text("def up(db):\n    pass\n")
        if min_schema:
            (repo / "web" / "leakhub" / "ops" / "update.py").write_text(
                f"UPGRADE_FROM_MIN_SCHEMA = {min_schema}\n")
        _git(repo, "add", "-A")
        _git(repo, "-c", "user.email=t@t", "-c", "user.name=t", "commit", "-qm", msg)
        return _git(repo, "rev-parse", "HEAD")

    c1 = commit("one", "m0001_a.py")
    _git(repo, "tag", "v0.1.0")
    c2 = commit("two", "m0002_b.py")
    _git(repo, "tag", "v0.2.0")
    c3 = commit("three", "m0003_c.py", min_schema=2)
    _git(repo, "checkout", "-q", "-b", "side", c1)
    side = commit("side", "m0002_x.py")
    _git(repo, "checkout", "-q", "main")
    return repo, {"c1": c1, "c2": c2, "c3": c3, "side": side}


def native_at(repo, installed):
    """A NativeUpdater as if the stack ran `installed` (no stack needed for these checks)."""
    tree = repo.parent / f"tree-{installed[:7]}"
    if not tree.exists():
        _git(repo, "worktree", "add", "-q", "--detach", str(tree), installed)
    updater = object.__new__(upd.NativeUpdater)
    updater.source, updater.current = repo, tree
    return updater


def test_newest_tag_is_the_default_target(history):
    repo, c = history
    assert upd.resolve_rev(repo, None) == c["c2"]
    assert upd.resolve_rev(repo, "main") == c["c3"]
    with pytest.raises(upd.Refused, match="unknown version"):
        upd.resolve_rev(repo, "v9.9.9")


def test_only_descendants_are_updates(history):
    repo, c = history
    native_at(repo, c["c1"]).check_newer(c["c3"])          # fine
    with pytest.raises(upd.Refused, match="downgrades are not supported"):
        native_at(repo, c["c2"]).check_newer(c["c1"])
    with pytest.raises(upd.Refused, match="already installed"):
        native_at(repo, c["c2"]).check_newer(c["c2"])
    with pytest.raises(upd.Refused, match="not a supported update path"):
        native_at(repo, c["side"]).check_newer(c["c3"])


def test_schema_range_of_a_target_is_read_from_git(history):
    repo, c = history
    assert upd.schema_head_at(repo, c["c3"]) == 3 and upd.min_schema_at(repo, c["c3"]) == 2
    assert upd.schema_head_at(repo, c["c1"]) == 1 and upd.min_schema_at(repo, c["c1"]) == 1
    assert upd.release_name(repo, c["c2"]) == f"v0.2.0-{c['c2'][:8]}"
    assert upd.release_name(repo, c["c3"]) == c["c3"][:12]


def test_clone_venv_rewrites_paths_and_drops_the_editable_install(tmp_path):
    src = tmp_path / "a" / ".venv"
    site = src / "lib" / "python3.11" / "site-packages"
    (site / "leakhub-0.1.0.dist-info").mkdir(parents=True)
    (site / "__editable__.leakhub-0.1.0.pth").write_text("import x")
    (site / "flask").mkdir()
    (site / "flask" / "__init__.py").write_text("# flask\n")
    (src / "bin").mkdir()
    script = src / "bin" / "gunicorn"
    script.write_text(f"#!{src}/bin/python\nimport gunicorn\n")
    script.chmod(0o755)
    (src / "bin" / "python").symlink_to("/usr/bin/python3")
    (src / "pyvenv.cfg").write_text(f"home = /usr/bin\ncommand = python3 -m venv {src}\n")
    (src / ".leakhub-install.sha256").write_text("x\n")
    dst = tmp_path / "b" / ".venv"
    dst.parent.mkdir()

    upd.clone_venv(src, dst)

    assert (dst / "bin" / "gunicorn").read_text().startswith(f"#!{dst}/bin/python\n")
    assert os.access(dst / "bin" / "gunicorn", os.X_OK)
    assert script.read_text().startswith(f"#!{src}/bin/python")      # the source is untouched
    assert str(dst) in (dst / "pyvenv.cfg").read_text()
    assert os.readlink(dst / "bin" / "python") == "/usr/bin/python3"
    dsite = dst / "lib" / "python3.11" / "site-packages"
    assert not (dsite / "leakhub-0.1.0.dist-info").exists()
    assert not (dsite / "__editable__.leakhub-0.1.0.pth").exists()
    assert (dsite / "flask" / "__init__.py").stat().st_ino == \
        (site / "flask" / "__init__.py").stat().st_ino                # hard-linked, not copied
    assert not (dst / ".leakhub-install.sha256").exists()


# --------------------------------------------------------------------------- Docker Compose

FAKE_DOCKER = textwrap.dedent("""\
    #!/usr/bin/env bash
    # A Compose host for the updater where web and worker run: records calls, keeps the
    # schema in a file.
    state="$FAKE_STATE"
    echo "$*" >> "$state/calls"
    args="$*"
    leak="${args#*leakctl }"
    case "$args" in
      "compose ps --status running -q web") echo web1 ;;
      "compose ps --status running -q worker") echo worker1 ;;
      "compose ps --format json")
        for s in web worker keycloak caddy postgres; do
          echo "{\\"Service\\": \\"$s\\", \\"State\\": \\"running\\", \\"Health\\": \\"healthy\\"}"
        done ;;
      "image inspect "*)
        [ -n "${FAKE_IMAGE_LOADED:-}" ] || [ -e "$state/image" ] || exit 1 ;;
      "compose pull"*) [ -z "${FAKE_PULL_FAILS:-}" ] || exit 1; touch "$state/image" ;;
      "compose build"*) [ -z "${FAKE_BUILD_FAILS:-}" ] || exit 1; touch "$state/image" ;;
      *"leakctl migrate --status")
        echo "schema version $(cat "$state/schema") of 9; pending: none" ;;
      *"leakctl migrate")
        echo 9 > "$state/schema"
        [ -z "${FAKE_MIGRATE_FAILS:-}" ] || { echo "RuntimeError: boom" >&2; exit 1; } ;;
      *"leakctl status --json")
        echo '{"ok": true, "checks": [{"name": "database", "ok": true, "detail": "x"}]}' ;;
      *"leakctl backup list --json") echo '[{"file": "b1.tar.age", "verify_status": "ok"}]' ;;
      *"leakctl backup create --kind pre-update --json")
        echo '{"path": "/var/lib/leakhub/backups/pre.tar.age"}' ;;
      *"leakctl backup restore "*) echo 8 > "$state/schema" ;;
      *"leakctl deployments record") cat > "$state/recorded" ;;
      *"--help") ;;
    esac
    exit 0
    """)


@pytest.fixture
def compose_host(tmp_path, monkeypatch):
    project = tmp_path / "bundle"
    project.mkdir()
    (project / "docker-compose.yml").write_text(
        (REPO / "docker-compose.yml").read_text())
    (project / ".env").write_text("COMPOSE_PROJECT_NAME=leakhub\nLEAKHUB_HOSTNAME=lh.test\n"
                                  "#LEAKHUB_VERSION=0.1.0\n")
    state = tmp_path / "state"
    state.mkdir()
    (state / "schema").write_text("8\n")
    docker = tmp_path / "docker"
    docker.write_text(FAKE_DOCKER)
    docker.chmod(0o755)
    monkeypatch.setenv("FAKE_STATE", str(state))
    return project, state, str(docker)


def compose_update(compose_host, to="0.2.0"):
    project, state, docker = compose_host
    log = upd.RunLog(project / "update.log", quiet=True)
    updater = upd.ComposeUpdater(project, log, docker=docker, health_timeout=5)
    attempt = upd.update(updater, to)
    calls = (state / "calls").read_text().splitlines() if (state / "calls").exists() else []
    recorded = json.loads((state / "recorded").read_text().splitlines()[-1]) \
        if (state / "recorded").exists() else None
    return attempt, calls, recorded


def test_compose_update(compose_host):
    project = compose_host[0]
    attempt, calls, recorded = compose_update(compose_host)
    assert attempt.result == "ok", attempt.summary
    steps = [c for c in calls if not c.endswith("--help") and not c.startswith("compose ps")]
    writes = [c for c in steps if c.startswith(("compose pull", "compose stop", "compose run",
                                                "compose up"))]
    assert writes == ["compose pull --quiet web worker setup", "compose stop web worker",
                      "compose run --rm --no-deps -T setup leakctl migrate", "compose up -d"]
    assert "LEAKHUB_VERSION=0.2.0" in (project / ".env").read_text()
    assert recorded["result"] == "ok" and recorded["from_version"] == "0.1.0"
    assert recorded["to_version"] == "0.2.0" and recorded["from_schema"] == 8
    assert recorded["to_schema"] == 9 and recorded["components"]["migrations"] == [9]
    assert recorded["mode"] == "compose"


def test_compose_update_refuses_a_downgrade(compose_host):
    project, state, docker = compose_host
    (project / ".env").write_text("LEAKHUB_VERSION=0.3.0\n")
    attempt, calls, recorded = compose_update(compose_host, to="0.2.0")
    assert attempt.result == "failed" and "downgrades are not supported" in attempt.summary
    assert recorded is None             # refused: nothing changed, not a deployment
    assert not [c for c in calls if c.startswith(("compose stop", "compose pull"))]
    assert (project / ".env").read_text() == "LEAKHUB_VERSION=0.3.0\n"


def test_compose_failed_pull_changes_nothing(compose_host, monkeypatch):
    monkeypatch.setenv("FAKE_PULL_FAILS", "1")
    attempt, calls, recorded = compose_update(compose_host)
    assert attempt.result == "failed"
    assert not [c for c in calls if c.startswith("compose stop")]
    assert "LEAKHUB_VERSION=0.1.0" in (compose_host[0] / ".env").read_text()


def test_compose_update_uses_a_loaded_image_without_pulling(compose_host, monkeypatch):
    """The offline delivery: the image was loaded from the release archive; an offline host
    must not try a registry or a build."""
    monkeypatch.setenv("FAKE_IMAGE_LOADED", "1")
    attempt, calls, recorded = compose_update(compose_host)
    assert attempt.result == "ok", attempt.summary
    assert "image inspect localhost/leakhub:0.2.0" in calls
    assert not [c for c in calls if c.startswith(("compose pull", "compose build"))]


def test_compose_update_does_not_build_another_versions_code(compose_host, monkeypatch):
    """Unpullable and not loaded: building this folder (0.1.0's code) under 0.2.0's tag would
    install the old code as the new release; the updater says how to load the image instead."""
    monkeypatch.setenv("FAKE_PULL_FAILS", "1")
    (compose_host[0] / "pyproject.toml").write_text('[project]\nversion = "0.1.0"\n')
    attempt, calls, recorded = compose_update(compose_host)
    assert attempt.result == "failed"
    assert "docker load -i leakhub-image-0.2.0.tar" in attempt.summary, attempt.summary
    assert "this folder holds 0.1.0" in attempt.summary
    assert not [c for c in calls if c.startswith(("compose build", "compose stop"))]
    assert "LEAKHUB_VERSION=0.1.0" in (compose_host[0] / ".env").read_text()


def test_compose_update_builds_from_a_bundle_of_the_target_version(compose_host, monkeypatch):
    monkeypatch.setenv("FAKE_PULL_FAILS", "1")
    (compose_host[0] / "pyproject.toml").write_text('[project]\nversion = "0.2.0"\n')
    attempt, calls, recorded = compose_update(compose_host)
    assert attempt.result == "ok", attempt.summary
    assert "compose build web" in calls


def test_compose_failed_migration_restores_and_rolls_back(compose_host, monkeypatch):
    monkeypatch.setenv("FAKE_MIGRATE_FAILS", "1")
    attempt, calls, recorded = compose_update(compose_host)
    assert attempt.result == "rolled_back", attempt.summary
    after = calls[calls.index("compose run --rm --no-deps -T setup leakctl migrate") + 1:]
    writes = [c for c in after if c.startswith(("compose stop", "compose run", "compose up"))]
    assert writes == ["compose stop web worker keycloak caddy",
                      "compose run --rm -T setup leakctl backup restore "
                      "/var/lib/leakhub/backups/pre.tar.age --yes",
                      "compose up -d"]
    assert "LEAKHUB_VERSION=0.1.0" in (compose_host[0] / ".env").read_text()
    assert recorded["result"] == "rolled_back" and "RuntimeError: boom" in recorded["log_excerpt"]
    assert "pre-update backup restored" in recorded["summary"]
