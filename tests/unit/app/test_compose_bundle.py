"""Static checks of the Docker Compose appliance bundle. No Docker engine, no servers.

docker-compose.yml is validated and normalised by Debian's `docker-compose` 1.29 (the Python
implementation of the Compose Specification; installed by scripts/install). The bundle's rules
are then checked on the normalised result, on web/Dockerfile and on the entrypoint scripts, and
every file tracked by git is scanned for committed secrets.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import tomllib
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[3]
COMPOSE_FILE = REPO / "docker-compose.yml"
DOCKERFILE = REPO / "web" / "Dockerfile"
ENV_EXAMPLE = REPO / "compose" / ".env.example"

REQUIRED_SETTINGS = {
    "LEAKHUB_HOSTNAME": "leakhub.example.test",
    "LEAKHUB_ADMIN_EMAIL": "admin@example.test",
}
SERVICES = {"caddy", "keycloak", "postgres", "web", "worker", "setup"}
ONE_SHOT = {"setup"}
LONG_RUNNING = SERVICES - ONE_SHOT
APP_SERVICES = {"web", "worker", "setup"}
VOLUMES = {"pgdata", "uploads", "backups", "secrets", "caddy_data", "caddy_config"}
APP_UID = 10001
# Keycloak re-augments itself on `start` (writes below /opt/keycloak): its one writable root.
WRITABLE_ROOT_FS = {"keycloak"}

# An exact version: 1.2.3, optionally with a variant suffix (-alpine, -slim-bookworm, ...).
EXACT_TAG = re.compile(r"^\d+\.\d+\.\d+(?:-[a-z0-9][a-z0-9.-]*)?$")
# PostgreSQL (since 10) numbers its releases MAJOR.MINOR: 15.19 is exact, 15 floats.
EXACT_PG_TAG = re.compile(r"^\d+\.\d+(?:-[a-z0-9][a-z0-9.-]*)?$")


# --- running docker-compose ---------------------------------------------------------------------


def _docker_compose() -> str:
    exe = shutil.which("docker-compose")
    if exe is None:
        pytest.fail(
            "docker-compose is not installed (Debian package `docker-compose`, 1.29): "
            "run scripts/install, which installs the packages in scripts/apt-packages.txt"
        )
    return exe


def _compose(args, *, settings, env_file: Path | None, tmp_path: Path):
    """Run docker-compose against the repository's bundle with exactly `settings` (no .env)."""
    if env_file is None:
        env_file = tmp_path / "empty.env"
        env_file.write_text("")
    env = {
        k: v
        for k, v in os.environ.items()
        # Nothing from the caller's shell may satisfy (or break) the bundle's variables, and
        # docker-compose runs under the system Python, not this test's virtualenv.
        if not k.startswith(("LEAKHUB_", "COMPOSE_", "DOCKER_", "PYTHON", "VIRTUAL_ENV"))
    }
    env.update(settings)
    # The app services' env_file is the file LEAKHUB_ENV_FILE names (default .env, which the
    # repository does not hold): point it at the same file, as a second installation does.
    env.setdefault("LEAKHUB_ENV_FILE", str(env_file))
    return subprocess.run(
        [_docker_compose(), "--env-file", str(env_file), "--project-directory", str(REPO),
         "-f", str(COMPOSE_FILE), *args],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=120,
    )


def _yaml_load(text: str):
    """PyYAML if this environment has it, else the interpreter docker-compose itself runs on
    (docker-compose is a Python program that depends on PyYAML)."""
    try:
        import yaml  # noqa: PLC0415
    except ImportError:
        yaml = None
    if yaml is not None:
        return yaml.safe_load(text)
    first = Path(_docker_compose()).read_text(errors="replace").splitlines()[0]
    if not first.startswith("#!") or "python" not in first:
        pytest.fail("cannot parse YAML: install PyYAML (pip install pyyaml)")
    interpreter = first[2:].strip().split()
    out = subprocess.run(
        [*interpreter, "-c",
         "import json, sys, yaml; json.dump(yaml.safe_load(sys.stdin), sys.stdout)"],
        input=text, capture_output=True, text=True, timeout=60,
        env={k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "VIRTUAL_ENV"))},
    )
    assert out.returncode == 0, f"YAML parsing through docker-compose's Python failed: {out.stderr}"
    return json.loads(out.stdout)


