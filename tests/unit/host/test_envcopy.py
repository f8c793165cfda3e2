"""`scripts/leakctl env-copy FROM TO` natively: the newest verified backup of FROM is copied
into TO's backup directory and restored there with FROM's backup key (fake releases record
what they are asked to do), and the compose branch's commands."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from leakhub_host import envcopy, update

FAKE_LEAKCTL = """#!/usr/bin/env bash
echo "$LEAKHUB_HOME $*" >> "$FAKE_CALLS"
case "$*" in
  "backup export-key") echo "AGE-SECRET-KEY-1FAKE" ;;
  "backup list --json")
    echo '[{"file": "b3.tar.age", "verify_status": null},
           {"file": "b2.tar.age", "verify_status": "ok"},
           {"file": "b1.tar.age", "verify_status": "ok"}]' | tr -d '\\n'; echo ;;
esac
"""


def make_home(tmp_path, name, port_base):
    home = tmp_path / name
    release = tmp_path / f"release-{name}"
    (release / ".venv" / "bin").mkdir(parents=True)
    leakctl = release / ".venv" / "bin" / "leakctl"
    leakctl.write_text(FAKE_LEAKCTL)
    leakctl.chmod(0o755)
    (home / "backups").mkdir(parents=True)
    (home / "secrets").mkdir()
    (home / "secrets" / "backup-identity").write_text("AGE-SECRET-KEY-1...\n")
    ports = {k: port_base + i for i, k in enumerate(
        ("https", "http", "web", "keycloak", "keycloak_mgmt", "postgres", "metrics"))}
    (home / "settings.json").write_text(json.dumps({
        "db": "postgres", "hostname": "localhost", "ports_mode": "auto", "ports": ports,
        "repo": str(release)}))
    return home


def test_native_copy(tmp_path, monkeypatch):
    prod, test = make_home(tmp_path, "prod", 20000), make_home(tmp_path, "test", 21000)
    (prod / "backups" / "b2.tar.age").write_bytes(b"age-encrypted archive")
    calls = tmp_path / "calls"
    monkeypatch.setenv("FAKE_CALLS", str(calls))
    started = []
    monkeypatch.setattr(envcopy.NativeInstallation, "stack_py",
                        lambda self, *args: started.append((self.home, args)))
    log_file = tmp_path / "env-copy.log"
    result = envcopy.copy_native(str(prod), str(test), update.RunLog(log_file, quiet=True))
    assert result["backup"] == "b2.tar.age" and result["masked"]
    copied = test / "backups" / "b2.tar.age"
    assert copied.read_bytes() == b"age-encrypted archive"
    assert oct(copied.stat().st_mode & 0o777) == "0o600"
    lines = calls.read_text().splitlines()
    assert lines[:2] == [f"{prod} backup list --json", f"{prod} backup export-key"]
    # FROM's identity (exported by FROM: it is encrypted with FROM's data key) reaches the
    # restore through a private file that is gone afterwards, and never the log.
    restore = lines[2].split()
    assert restore[:5] == [str(test), "backup", "restore", str(copied), "--identity"]
    assert restore[6:] == ["--yes", "--stop-services"] and not Path(restore[5]).exists()
    assert started == [(test, ("up", "--detach"))]
    assert lines[3:] == [f"{test} privacy mask --all --yes"]
    assert "AGE-SECRET-KEY-1FAKE" not in log_file.read_text()


def test_native_copy_without_masking_or_start(tmp_path, monkeypatch):
    prod, test = make_home(tmp_path, "prod", 20000), make_home(tmp_path, "test", 21000)
    (prod / "backups" / "b2.tar.age").write_bytes(b"age-encrypted archive")
    calls = tmp_path / "calls"
    monkeypatch.setenv("FAKE_CALLS", str(calls))
    log = update.RunLog(None, quiet=True)
    with pytest.raises(envcopy.CopyError, match="masking needs the target running"):
        envcopy.copy_native(str(prod), str(test), log, start=False)
    result = envcopy.copy_native(str(prod), str(test), log, start=False, mask=False)
    assert not result["masked"]
    assert not [c for c in calls.read_text().splitlines() if "privacy" in c]


def test_native_names(tmp_path):
    assert envcopy.native_home("prod", tmp_path) == (tmp_path / "var").resolve()
    assert envcopy.native_home("test", tmp_path) == (tmp_path / "var" / "test").resolve()
    assert envcopy.native_home(str(tmp_path / "x"), tmp_path) == tmp_path / "x"


def test_refusals(tmp_path, monkeypatch):
    prod = make_home(tmp_path, "prod", 20000)
    monkeypatch.setenv("FAKE_CALLS", str(tmp_path / "calls"))
    log = update.RunLog(None, quiet=True)
    with pytest.raises(envcopy.CopyError, match="same installation"):
        envcopy.copy_native(str(prod), str(prod), log, start=False, mask=False)
    with pytest.raises(envcopy.CopyError, match="not a native stack home"):
        envcopy.copy_native(str(prod), str(tmp_path / "nothing"), log, start=False,
                            mask=False)
    with pytest.raises(envcopy.CopyError, match="no verified backup"):
        envcopy.newest_verified([{"file": "x", "verify_status": "failed"}])


def test_compose_copy(tmp_path, monkeypatch):
    (tmp_path / ".env").write_text("COMPOSE_PROJECT_NAME=leakhub\n")
    (tmp_path / ".env.test").write_text("COMPOSE_PROJECT_NAME=leakhub-test\n"
                                        "LEAKHUB_ENV_FILE=.env.test\n")
    docker = tmp_path / "docker"
    docker.write_text('#!/usr/bin/env bash\nprintf "%s|" "$@" >> "$FAKE_CALLS"; echo >> '
                      '"$FAKE_CALLS"\ncase "$*" in *"backup list --json") '
                      'echo \'[{"file": "b9.tar.age", "verify_status": "ok"}]\';; esac\n')
    docker.chmod(0o755)
    calls = tmp_path / "calls"
    monkeypatch.setenv("FAKE_CALLS", str(calls))
    result = envcopy.copy_compose(tmp_path, "prod", "test", update.RunLog(None, quiet=True),
                                  docker=str(docker))
    assert result == {"source": "leakhub", "target": "leakhub-test", "backup": "b9.tar.age",
                      "masked": True}
    lines = [line.rstrip("|").split("|") for line in calls.read_text().splitlines()]
    assert lines[0][:8] == ["compose", "--env-file", str(tmp_path / ".env"), "-p", "leakhub",
                            "exec", "-T", "worker"]   # the backup identity is the worker's
    assert lines[1][4:] == ["leakhub", "exec", "-T", "worker", "leakctl", "backup", "export-key"]
    assert lines[2][4:] == ["leakhub-test", "stop", "web", "worker", "keycloak", "caddy"]
    restore = lines[3]
    assert restore[4:7] == ["leakhub-test", "run", "--rm"]
    assert "leakhub_backups:/from-backups:ro" in restore
    assert not [a for a in restore if "secrets" in a]     # the source's secrets stay its own
    assert restore[-1] == "b9.tar.age" and "--identity /tmp/from-identity" in " ".join(restore)
    assert lines[4][4:] == ["leakhub-test", "up", "-d"]
    assert lines[5][4:] == ["leakhub-test", "exec", "-T", "web", "leakctl", "privacy", "mask",
                            "--all", "--yes"]


def test_compose_refuses_an_env_file_that_does_not_name_itself(tmp_path):
    # Its containers would read .env (production's settings) through env_file.
    (tmp_path / ".env").write_text("COMPOSE_PROJECT_NAME=leakhub\n")
    (tmp_path / ".env.test").write_text("COMPOSE_PROJECT_NAME=leakhub-test\n")
    with pytest.raises(envcopy.CopyError, match="LEAKHUB_ENV_FILE=.env.test"):
        envcopy.copy_compose(tmp_path, "prod", "test", update.RunLog(None, quiet=True))


def test_compose_refuses_one_project_for_both(tmp_path):
    (tmp_path / ".env").write_text("COMPOSE_PROJECT_NAME=leakhub\n")
    (tmp_path / ".env.test").write_text("COMPOSE_PROJECT_NAME=leakhub\n")
    with pytest.raises(envcopy.CopyError, match="same project"):
        envcopy.copy_compose(tmp_path, "prod", "test", update.RunLog(None, quiet=True))


def test_masking_waits_while_the_targets_database_is_not_reachable_yet(monkeypatch):
    """Right after `up -d` the target's postgres name may not resolve for a moment: the mask
    is tried again for that failure only, and not beyond the deadline."""
    monkeypatch.setattr(envcopy.time, "sleep", lambda _s: None)
    log = update.RunLog(None, quiet=True, prefix="env-copy")
    unreachable = update.UpdateError("docker compose --env-file failed (exit 1): leakctl: "
                                     "error: database not reachable: failed to resolve host")
    calls = []

    def flaky():
        calls.append(1)
        if len(calls) < 3:
            raise unreachable
        return "masked"

    assert envcopy.until_database_answers(flaky, log) == "masked" and len(calls) == 3

    def refused():
        calls.append(1)
        raise update.UpdateError("docker compose --env-file failed (exit 1): leakctl: error: "
                                 "Keycloak refused the change")

    calls.clear()
    with pytest.raises(update.UpdateError, match="Keycloak refused"):
        envcopy.until_database_answers(refused, log)
    assert len(calls) == 1

    def never():
        calls.append(1)
        raise unreachable

    calls.clear()
    with pytest.raises(update.UpdateError, match="database not reachable"):
        envcopy.until_database_answers(never, log, within=0)
    assert len(calls) == 1
