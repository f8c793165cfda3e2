"""scripts/leakctl, the host shim: which command it runs on a Docker host (a fake `docker` on
PATH records its arguments) and natively (a fake release with its own .venv/bin/leakctl)."""
from __future__ import annotations

import json
import os
import subprocess
import textwrap
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[3]
SHIM = REPO / "scripts" / "leakctl"

FAKE_DOCKER = textwrap.dedent("""\
    #!/usr/bin/env bash
    # Records each call; answers like a Docker host where `web` and `worker` run.
    echo "$*" >> "$FAKE_DOCKER_LOG"
    case "$*" in
      "compose version") echo "Docker Compose version v2.29.0" ;;
      "info") echo "Server: fake" ;;
      "compose ps --status running -q web") [ -n "${FAKE_WEB_DOWN:-}" ] || echo abc123 ;;
      "compose ps --status running -q worker") [ -n "${FAKE_WEB_DOWN:-}" ] || echo def456 ;;
      "compose exec -T caddy cat /data/caddy/pki/authorities/local/root.crt")
        echo "-----BEGIN CERTIFICATE-----"; echo "MIIB"; echo "-----END CERTIFICATE-----" ;;
    esac
    exit 0
    """)


@pytest.fixture
def fake_docker(tmp_path):
    bindir = tmp_path / "bin"
    bindir.mkdir()
    docker = bindir / "docker"
    docker.write_text(FAKE_DOCKER)
    docker.chmod(0o755)
    log = tmp_path / "docker.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith("LEAKHUB_")}
    env.update(PATH=f"{bindir}:{env['PATH']}", FAKE_DOCKER_LOG=str(log))

    def run(*args, extra_env=None):
        proc = subprocess.run(["bash", str(SHIM), *args], env={**env, **(extra_env or {})},
                              capture_output=True, text=True, stdin=subprocess.DEVNULL,
                              timeout=60)
        calls = log.read_text().splitlines() if log.exists() else []
        log.unlink(missing_ok=True)
        return proc, calls

    return run


def test_detects_a_docker_host(fake_docker):
    proc, _ = fake_docker("mode")
    assert proc.stdout.strip() == "compose"


def test_cli_verbs_run_in_the_web_container(fake_docker):
    proc, calls = fake_docker("org", "list", "--json")
    assert proc.returncode == 0, proc.stderr
    assert calls[-1] == "compose exec -T web leakctl org list --json"


def test_secret_writing_verbs_run_in_a_setup_container(fake_docker):
    _, calls = fake_docker("backup", "restore", "/var/lib/leakhub/backups/x.age", "--yes")
    assert calls[-1] == "compose run --rm -T setup leakctl backup restore " \
                        "/var/lib/leakhub/backups/x.age --yes"
    _, calls = fake_docker("secrets", "init")
    assert calls[-1] == "compose run --rm -T setup leakctl secrets init"
    # Other backup verbs need the backup identity: the worker has it, web does not.
    _, calls = fake_docker("backup", "list")
    assert calls[-1] == "compose exec -T worker leakctl backup list"
    _, calls = fake_docker("backup", "create")
    assert calls[-1] == "compose exec -T worker leakctl backup create"
    # Key changes write the key ring and every upload: setup, then fresh copies everywhere.
    _, calls = fake_docker("keys", "rotate", "--yes")
    assert calls[-2:] == ["compose run --rm -T setup leakctl keys rotate --yes",
                          "compose up -d --force-recreate setup web worker"]
    _, calls = fake_docker("keys", "status")
    assert calls[-1] == "compose exec -T web leakctl keys status"
    # The security review mails the digest: only the worker reaches the SMTP server.
    _, calls = fake_docker("security", "review")
    assert calls[-1] == "compose exec -T worker leakctl security review"


def test_stopped_web_falls_back_to_a_one_shot_container(fake_docker):
    _, calls = fake_docker("status", "--json", extra_env={"FAKE_WEB_DOWN": "1"})
    assert calls[-1] == "compose run --rm --no-deps -T setup leakctl status --json"


def test_tls_export_root_reads_caddys_data(fake_docker, tmp_path):
    out = tmp_path / "root.crt"
    proc, calls = fake_docker("tls", "export-root", "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    assert calls[-1] == "compose exec -T caddy cat /data/caddy/pki/authorities/local/root.crt"
    assert out.read_text().startswith("-----BEGIN CERTIFICATE-----")


def test_update_on_a_docker_host_runs_the_compose_updater(fake_docker):
    proc, _ = fake_docker("update", "--help")
    assert proc.returncode == 0, proc.stderr
    assert "--to" in proc.stdout and "--dry-run" in proc.stdout


def test_native_mode_runs_the_release_leakctl_with_the_stack_environment(tmp_path):
    """No Docker: the release named in stack.json runs, with `stack.py env`'s variables."""
    release = tmp_path / "release"
    (release / ".venv" / "bin").mkdir(parents=True)
    fake = release / ".venv" / "bin" / "leakctl"
    fake.write_text('#!/usr/bin/env bash\necho "release-leakctl $* home=$LEAKHUB_HOME '
                    'db=$DATABASE_URL"\n')
    fake.chmod(0o755)
    home = tmp_path / "home"
    home.mkdir()
    (home / "stack.json").write_text(json.dumps({
        "home": str(home), "db": "postgres", "hostname": "localhost", "repo": str(release),
        "ports": {"https": 9443, "http": 9080, "web": 9000, "keycloak": 9180,
                  "keycloak_mgmt": 9900, "postgres": 6543, "metrics": 9464}}))
    env = {k: v for k, v in os.environ.items() if not k.startswith("LEAKHUB_")}
    env["PATH"] = "/usr/bin:/bin"   # no docker here
    proc = subprocess.run(["bash", str(SHIM), "--home", str(home), "org", "list"], env=env,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == (f"release-leakctl org list home={home} "
                                   "db=postgresql://leakhub@127.0.0.1:6543/leakhub")