@pytest.fixture(scope="module")
def config(tmp_path_factory):
    """docker-compose's normalised configuration (interpolated, anchors and merges resolved)."""
    tmp = tmp_path_factory.mktemp("compose")
    result = _compose(["config"], settings=REQUIRED_SETTINGS, env_file=None, tmp_path=tmp)
    assert result.returncode == 0, f"docker-compose config failed:\n{result.stderr}"
    return _yaml_load(result.stdout)


@pytest.fixture(scope="module")
def raw():
    """docker-compose.yml as written (before interpolation)."""
    return _yaml_load(COMPOSE_FILE.read_text())


# --- (a) docker-compose accepts the bundle -----------------------------------------------------


def test_compose_config_is_valid_with_all_services(config):
    assert set(config["services"]) == SERVICES


def test_env_example_is_a_valid_env_file_and_leaves_the_required_settings_empty(tmp_path):
    result = _compose(["config", "-q"], settings=REQUIRED_SETTINGS, env_file=ENV_EXAMPLE,
                      tmp_path=tmp_path)
    assert result.returncode == 0, result.stderr
    text = ENV_EXAMPLE.read_text()
    for name in REQUIRED_SETTINGS:
        assert re.search(rf"^{name}=$", text, re.M), \
            f"{name} must be listed, empty, in .env.example"
    assert re.search(r"^COMPOSE_PROJECT_NAME=leakhub$", text, re.M)


@pytest.mark.parametrize("missing", sorted(REQUIRED_SETTINGS))
def test_missing_required_setting_stops_compose_with_a_clear_message(missing, tmp_path):
    settings = {k: v for k, v in REQUIRED_SETTINGS.items() if k != missing}
    result = _compose(["config", "-q"], settings=settings, env_file=None, tmp_path=tmp_path)
    assert result.returncode != 0
    assert f"set {missing} in .env" in result.stderr, result.stderr


def test_required_setting_set_but_empty_also_stops_compose(tmp_path):
    settings = dict(REQUIRED_SETTINGS, LEAKHUB_HOSTNAME="")
    result = _compose(["config", "-q"], settings=settings, env_file=None, tmp_path=tmp_path)
    assert result.returncode != 0
    assert "set LEAKHUB_HOSTNAME in .env" in result.stderr


def test_no_version_key_and_no_compose_v2_only_constructs(raw):
    # `version` is obsolete in Compose v2 and `name` is unknown to 1.29: the file must carry
    # neither, so both implementations accept it without warnings.
    assert "version" not in raw
    assert "name" not in raw
    keys = set()

    def walk(node):
        if isinstance(node, dict):
            for key, value in node.items():
                keys.add(key)
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(raw)
    for construct in ("start_interval", "subpath", "develop", "required", "include", "models"):
        assert construct not in keys, f"`{construct}` is not understood by docker-compose 1.29"


def test_every_bind_mounted_file_and_env_file_exists(config):
    for name, service in config["services"].items():
        for env_file in service.get("env_file", []):
            assert Path(env_file).is_file(), f"{name}: env_file {env_file} is missing"
        for volume in service.get("volumes", []):
            source = volume.split(":")[0] if isinstance(volume, str) else volume.get("source", "")
            if not source.startswith("/"):
                continue  # a named volume
            if source.endswith("/compose/certs"):
                continue  # optional customer certificate folder
            assert Path(source).is_file(), f"{name}: bind mount source {source} is missing"


# --- (b) the appliance's rules -----------------------------------------------------------------


def test_only_caddy_publishes_ports(config):
    publishing = {name for name, s in config["services"].items() if s.get("ports")}
    assert publishing == {"caddy"}
    targets = sorted(int(p["target"]) for p in config["services"]["caddy"]["ports"])
    assert targets == [80, 443]


