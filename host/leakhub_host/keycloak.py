"""The native stack's Keycloak (keycloak-quarkus-dist from scripts/fetch-keycloak): a copy of
the distribution per home, `kc.sh build` once per option set (cached), the settings of
compose/keycloak.env, and `kc.sh start --optimized` until it is ready.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import time
from pathlib import Path

from .layout import (
    KC_BUILD_OPTIONS,
    KEYCLOAK_ENV_FILE,
    MARKER,
    PASSWORD_BLACKLISTS,
    REPO,
    TIMEOUTS,
    Layout,
    StackError,
    link_or_copy,
    read_env_file,
    read_secret,
    say,
)
from .procs import Service, http_status, run_logged, spawn, wait_until


def fetch_keycloak() -> tuple[Path, Path]:
    """(pristine Keycloak home in the cache, JAVA_HOME) from scripts/fetch-keycloak."""
    try:
        out = subprocess.run(["bash", str(REPO / "scripts" / "fetch-keycloak"), "--print-kc-home",
                              "--print-java-home"], check=True, stdout=subprocess.PIPE,
                             stdin=subprocess.DEVNULL, timeout=900, text=True).stdout.split()
    except (subprocess.SubprocessError, OSError) as exc:
        raise StackError(f"scripts/fetch-keycloak failed: {exc}", "keycloak") from None
    return Path(out[0]), Path(out[1])


def prepare_keycloak_dist(layout: Layout, pristine: Path) -> bool:
    """Give this home its own Keycloak install (kc.sh build writes into it, and Keycloak keeps
    its data dir inside it): the cache copy stays untouched. The big dependency jars are
    hard-linked when possible. Keycloak's data/ is a symlink to <home>/keycloak, so an upgrade
    replaces keycloak-dist and keeps the data. Returns True when a new copy was made."""
    dist = layout.kc_dist
    version = (pristine / "version.txt").read_text()
    if dist.exists() and (dist / "version.txt").exists() \
            and (dist / "version.txt").read_text() == version:
        return False
    tmp = layout.home / f".keycloak-dist.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)

    lib_lib = pristine / "lib" / "lib"
    # Everything but the jars in lib/lib is copied; those are linked right after.
    shutil.copytree(pristine, tmp, symlinks=True,
                    ignore=lambda d, names: names if Path(d) == lib_lib else [])
    shutil.copytree(lib_lib, tmp / "lib" / "lib", symlinks=True, dirs_exist_ok=True,
                    copy_function=link_or_copy)
    layout.kc_data_dir.mkdir(parents=True, exist_ok=True)
    shutil.rmtree(tmp / "data", ignore_errors=True)
    os.symlink(layout.kc_data_dir, tmp / "data")
    if dist.exists():
        shutil.rmtree(dist)
    os.replace(tmp, dist)
    return True


# `kc.sh build` only rewrites lib/quarkus/ (checked with diff -r against the distribution), and
# its output depends only on the distribution and the build options. A copy of it is kept in the
# user's cache per option set, so a fresh home (each test session) skips the build.
def _build_cache_dir(pristine: Path, build: dict) -> Path:
    key = hashlib.sha256(json.dumps(build, sort_keys=True).encode()).hexdigest()[:16]
    return pristine.parent / f"{pristine.name}-builds" / key


def restore_keycloak_build(layout: Layout, pristine: Path, build: dict) -> bool:
    cached = _build_cache_dir(pristine, build)
    if not (cached / "options.json").exists():
        return False
    target = layout.kc_dist / "lib" / "quarkus"
    tmp = target.with_name(f"quarkus.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.copytree(cached / "quarkus", tmp)
    shutil.rmtree(target)
    os.replace(tmp, target)
    return True


def save_keycloak_build(layout: Layout, pristine: Path, build: dict) -> None:
    cached = _build_cache_dir(pristine, build)
    if (cached / "options.json").exists():
        return
    tmp = cached.with_name(f"{cached.name}.tmp-{os.getpid()}")
    try:
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        shutil.copytree(layout.kc_dist / "lib" / "quarkus", tmp / "quarkus")
        (tmp / "options.json").write_text(json.dumps(build, sort_keys=True, indent=2) + "\n")
        os.replace(tmp, cached)
    except OSError:   # another stack saved it first, or the cache is read-only: no harm
        shutil.rmtree(tmp, ignore_errors=True)


def cluster_settings(bind: str) -> dict:
    """Keycloak settings of one node of a cluster (bench/rehearsal_multinode.py): distributed
    Infinispan caches, nodes finding each other through the JDBC_PING table in Keycloak's own
    PostgreSQL database (Keycloak 26's default `jdbc-ping` stack, so no multicast), the cluster
    transport bound to `bind` ("ADDR:PORT" on loopback: several nodes on one host need
    distinct ports). Runtime options: no rebuild."""
    address, sep, port = bind.rpartition(":")
    if not sep or not address or not port.isdigit():
        raise StackError(f"--keycloak-cluster takes ADDR:PORT, got {bind!r}", "keycloak")
    return {"KC_CACHE": "ispn", "KC_CACHE_STACK": "jdbc-ping",
            "KC_CACHE_EMBEDDED_NETWORK_BIND_ADDRESS": address,
            "KC_CACHE_EMBEDDED_NETWORK_BIND_PORT": port}


def keycloak_env(layout: Layout) -> tuple[dict, dict]:
    """(build options, full runtime environment) for kc.sh."""
    settings = read_env_file(KEYCLOAK_ENV_FILE)
    ports = layout.ports
    settings.update({
        "KC_HTTP_HOST": "127.0.0.1",
        "KC_HTTP_PORT": str(ports["keycloak"]),
        "KC_HTTP_MANAGEMENT_PORT": str(ports["keycloak_mgmt"]),
        "KC_HOSTNAME": f"{layout.public_url}/auth",
    })
    secrets = {"KC_BOOTSTRAP_ADMIN_CLIENT_SECRET":
               read_secret(layout, "keycloak-bootstrap-client-secret")}
    if layout.db == "postgres":
        settings.update({
            "KC_DB": "postgres",
            "KC_DB_URL": f"jdbc:postgresql://127.0.0.1:{ports['postgres']}/keycloak",
            "KC_DB_USERNAME": "keycloak",
        })
        secrets["KC_DB_PASSWORD"] = read_secret(layout, "postgres-keycloak-password")
    else:
        # Embedded H2 file database under keycloak-dist/data -> <home>/keycloak.
        settings["KC_DB"] = "dev-file"
        for key in ("KC_DB_URL", "KC_DB_USERNAME", "KC_DB_PASSWORD"):
            settings.pop(key, None)
    if layout.keycloak_cluster:
        settings.update(cluster_settings(layout.keycloak_cluster))
    build = {k: v for k, v in settings.items() if k in KC_BUILD_OPTIONS}
    env = {k: v for k, v in os.environ.items() if not k.startswith("KC_")}
    env.update(settings)
    env.update(secrets)
    return build, env


def start_keycloak(layout: Layout, timings: dict) -> Service:
    pristine, java_home = fetch_keycloak()
    t0 = time.monotonic()
    if prepare_keycloak_dist(layout, pristine):
        timings["keycloak copy"] = time.monotonic() - t0
    build, env = keycloak_env(layout)
    env.update({"JAVA_HOME": str(java_home), MARKER: str(layout.home)})
    kc_sh = layout.kc_dist / "bin" / "kc.sh"

    stamp = layout.kc_dist / ".leakhub-build.json"
    try:
        built = json.loads(stamp.read_text())
    except (OSError, ValueError):
        built = None
    if built != build:
        t1 = time.monotonic()
        stamp.unlink(missing_ok=True)
        if restore_keycloak_build(layout, pristine, build):
            timings["keycloak build (cached)"] = time.monotonic() - t1
        else:
            say("keycloak: kc.sh build (once per option set; takes a minute)")
            build_env = {k: v for k, v in env.items() if not k.startswith("KC_")}
            build_env.update(build)
            run_logged(layout, "keycloak", [kc_sh, "build"], build_env, timeout=600,
                       cwd=layout.kc_dist)
            save_keycloak_build(layout, pristine, build)
            timings["keycloak build"] = time.monotonic() - t1
        stamp.write_text(json.dumps(build, sort_keys=True) + "\n")

    svc = spawn(layout, "keycloak", [kc_sh, "start", "--optimized",
                                     "--spi-password-policy--password-blacklist--blacklists-path="
                                     f"{PASSWORD_BLACKLISTS}"], env,
                port=layout.ports["keycloak"], cwd=layout.kc_dist)
    wait_until("keycloak", lambda: http_status(f"{layout.keycloak_mgmt_url}/health/ready"),
               TIMEOUTS["keycloak"], svc, interval=1)
    timings["keycloak start"] = time.monotonic() - svc.started
    return svc