def test_every_service_rotates_its_json_log(config, raw):
    for name, service in config["services"].items():
        logging = service.get("logging") or {}
        assert logging.get("driver") == "json-file", name
        assert logging.get("options", {}).get("max-size") == "10m", name
        assert logging.get("options", {}).get("max-file") == "5", name
    assert raw["x-logging"]["options"]["max-size"] == "10m"


def test_long_running_services_have_healthchecks_and_restart(config):
    for name in LONG_RUNNING:
        service = config["services"][name]
        check = service.get("healthcheck") or {}
        assert check.get("test") and not check.get("disable"), f"{name} has no healthcheck"
        assert check["test"][0] in ("CMD", "CMD-SHELL"), name
        assert service.get("restart") == "unless-stopped", name
    assert config["services"]["setup"]["restart"] == "no"


def test_start_order_conditions(config):
    services = config["services"]
    for name in ("web", "worker"):
        assert services[name]["depends_on"] == {
            "setup": {"condition": "service_completed_successfully"},
            "postgres": {"condition": "service_healthy"},
            "keycloak": {"condition": "service_healthy"},
        }, name
    assert services["caddy"]["depends_on"] == {"web": {"condition": "service_healthy"}}
    # setup waits for postgres and keycloak itself; the reverse dependency would deadlock.
    for name in ("postgres", "keycloak", "setup"):
        assert "setup" not in (services[name].get("depends_on") or {}), name


def test_images_are_pinned_to_exact_versions(config):
    version = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["version"]
    for name, service in config["services"].items():
        image = service["image"]
        repository, _, tag = image.rpartition(":")
        assert repository and "/" not in tag, f"{name}: image {image} has no tag"
        exact = (EXACT_PG_TAG if repository in ("postgres", "localhost/leakhub-postgres")
                 else EXACT_TAG)
        assert exact.match(tag) and tag != "latest", \
            f"{name}: {image} is not pinned to an exact version"
        if name in APP_SERVICES:
            # A local name: an accidental pull goes to no public registry.
            assert image == f"localhost/leakhub:{version}", \
                f"{name}: {image} (pyproject: {version})"
            assert service["build"]["dockerfile"] == "web/Dockerfile"
            assert Path(service["build"]["context"]) == REPO
            # Built here or loaded from the delivery archive, never pulled (v2 builds it when
            # missing; 1.29 never pulls a service it can build).
            assert service.get("pull_policy") == "never", name
        elif name == "postgres":
            # The pinned official image plus pgBackRest, built here (point-in-time recovery):
            # a local name, never pulled; its Dockerfile's base is pinned.
            assert repository == "localhost/leakhub-postgres", image
            assert service.get("pull_policy") == "never"
            assert service["build"]["context"].endswith("compose/postgres")
            base = re.search(r"^FROM (\S+)$", (REPO / "compose" / "postgres" / "Dockerfile")
                             .read_text(), re.M).group(1)
            base_repo, _, base_tag = base.rpartition(":")
            assert base_repo == "postgres" and EXACT_PG_TAG.match(base_tag), base
            assert tag.startswith(base_tag), (image, base)
        else:
            assert service.get("pull_policy") in (None, "missing"), name


def _dockerfile_stages():
    stages, current = [], None
    for line in DOCKERFILE.read_text().splitlines():
        words = line.split()
        if not words or words[0].startswith("#"):
            continue
        if words[0].upper() == "FROM":
            current = {"from": words[1], "user": None}
            stages.append(current)
        elif words[0].upper() == "USER" and current is not None:
            current["user"] = words[1]
    return stages


def test_dockerfile_base_image_is_pinned_and_final_stage_is_not_root():
    stages = _dockerfile_stages()
    assert len(stages) >= 2, "web/Dockerfile should be multi-stage"
    for stage in stages:
        image, _, tag = stage["from"].partition(":")
        assert image == "python" and EXACT_TAG.match(tag) and tag.endswith("-slim-bookworm"), stage
        assert tag.startswith("3.11."), stage
    final = stages[-1]
    assert final["user"] is not None, "the final stage must switch to the app user"
    uid = final["user"].split(":")[0]
    assert uid.isdigit() and int(uid) == APP_UID, \
        f"USER {final['user']} (numeric {APP_UID} expected)"
    text = DOCKERFILE.read_text()
    assert "PYTHONDONTWRITEBYTECODE=1" in text and "PYTHONUNBUFFERED=1" in text
    assert "postgresql-client-15" in text
    assert "requirements.lock" in text


def test_app_containers_run_as_the_app_user(config):
    for name in ("web", "worker"):
        user = str(config["services"][name].get("user", APP_UID)).split(":")[0]
        assert user not in ("0", "root") and int(user) == APP_UID, f"{name} runs as {user}"
    # setup starts as root for its entrypoint only, which drops to the app user for its command.
    setup = config["services"]["setup"]
    assert setup["entrypoint"] == ["/bin/sh", "/app/compose/setup-entrypoint.sh"]
    script = (REPO / "compose" / "setup-entrypoint.sh").read_text()
    assert f"APP_UID={APP_UID}" in script
    assert re.search(r'^exec setpriv --reuid="\$APP_UID" --regid="\$APP_UID" '
                     r'--clear-groups -- "\$@"$', script, re.M)


def test_every_container_is_hardened(config):
    for name, service in config["services"].items():
        assert service.get("cap_drop") == ["ALL"], name
        assert "no-new-privileges:true" in service.get("security_opt", []), name
        if name not in WRITABLE_ROOT_FS:
            assert service.get("read_only") is True, f"{name} should have a read-only root fs"
    caps = {name: set(s.get("cap_add", [])) for name, s in config["services"].items()}
    assert caps["caddy"] == {"NET_BIND_SERVICE"}
    assert caps["web"] == caps["worker"] == caps["postgres"] == caps["keycloak"] == set()


def test_networks_keep_everything_but_caddy_internal(config):
    assert config["networks"]["internal"].get("internal") is True
    assert not config["networks"]["edge"].get("internal")
    assert not (config["networks"]["egress"] or {}).get("internal")
    for name, service in config["services"].items():
        networks = set(service["networks"])
        assert "internal" in networks, name
        assert ("edge" in networks) == (name == "caddy"), name
        # Mail: the worker (security digest) and Keycloak (invitations, password resets)
        # reach the customer's SMTP server; nothing else gets a route out.
        assert ("egress" in networks) == (name in ("worker", "keycloak")), name
        assert networks <= {"internal", "edge", "egress"}, name
    assert "egress" in (REPO / "compose" / "README.md").read_text()


def test_volumes(config):
    assert VOLUMES <= set(config["volumes"])
    mounts = {
        name: {v.split(":")[0]: v.split(":")[1]
               for v in s.get("volumes", []) if not v.startswith("/")}
        for name, s in config["services"].items()
    }
    assert mounts["postgres"]["pgdata"] == "/var/lib/postgresql/data"
    for name in ("worker", "setup"):
        assert mounts[name]["secrets"] == "/run/leakhub-secrets", name
    assert mounts["web"]["web_secrets"] == "/run/leakhub-secrets"
    for name in APP_SERVICES:
        assert mounts[name]["uploads"] == "/var/lib/leakhub/data", name
        assert mounts[name]["backups"] == "/var/lib/leakhub/backups", name
    # Only worker and setup see the secrets volume; web and the servers get their own copies.
    for name in ("caddy", "keycloak", "postgres", "web"):
        assert "secrets" not in mounts[name], name
    assert set(mounts["caddy"]) >= {"caddy_data", "caddy_config"}


def test_app_environment_matches_the_contract(config):
    for name in APP_SERVICES:
        env = config["services"][name]["environment"]
        assert env["LEAKHUB_PUBLIC_URL"] == "https://leakhub.example.test"
        assert env["DATABASE_URL"] == "postgresql://leakhub@postgres:5432/leakhub"
        assert env["LEAKHUB_DATA_DIR"] == "/var/lib/leakhub/data"
        assert env["LEAKHUB_SECRETS_DIR"] == "/run/leakhub-secrets"
        assert env["LEAKHUB_BACKUP_DIR"] == "/var/lib/leakhub/backups"
        assert env["KEYCLOAK_URL"] == "http://keycloak:8080/auth"
        assert env["LEAKHUB_ADMIN_EMAIL"] == "admin@example.test"
    keycloak = config["services"]["keycloak"]["environment"]
    assert keycloak["KC_HOSTNAME"] == "https://leakhub.example.test/auth"
    assert keycloak["KC_HEALTH_ENABLED"] == "true"


# --- every setting reaches the app containers ---------------------------------------------------

# Read from the environment by the code but not settings of an installation: the native
# stack's tooling (which home, which virtualenv), the test suite's switch, the CLI's
# traceback switch for one invocation, and gunicorn's counter directory (set for web only).
NOT_SETTINGS = {"LEAKHUB_STACK_HOME", "LEAKHUB_VENV", "LEAKHUB_TESTING", "LEAKHUB_DEBUG",
                "PROMETHEUS_MULTIPROC_DIR"}
# Values the bundle itself sets for web, worker and setup (container paths, internal addresses,
# the public URL derived from LEAKHUB_HOSTNAME): they arrive, with the bundle's value.
FIXED_IN_BUNDLE = {
    "LEAKHUB_PUBLIC_URL", "LEAKHUB_INTERNAL_URL", "DATABASE_URL", "LEAKHUB_HOME",
    "LEAKHUB_DATA_DIR", "LEAKHUB_SECRETS_DIR", "LEAKHUB_BACKUP_DIR", "LEAKHUB_REALM_TEMPLATE",
    "KEYCLOAK_URL", "KC_BOOTSTRAP_ADMIN_CLIENT_ID", "LEAKHUB_BIND", "LEAKHUB_METRICS_BIND",
    "LEAKHUB_WEB_METRICS_DIR", "LEAKHUB_DATA_KEY_FILE", "LEAKHUB_PITR_INFO_FILE",
}
_SETTING_NAME = re.compile(
    r"""["'](LEAKHUB_[A-Z0-9_]+|DATABASE_URL|KEYCLOAK_URL|KC_[A-Z0-9_]+|PROMETHEUS_MULTIPROC_DIR)["']""")


def settings_read_by_the_code() -> set:
    names = set()
    for path in [*(REPO / "web" / "leakhub").rglob("*.py"), *(REPO / "worker").rglob("*.py"),
                 REPO / "web" / "gunicorn.conf.py"]:
        text = path.read_text()
        if "environ" not in text and "env.get" not in text and "getenv" not in text:
            continue
        names |= set(_SETTING_NAME.findall(text))
    return names - NOT_SETTINGS


def settings_documented_in_the_readme() -> set:
    """The first column of README.md's Configuration table; `A` / `_B` / `_C` abbreviates
    A, A's prefix + _B, ... (e.g. LEAKHUB_BACKUP_KEEP_DAILY / _WEEKLY / _MONTHLY)."""
    text = (REPO / "README.md").read_text()
    section = text.split("## Configuration", 1)[1].split("\n## ", 1)[0]
    names = set()
    for line in section.splitlines():
        if not line.startswith("| `"):
            continue
        first = line.split("|")[1]
        full = None
        for token in re.findall(r"`([A-Z_][A-Z0-9_]*)`", first):
            if token.startswith("_") and full:
                names.add(full.rsplit("_", 1)[0] + token)
            else:
                names.add(token)
                full = token
    return names


def test_every_setting_the_code_reads_is_documented():
    undocumented = settings_read_by_the_code() - settings_documented_in_the_readme()
    assert not undocumented, f"read by the code, missing in README.md's Configuration table: " \
                             f"{sorted(undocumented)}"


def test_every_documented_setting_reaches_web_worker_and_setup(tmp_path):
    documented = settings_documented_in_the_readme()
    assert {"LEAKHUB_SMTP_HOST", "LEAKHUB_BACKUP_RECIPIENTS", "LEAKHUB_WORK_HOURS",
            "LEAKHUB_MAX_UPLOAD_MB", "LEAKHUB_SESSION_IDLE_MINUTES"} <= documented
    # A customer's .env setting every documented variable; values Compose itself interprets
    # (ports) must be valid, the rest are recognisable markers.
    values = {name: f"set-in-env-{name.lower()}" for name in documented}
    values.update(REQUIRED_SETTINGS, LEAKHUB_HTTP_PORT="8080", LEAKHUB_HTTPS_PORT="8443",
                  COMPOSE_PROJECT_NAME="leakhub")
    env_file = tmp_path / "customer.env"
    env_file.write_text("".join(f"{k}={v}\n" for k, v in sorted(values.items())))
    result = _compose(["config"], settings={}, env_file=env_file, tmp_path=tmp_path)
    assert result.returncode == 0, result.stderr
    services = _yaml_load(result.stdout)["services"]
    problems = []
    for service in sorted(APP_SERVICES):
        env = services[service].get("environment") or {}
        for name in sorted(documented):
            if name not in env:
                problems.append(f"{service}: {name} does not arrive")
            elif name not in FIXED_IN_BUNDLE and str(env[name]) != values[name]:
                problems.append(f"{service}: {name}={env[name]!r}, .env says {values[name]!r}")
    assert not problems, "\n".join(problems)


# Secret files each service may read. worker and setup: the whole `secrets` volume.
SERVICE_SECRETS = {
    "postgres": {"postgres-superuser-password", "postgres-leakhub-password",
                 "postgres-keycloak-password"},
    "keycloak": {"postgres-keycloak-password", "keycloak-bootstrap-client-secret"},
    "web": {"session-key", "postgres-leakhub-password", "keycloak-service-client-secret",
            "smtp-password",
            # the data keys, wrapped by the master key (docs/encryption.md): web reads photos
            "data-keyring"},
}
SECRET_VOLUMES = {"secrets", "postgres_secrets", "keycloak_secrets", "web_secrets"}


def _secret_copies_made_by_setup() -> dict:
    """What compose/setup-entrypoint.sh copies into each per-service volume."""
    script = (REPO / "compose" / "setup-entrypoint.sh").read_text()
    dirs = {"PG": "postgres", "KC": "keycloak", "WEB": "web"}
    copies = {service: set() for service in dirs.values()}
    for names, var in re.findall(
            r'for name in ([a-z0-9 -]+); do\s+copy_secret "\$name" "\$(\w+)_DIR"', script):
        copies[dirs[var]] |= set(names.split())
    for name, var in re.findall(r'^\s*copy_secret ([a-z0-9-]+) "\$(\w+)_DIR"', script, re.M):
        copies[dirs[var]].add(name)
    return copies


def test_each_service_sees_only_the_secrets_it_uses(config):
    assert _secret_copies_made_by_setup() == SERVICE_SECRETS
    assert not {"postgres-superuser-password", "backup-identity"} & SERVICE_SECRETS["web"]
    mounted = {
        name: {v.split(":")[0] for v in s.get("volumes", []) if v.split(":")[0] in SECRET_VOLUMES}
        for name, s in config["services"].items()
    }
    assert mounted == {
        "caddy": set(),
        "postgres": {"postgres_secrets"},
        "keycloak": {"keycloak_secrets"},
        "web": {"web_secrets"},
        "worker": {"secrets"},
        "setup": SECRET_VOLUMES,
    }
    for name in ("web", "worker", "postgres", "keycloak"):
        for volume in config["services"][name]["volumes"]:
            if volume.split(":")[0] in SECRET_VOLUMES:
                assert volume.endswith(":ro"), f"{name}: {volume} must be read-only"


def test_backup_verbs_run_where_the_backup_identity_is():
    # web holds no backup identity: the host's leakctl and the updater run `backup` verbs in
    # the worker.
    leakctl = (REPO / "scripts" / "leakctl").read_text()
    assert re.search(r'runs_in_worker\(\) \{\s+case "\$\{1:-\}" in backup\|security\) return 0',
                     leakctl)
    assert 'compose exec $t worker leakctl "$@"' in leakctl
    update = (REPO / "host" / "leakhub_host" / "update.py").read_text()
    assert 'service = "worker" if args and args[0] == "backup" else "web"' in update


def test_no_secret_values_in_compose_environment(raw):
    for name, service in raw["services"].items():
        env = service.get("environment") or {}
        if isinstance(env, list):
            env = dict(item.split("=", 1) if "=" in item else (item, "") for item in env)
        for key, value in env.items():
            if _secret_key(key):
                assert value in (None, "") or _placeholder(str(value)), f"{name}: {key} has a value"


def test_entrypoint_scripts_are_valid_shell():
    for script, shell in (("setup-entrypoint.sh", "sh"), ("postgres-entrypoint.sh", "bash"),
                          ("keycloak-entrypoint.sh", "bash")):
        path = REPO / "compose" / script
        result = subprocess.run([shell, "-n", str(path)], capture_output=True, text=True)
        assert result.returncode == 0, f"{script}: {result.stderr}"


def test_dockerignore_keeps_the_build_context_small_and_clean():
    patterns = set((REPO / ".dockerignore").read_text().split())
    for needed in (".git", ".venv", "var", "tests", "bench", "**/__pycache__", "**/*.pyc", ".env"):
        assert needed in patterns, needed


def test_keycloak_env_holds_no_secret_settings():
    path = REPO / "compose" / "keycloak.env"
    assert path.is_file(), "compose/keycloak.env (shared Keycloak settings) is missing"
    for number, line in enumerate(path.read_text().splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        key = line.split("=", 1)[0].strip()
        assert not re.search(r"PASSWORD|SECRET|TOKEN|PRIVATE", key, re.I), (
            f"compose/keycloak.env:{number}: {key} is a secret; secrets come from files"
        )


# --- (c) no committed secrets ------------------------------------------------------------------

# Built from pieces so that this file does not contain what it looks for.
_PEM_KEY = re.compile("-----" + "BEGIN ([A-Z0-9]+ )*PRIVATE KEY" + r"-----\s*[A-Za-z0-9+/=]{16,}")
_AGE_KEY = re.compile("AGE-SECRET-" + "KEY-1[02-9AC-HJ-NP-Z]{50,}")
_SECRET_NAME = re.compile(
    r"(password|passwd|secret|token|api[_-]?key|private[_-]?key|credentials?)$", re.I
)
_CONFIG_SUFFIXES = {".yml", ".yaml", ".json", ".env", ".ini", ".cfg", ".conf", ".toml",
                    ".properties"}
_ASSIGNMENT = re.compile(
    r"""^\s*(?:-\s*)?(?:export\s+)?["']?(?P<key>[A-Za-z_][A-Za-z0-9_.-]*)["']?\s*[:=]\s*(?P<value>.*?)\s*$"""
)
# Obviously made-up values test fixtures may use.
_FAKE = re.compile(r"test|dummy|fake|example|placeholder|not-a-secret|x{4,}", re.I)


def _secret_key(key: str) -> bool:
    key = key.strip()
    return bool(_SECRET_NAME.search(key)) and not key.upper().endswith("_FILE")


def _placeholder(value: str) -> bool:
    value = value.strip().strip("'\"")
    return (
        value == ""
        or "${" in value or "{$" in value or value.startswith("$")
        or (value.startswith("<") and value.endswith(">"))
        or set(value) == {"*"}
        or value.lower() in ("true", "false", "null", "none", "~", "|", ">", "|-", ">-")
        or re.fullmatch(r"-?\d+(\.\d+)?", value) is not None
    )


_K8S_NAME = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")


def _k8s_reference(rel: str, key: str, value: str) -> bool:
    """In the Helm chart and its test schemas, `existingSecret: leakhub-db`, `passwordSecret:
    {name: ..., key: ...}` or `secret: {{ include ... }}` name a Kubernetes Secret (or render
    one from values); they hold no secret. A literal under a key like `password:` still
    counts."""
    if not rel.startswith(("deploy/", "tests/unit/deploy/")):
        return False
    value = value.strip().strip("'\"")
    if value.startswith("{") and value.endswith("}"):
        return True                     # a reference object or a Helm expression
    return key.endswith("Secret") and len(value) <= 253 and bool(_K8S_NAME.fullmatch(value))


def _config_file(path: Path) -> bool:
    return path.suffix in _CONFIG_SUFFIXES or path.name.startswith(".env") \
        or path.name.endswith(".env.example")


def _json_findings(data, where=""):
    if isinstance(data, dict):
        for key, value in data.items():
            if isinstance(value, str) and _secret_key(key) and not _placeholder(value):
                yield f"{where}.{key}"
            yield from _json_findings(value, f"{where}.{key}")
    elif isinstance(data, list):
        for index, value in enumerate(data):
            yield from _json_findings(value, f"{where}[{index}]")


def _tracked_files():
    git = shutil.which("git")
    if git is None:
        pytest.fail("git is needed to list the tracked files")
    result = subprocess.run([git, "ls-files", "-z"], cwd=REPO, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    return [REPO / name for name in result.stdout.split("\0") if name]


def test_no_secrets_in_tracked_files():
    findings = []
    for path in _tracked_files():
        if not path.is_file():
            continue  # deleted in the work tree
        try:
            text = path.read_text()
        except (UnicodeDecodeError, OSError):
            continue  # binary
        rel = path.relative_to(REPO).as_posix()
        if _PEM_KEY.search(text):
            findings.append(f"{rel}: private key")
        if _AGE_KEY.search(text):
            findings.append(f"{rel}: age secret key")
        if not _config_file(path):
            continue
        fixture = rel.startswith("tests/")
        if path.suffix == ".json":
            try:
                data = json.loads(text)
            except ValueError:
                data = None
            if data is not None:
                for where in _json_findings(data):
                    findings.append(f"{rel}: {where} has a literal value")
                continue
        for number, line in enumerate(text.splitlines(), 1):
            if line.lstrip().startswith(("#", ";", "//")):
                continue
            match = _ASSIGNMENT.match(line)
            if not match or not _secret_key(match["key"]):
                continue
            value = match["value"].split(" #")[0].strip()
            if _placeholder(value) or (fixture and _FAKE.search(value)) \
                    or _k8s_reference(rel, match["key"], value):
                continue
            findings.append(f"{rel}:{number}: {match['key']} has a literal value")
    assert not findings, "secret-looking values are committed:\n" + "\n".join(findings)


def test_secret_scanner_finds_what_it_should():
    pem = ("-----" + "BEGIN OPENSSH PRIVATE KEY" + "-----\n"
           "b3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQ")
    assert _PEM_KEY.search(pem)
    assert _AGE_KEY.search("AGE-SECRET-" + "KEY-1" + "QQQQ" * 15)
    assert not _AGE_KEY.search("never log AGE-SECRET-" + "KEY- values")
    assert _secret_key("POSTGRES_PASSWORD") and _secret_key("client_secret") \
        and _secret_key("clientSecret")
    assert not _secret_key("POSTGRES_PASSWORD_FILE") and not _secret_key("passwordPolicy")
    assert _placeholder("${APP_CLIENT_SECRET}") and _placeholder("**********") and _placeholder("")
    assert not _placeholder("changeme") and not _placeholder("hunter2")
    chart = "deploy/helm/leakhub/values.yaml"
    assert _k8s_reference(chart, "existingSecret", "leakhub-backup-identity")
    assert _k8s_reference(chart, "passwordSecret", "{name: leakhub-db, key: password}")
    assert _k8s_reference(chart, "secret", "{{ include \"leakhub.kcSecret\" . }}")
    assert not _k8s_reference(chart, "password", "hunter2")
    assert not _k8s_reference(chart, "clientSecret", "Zx81-q!secret")
    assert not _k8s_reference("compose/.env.example", "existingSecret", "leakhub-db")
    assert list(_json_findings({"clients": [{"secret": "s3cr3t"}, {"secret": "${X}"}]})) == [
        ".clients[0].secret"
    ]
