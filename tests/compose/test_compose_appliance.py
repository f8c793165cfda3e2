"""The compose appliance as a customer runs it: the offline delivery (`scripts/release` →
`sha256sum -c` → `docker load` → unpack) → `.env` → `docker compose up -d` → the setup
one-shot → the first admin's one-time password from its log → sign-in with Chromium through the
published Caddy port (trusting `scripts/leakctl tls export-root`) → a leak with a photo →
`scripts/leakctl backup create` → down / up: data kept → `down -v`, restore into fresh
volumes: same user and password, same rows and photo checksums.

Runs docker-compose.yml unchanged under podman with the stand-in images (README.md here)."""
from __future__ import annotations

import email
import email.policy
import io
import json
import os
import re
import socket
import subprocess
import time
from pathlib import Path

import pytest
from PIL import Image
from playwright.sync_api import expect, sync_playwright

import composeharness
from support.browser import STEADY_NETWORK, goto

CHROMIUM = "/usr/bin/chromium"

# Covers building the images when they are not cached yet (stand-ins, the pinned Caddy with Go,
# the app image) and four `up -d` of the whole bundle.
pytestmark = [pytest.mark.compose, pytest.mark.e2e, pytest.mark.timeout(3600)]

REPO = Path(__file__).resolve().parents[2]
VERSION = re.search(r'^version = "(.+)"$', (REPO / "pyproject.toml").read_text(), re.M).group(1)
APP_IMAGE = f"localhost/leakhub:{VERSION}"
EMAIL = "admin@example.test"
PASSWORD = "Leak-hub-2026!"
ROWS_SQL = ("select l.id, l.tag, l.description, p.sha256 from leak l "
            "left join photo p on p.leak_id = l.id order by l.id, p.sha256")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Project:
    def __init__(self, engine, folder: Path, env_file: str = ".env", name: str = "leakhub"):
        self.engine, self.folder, self.env_file, self.name = engine, folder, env_file, name

    def run(self, *cmd, check=True, timeout=1800, input=None) -> subprocess.CompletedProcess:
        proc = subprocess.run([str(c) for c in cmd], cwd=self.folder, env=self.engine.env(),
                              capture_output=True, text=True, timeout=timeout, input=input)
        if check and proc.returncode != 0:
            raise AssertionError(f"{' '.join(map(str, cmd))} exited {proc.returncode}:\n"
                                 f"{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}\n"
                                 f"{self.diagnose()}")
        return proc

    def compose(self, *args, **kw):
        return self.run("docker", "compose", "--env-file", self.env_file, "-p", self.name,
                        *args, **kw)

    def diagnose(self) -> str:
        try:
            ps = subprocess.run(["docker", "compose", "--env-file", self.env_file, "-p", self.name,
                                 "ps"], cwd=self.folder, env=self.engine.env(),
                                capture_output=True, text=True, timeout=120).stdout
            logs = subprocess.run(["docker", "compose", "--env-file", self.env_file, "-p",
                                   self.name, "logs", "--tail", "25", "--no-color"],
                                  cwd=self.folder, env=self.engine.env(), capture_output=True,
                                  text=True, timeout=120).stdout
            # The app services' own logs in full length: the interleaved tail above is mostly
            # Keycloak's.
            own = ""
            for service in ("worker", "web"):
                own += f"--- {service}\n" + subprocess.run(
                    ["docker", "compose", "--env-file", self.env_file, "-p", self.name, "logs",
                     "--tail", "60", "--no-color", service], cwd=self.folder,
                    env=self.engine.env(), capture_output=True, text=True,
                    timeout=120).stdout[-6000:] + "\n"
            return f"--- ps\n{ps}\n--- logs\n{logs[-12000:]}\n{own}"
        except Exception as exc:   # diagnostics never hide the failure
            return f"(no diagnostics: {exc})"

    def sql(self, query: str) -> str:
        return self.compose(
            "exec", "-T", "worker", "sh", "-c",
            'PGPASSWORD="$(cat /run/leakhub-secrets/postgres-leakhub-password)" '
            'psql -h postgres -U leakhub -d leakhub -AtX -c "$1"', "sh", query).stdout

    def upload_checksums(self) -> str:
        return self.compose("exec", "-T", "worker", "sh", "-c",
                            "cd /var/lib/leakhub/data && find . -type f -path '*photo*' "
                            "| sort | xargs -r sha256sum").stdout

    def up(self):
        started = time.monotonic()
        self.compose("up", "-d", timeout=2400)
        self.wait_healthy()
        return time.monotonic() - started

    def wait_healthy(self, timeout: float = 900):
        deadline = time.monotonic() + timeout
        while True:
            out = self.compose("ps", "--format", "json").stdout
            states = {}
            for line in out.splitlines():
                item = json.loads(line)
                states[item["Service"]] = item["Health"] or item["State"]
            want = ("web", "worker", "keycloak", "caddy", "postgres")
            if all(states.get(s) == "healthy" for s in want):
                return
            if time.monotonic() > deadline:
                raise AssertionError(f"not healthy: {states}\n{self.diagnose()}")
            time.sleep(5)


def launch(pw, root_crt: Path, workdir: Path):
    """Chromium trusting exactly the exported root, as a customer's client would: the root is a
    trusted CA in the NSS database of the browser's $HOME (certutil), no certificate errors
    ignored, nothing pinned."""
    home = workdir / "home"
    nssdb = home / ".pki" / "nssdb"
    nssdb.mkdir(parents=True, exist_ok=True)
    subprocess.run(["certutil", "-N", "-d", f"sql:{nssdb}", "--empty-password"], check=True,
                   capture_output=True)
    subprocess.run(["certutil", "-A", "-d", f"sql:{nssdb}", "-n", "Leakhub root", "-t", "C,,",
                    "-i", str(root_crt)], check=True, capture_output=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith("LEAKHUB_")}
    env["HOME"] = str(home)
    return pw.chromium.launch_persistent_context(
        str(workdir / "profile"), executable_path=CHROMIUM, headless=True, env=env,
        args=["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic",
              *STEADY_NETWORK, "--no-first-run", "--disable-background-networking",
              "--disable-component-update", "--disable-sync"],
        viewport={"width": 1024, "height": 768})


def jpeg() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (320, 240), (40, 90, 160)).save(out, "JPEG")
    return out.getvalue()


def sign_in(page, base: str, password: str, one_time: str | None = None, email: str = EMAIL):
    goto(page, f"{base}/login/main")
    page.fill("#username", email)
    page.fill("#password", one_time or password)
    page.locator("#kc-login").click()
    if one_time:
        page.wait_for_selector("#password-new")
        page.fill("#password-new", password)
        page.fill("#password-confirm", password)
        page.locator("[type=submit]").first.click()
    page.wait_for_url(re.compile(re.escape(base) + r"/(?!auth).*"))
    expect(page.get_by_test_id("org-name")).to_be_visible()


def deliver(engine, workdir: Path) -> Path:
    """The offline delivery as a customer gets it: `scripts/release` writes the archive (app
    image saved from the engine, bundle, checksums); the image is removed from the engine, then
    the archive is checked (`sha256sum -c`), the image loaded (`docker load`) and the bundle
    unpacked. Returns the bundle's folder."""
    env = engine.env()
    started = time.monotonic()
    archive = subprocess.run(
        [REPO / "scripts" / "release", "--no-build", "--out", workdir / "dist"],
        env=env, capture_output=True, text=True, timeout=1200)
    assert archive.returncode == 0, archive.stderr[-3000:]
    archive_path = Path(archive.stdout.strip().splitlines()[-1])
    # Removed so that `docker load` below is what provides it; a concurrent run of this test
    # (another session on this machine) may have containers of it, then it stays.
    removed = subprocess.run(["docker", "rmi", APP_IMAGE], env=env, capture_output=True,
                             text=True, timeout=300)
    assert removed.returncode == 0 or "in use" in removed.stderr, removed.stderr
    host = workdir / "customer"
    host.mkdir()

    def sh(*cmd):
        proc = subprocess.run([str(c) for c in cmd], cwd=host, env=env, capture_output=True,
                              text=True, timeout=1200)
        assert proc.returncode == 0, f"{cmd}: {proc.stdout[-2000:]}{proc.stderr[-2000:]}"
        return proc.stdout

    sh("tar", "-xf", archive_path)
    assert "OK" in sh("sha256sum", "-c", "SHA256SUMS")
    sh("docker", "load", "-i", f"leakhub-image-{VERSION}.tar")
    # The bundle's PostgreSQL image (pgBackRest) travels in the archive too.
    loaded = sh("docker", "load", "-i", f"leakhub-postgres-image-{VERSION}.tar")
    assert composeharness.POSTGRES_PITR.split("/", 1)[1] in loaded, loaded
    sh("tar", "-xzf", f"leakhub-bundle-{VERSION}.tar.gz")
    print(f"\noffline delivery (release, rmi, check, load, unpack) in "
          f"{time.monotonic() - started:.0f} s")
    return host / f"leakhub-{VERSION}"


@pytest.fixture(scope="module")
def project(engine, tmp_path_factory):
    # The image the release step saves: built from web/Dockerfile as it is in this tree.
    started = time.monotonic()
    composeharness.ensure_app_image(APP_IMAGE, composeharness.bundle_copy(
        tmp_path_factory.mktemp("build")))
    print(f"\napp image ready in {time.monotonic() - started:.0f} s")
    folder = deliver(engine, tmp_path_factory.mktemp("delivery"))
    https, http = free_port(), free_port()
    # .env as a customer writes it (compose/.env.example with the required lines filled in).
    text = (folder / "compose" / ".env.example").read_text()
    text = text.replace("LEAKHUB_HOSTNAME=\n", "LEAKHUB_HOSTNAME=localhost\n")
    text = text.replace("LEAKHUB_ADMIN_EMAIL=\n", f"LEAKHUB_ADMIN_EMAIL={EMAIL}\n")
    text += (f"LEAKHUB_HTTP_PORT={http}\nLEAKHUB_HTTPS_PORT={https}\n"
             f"LEAKHUB_PUBLIC_PORT_SUFFIX=:{https}\nLEAKHUB_ORG_NAME=Werk Nord\n")
    # Its own project name (the customer may choose one): another run of this test on the same
    # machine (a second session, CI) must not share containers, networks or volumes with it.
    name = f"leakhub-{os.getpid()}"
    assert "COMPOSE_PROJECT_NAME=leakhub\n" in text
    text = text.replace("COMPOSE_PROJECT_NAME=leakhub\n", f"COMPOSE_PROJECT_NAME={name}\n")
    (folder / ".env").write_text(text)
    p = Project(engine, folder, name=name)
    p.base = f"https://localhost:{https}"
    yield p
    p.compose("down", "-v", "--remove-orphans", check=False, timeout=600)


def test_install_sign_in_record_backup_restart_and_restore(project, tmp_path):
    timings = {}
    timings["first up"] = project.up()

    # The setup one-shot completed and printed the first admin's one-time password.
    logs = project.compose("logs", "--no-color", "setup").stdout
    match = re.search(r"user (\S+), one-time password (\S+) ", logs)
    assert match and match.group(1) == EMAIL, logs[-3000:]
    one_time = match.group(2)

    # Least privilege, as the containers see it.
    web_secrets = set(project.compose("exec", "-T", "web", "ls",
                                      "/run/leakhub-secrets").stdout.split())
    assert "postgres-superuser-password" not in web_secrets and "backup-identity" not in web_secrets
    assert {"session-key", "postgres-leakhub-password"} <= web_secrets

    # The internal CA's root from the host verb; Chromium trusts exactly it.
    ca_dir = tmp_path / "ca"
    ca_dir.mkdir()
    project.run("scripts/leakctl", "tls", "export-root", "--out", ca_dir / "root.crt")
    photo = tmp_path / "Kupplung.jpg"
    photo.write_bytes(jpeg())
    with sync_playwright() as pw:
        ctx = launch(pw, ca_dir / "root.crt", tmp_path / "chromium")
        page = ctx.new_page()
        page.set_default_timeout(30_000)
        sign_in(page, project.base, PASSWORD, one_time)
        goto(page, f"{project.base}/locations/new")
        page.select_option("#f-kind", "site")
        page.fill("#f-code", "NORD")
        page.fill("#f-name", "Werk Nord")
        page.get_by_test_id("save").click()
        page.wait_for_url(re.compile(r".*/locations/\d+$"))
        site_id = page.url.rsplit("/", 1)[1]
        goto(page, f"{project.base}/leaks/new")
        page.select_option("#f-location", site_id)
        page.fill("#f-tag", "T-0815")
        page.fill("#f-rate_lpm", "12,5")
        page.fill("#f-description", "Kupplung zischt")
        page.get_by_test_id("save").click()
        page.wait_for_url(re.compile(r".*/leaks/\d+$"))
        photos = page.get_by_test_id("photos")
        page.set_input_files("#photo-files", str(photo))
        photos.locator("button[type=submit]").click()
        expect(photos.locator("img")).to_have_count(1)
        ctx.close()
    rows = project.sql(ROWS_SQL)
    assert "T-0815" in rows and "Kupplung zischt" in rows, rows
    files = project.upload_checksums()
    assert files.strip(), "no photo files in the uploads volume"

    # Backup through the host verb (runs in the worker); keep the archive and the key off-host.
    project.run("scripts/leakctl", "backup", "create", timeout=1200)
    listing = project.compose("exec", "-T", "worker", "ls", "/var/lib/leakhub/backups").stdout
    archive = sorted(n for n in listing.split() if n.endswith(".age"))[-1]
    key = project.run("scripts/leakctl", "backup", "export-key").stdout
    (project.folder / "restore").mkdir()
    (project.folder / "restore" / "backup-key.txt").write_text(key)
    worker_id = project.compose("ps", "-q", "worker").stdout.split()[0]
    project.run("docker", "cp", f"{worker_id}:/var/lib/leakhub/backups/{archive}",
                project.folder / "restore" / archive)
    # `docker cp` keeps the archive's mode 0600 but makes it root's on the host; the restore
    # below runs as the app user (uid 10001), which must be able to read what it restores.
    (project.folder / "restore" / archive).chmod(0o644)

    # down / up: everything is still there.
    project.compose("down", timeout=600)
    timings["restart"] = project.up()
    assert project.sql(ROWS_SQL) == rows
    assert project.upload_checksums() == files

    # down -v: a fresh installation, then the backup restored into it.
    project.compose("down", "-v", timeout=600)
    timings["fresh up"] = project.up()
    assert "T-0815" not in project.sql(ROWS_SQL)
    project.compose("stop", "web", "worker", "keycloak", "caddy", timeout=600)
    project.compose("run", "--rm", "--no-deps", "-T", "-v",
                    f"{project.folder / 'restore'}:/restore:ro", "setup", "sh", "-c",
                    'cp "/restore/$1" /var/lib/leakhub/backups/ && leakctl backup restore '
                    '"/var/lib/leakhub/backups/$1" --identity /restore/backup-key.txt --yes',
                    "sh", archive, timeout=1800)
    timings["restored up"] = project.up()
    assert project.sql(ROWS_SQL) == rows
    assert project.upload_checksums() == files

    # The same user signs in with the same password (no one-time password any more).
    project.run("scripts/leakctl", "tls", "export-root", "--out", ca_dir / "root.crt")
    with sync_playwright() as pw:
        ctx = launch(pw, ca_dir / "root.crt", tmp_path / "chromium-2")
        page = ctx.new_page()
        page.set_default_timeout(30_000)
        sign_in(page, project.base, PASSWORD)
        goto(page, f"{project.base}/leaks")
        expect(page.locator("body")).to_contain_text("T-0815")
        ctx.close()
    print("\n" + ", ".join(f"{k}: {v:.0f} s" for k, v in timings.items()))


def probe_release(tmp: Path, version: str, migrations: dict[str, str]) -> str:
    """A later release built locally: this tree's app image with extra migrations (numbered
    after this tree's last one) and another version number, tagged localhost/leakhub:<version>
    (cached by content)."""
    folder = composeharness.bundle_copy(tmp / f"release-{version}")
    where = folder / "web" / "leakhub" / "core" / "migrations"
    last = max(int(m.group(1)) for f in where.glob("m*.py")
               if (m := re.match(r"m(\d{4})_", f.name)))
    for number, (name, sql) in enumerate(migrations.items(), start=last + 1):
        (where / f"m{number:04d}_{name}.py").write_text(
            f'"""Test-only migration of release {version}."""\n\n\n'
            f"def up(db):\n    db.execute_sql({sql!r})\n")
    pyproject = folder / "pyproject.toml"
    pyproject.write_text(re.sub(r'^version = ".*"$', f'version = "{version}"',
                                pyproject.read_text(), count=1, flags=re.M))
    tag = f"localhost/leakhub:{version}"
    key = composeharness._hash(composeharness.app_image_key(), version, sorted(migrations.items()))
    composeharness.build(tag, folder / "web" / "Dockerfile", folder, key)
    return tag


def test_update_to_a_new_release_and_roll_back_a_failing_one(project, tmp_path):
    """`scripts/leakctl update --to`: a release with one more migration is installed; one whose
    migration fails is rolled back (schema and version as before); the deployment log shows
    both. The installation of the test above (or a fresh one) is the starting point."""
    project.up()
    before = project.sql(ROWS_SQL)
    probe = {"update_probe": "CREATE TABLE update_probe (id integer)"}
    probe_release(tmp_path, "9.1.0", probe)
    probe_release(tmp_path, "9.2.0", {
        **probe, "broken": "ALTER TABLE no_such_table ADD COLUMN x integer"})

    ok = project.run("scripts/leakctl", "update", "--to", "9.1.0", timeout=1800)
    assert "OK: updated" in ok.stdout + ok.stderr, ok.stdout + ok.stderr
    assert "LEAKHUB_VERSION=9.1.0" in (project.folder / ".env").read_text()
    assert project.sql("select count(*) from update_probe").strip() == "0"
    schema = project.sql("select max(version) from schema_version").strip()

    failed = project.run("scripts/leakctl", "update", "--to", "9.2.0", check=False,
                         timeout=1800)
    assert failed.returncode != 0
    assert "ROLLED BACK" in failed.stdout + failed.stderr, failed.stdout + failed.stderr
    assert "LEAKHUB_VERSION=9.1.0" in (project.folder / ".env").read_text()
    project.wait_healthy()
    assert project.sql("select max(version) from schema_version").strip() == schema
    assert project.sql(ROWS_SQL) == before
    image = project.run("docker", "inspect", "--format", "{{.Config.Image}}",
                        project.compose("ps", "-q", "web").stdout.split()[0]).stdout
    assert "localhost/leakhub:9.1.0" in image

    log = project.run("scripts/leakctl", "deployments").stdout
    assert re.search(r"rolled_back\s+9\.1\.0 -> 9\.2\.0", log), log
    assert re.search(r"ok\s+\S+ -> 9\.1\.0", log), log


def test_point_in_time_recovery(project):
    """Compose PITR (docs/backups.md, "Docker Compose"): the postgres container archives WAL
    and takes the first base backup by itself; status shows the window; `scripts/leakctl backup
    restore --to-time` refuses a bad target with nothing stopped, then restores to T: exactly
    the writes before T are there, Leakhub is up again and the audit trail has the event."""
    timings = {}
    project.up()
    # The first base backup is taken at the first start; the window reaches web and worker.
    deadline = time.monotonic() + 300
    while True:
        status = project.run("scripts/leakctl", "status", "--json", check=False)
        checks = {c["name"]: c for c in json.loads(status.stdout or "{}").get("checks", [])}
        pitr = checks.get("point-in-time recovery")
        if pitr and pitr["ok"] and "restorable" in pitr["detail"]:
            break
        assert time.monotonic() < deadline, status.stdout + status.stderr
        time.sleep(5)
    project.run("scripts/leakctl", "backup", "pitr-base", timeout=600)

    project.sql("CREATE TABLE pitr_probe (n integer); "
                "INSERT INTO pitr_probe VALUES (1), (2), (3)")
    time.sleep(2)
    target = project.sql("SELECT to_char(now() AT TIME ZONE 'UTC', "
                         "'YYYY-MM-DD HH24:MI:SS')").strip()
    time.sleep(2)
    project.sql("INSERT INTO pitr_probe VALUES (4), (5); CREATE TABLE pitr_after (n integer)")

    # Refused at once, nothing stopped: the future, before the window, not a time.
    for when, why in (("2099-01-01 00:00", "in the future"),
                      ("2001-01-01 00:00", "before the earliest restorable point"),
                      ("gestern", "is not a time")):
        refused = project.run("scripts/leakctl", "backup", "restore", "--to-time", when,
                              "--tz", "UTC", "--yes", check=False, timeout=300)
        assert refused.returncode != 0 and why in refused.stderr, refused.stdout + refused.stderr
    project.wait_healthy(timeout=60)

    started = time.monotonic()
    done = project.run("scripts/leakctl", "backup", "restore", "--to-time", target, "--tz",
                       "UTC", "--yes", timeout=2400)
    timings["restore"] = time.monotonic() - started
    assert f"restored both databases to {target.replace(' ', 'T')}Z" in done.stdout, done.stdout
    project.wait_healthy()
    timings["restore until healthy"] = time.monotonic() - started
    assert project.sql("SELECT string_agg(n::text, ',' ORDER BY n) FROM pitr_probe").strip() \
        == "1,2,3"
    assert project.sql("SELECT to_regclass('pitr_after') IS NULL").strip() == "t"
    assert project.sql("SELECT count(*) FROM audit_entry WHERE action = "
                       "'backup.restored_to_time'").strip() == "1"
    # Archiving goes on after the restore (a new timeline): writes after it are archived.
    project.sql("INSERT INTO pitr_probe VALUES (7)")
    switched = project.compose("exec", "-T", "postgres", "/opt/leakhub/pitr.sh", "switch-wal",
                               timeout=300).stdout.strip()
    assert switched[:8] == "00000002", switched
    print("\n" + done.stdout.strip() + "\n"
          + ", ".join(f"{k}: {v:.0f} s" for k, v in timings.items()))


# An SMTP server on the customer's network, as far as the appliance can tell: a container on the
# bundle's `egress` network, added by a Compose override file beside .env (the bundle stays
# unchanged). It stores every message it accepts as a file in the bind-mounted folder.
SMTP_SINK = '''\
import smtpd, asyncore, pathlib, sys, time

OUT = pathlib.Path(sys.argv[1])


class Sink(smtpd.SMTPServer):
    def process_message(self, peer, mailfrom, rcpttos, data, **kwargs):
        name = OUT / f"{time.time_ns()}.eml"
        tmp = name.with_suffix(".part")
        head = f"X-Sink-Rcpt: {', '.join(rcpttos)}\\nX-Sink-From: {mailfrom}\\n".encode()
        tmp.write_bytes(head + (data if isinstance(data, bytes) else data.encode()))
        tmp.rename(name)


OUT.mkdir(parents=True, exist_ok=True)
Sink(("0.0.0.0", 2525), None, decode_data=False)
print("smtp sink listening on 2525", flush=True)
asyncore.loop()
'''

SMTP_OVERRIDE = """\
services:
  smtp-sink:
    image: python:3.11.17-slim-bookworm
    pull_policy: never
    command: ["python", "-W", "ignore", "/sink/sink.py", "/sink/mail"]
    volumes:
      - ./smtp-sink:/sink
    networks:
      - egress
"""


def read_mail(path: Path) -> dict:
    """A stored message: envelope recipients, sender, decoded subject and text of all parts."""
    msg = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
    parts = [part.get_content() for part in msg.walk()
             if part.get_content_maintype() == "text"]
    return {"rcpt": msg["X-Sink-Rcpt"] or "", "from": msg["X-Sink-From"] or "",
            "subject": str(msg["Subject"] or ""), "text": "\n".join(parts)}


def wait_for_mail(folder: Path, predicate, what: str, timeout: float = 180) -> dict:
    deadline = time.monotonic() + timeout
    seen: list[dict] = []
    while time.monotonic() < deadline:
        seen = [read_mail(p) for p in sorted(folder.glob("*.eml"))]
        for mail in seen:
            if predicate(mail):
                return mail
        time.sleep(3)
    raise AssertionError(f"no {what} within {timeout:.0f} s; the sink has {len(seen)} message(s):"
                         + "".join(f"\n---\n{m['rcpt']} {m['subject']}\n{m['text'][:1000]}"
                                   for m in seen))


def test_mail_goes_out_and_env_copy_makes_a_separate_test_installation(project, tmp_path):
    """Mail: with LEAKHUB_SMTP_* in .env, Keycloak mails the invitation and the worker the
    security digest to the SMTP server on the egress network. Then `scripts/leakctl env-copy
    prod test` restores production's newest verified backup into a second Compose project on
    the same host: the same rows and photos, personal data masked, the same password signs in
    at the test installation's own URL, and users added there stay there."""
    project.up()
    slug = json.loads(project.run("scripts/leakctl", "org", "list", "--json").stdout)[0]["slug"]

    # --- mail: the sink beside the bundle, settings in .env as the customer would write them
    sink = project.folder / "smtp-sink"
    (sink / "mail").mkdir(parents=True)
    (sink / "sink.py").write_text(SMTP_SINK)
    (project.folder / "docker-compose.override.yml").write_text(SMTP_OVERRIDE)
    env = (project.folder / ".env").read_text()
    (project.folder / ".env").write_text(
        env + "LEAKHUB_SMTP_HOST=smtp-sink\nLEAKHUB_SMTP_PORT=2525\n"
        "LEAKHUB_SMTP_STARTTLS=false\nLEAKHUB_SMTP_FROM=leakhub@example.test\n")
    project.up()      # the app services are re-created with the mail settings
    invited = project.run("scripts/leakctl", "user", "invite", "--org", slug, "--email",
                          "kollege@example.test", "--role", "viewer", "--name", "Karl Kollege")
    assert "one-time password" not in invited.stdout.lower(), invited.stdout
    invitation = wait_for_mail(sink / "mail", lambda m: "kollege@example.test" in m["rcpt"],
                               "invitation from Keycloak")
    assert invitation["from"] == "leakhub@example.test", invitation
    # The link leads to Keycloak behind this installation's public URL.
    assert f"{project.base}/auth/realms/{slug}/" in invitation["text"], invitation["text"][:3000]

    # A finding (a user made administrator), then the review: the digest goes to the admins.
    project.run("scripts/leakctl", "user", "set-role", "--org", slug, "--email",
                "kollege@example.test", "--role", "admin")
    project.run("scripts/leakctl", "security", "review", timeout=600)
    digest = wait_for_mail(sink / "mail", lambda m: EMAIL in m["rcpt"]
                           and m["subject"].startswith("[Leakhub]"),
                           "security digest from the worker")
    assert "kollege@example.test" in digest["text"], digest
    assert f"{project.base}/security" in digest["text"], digest

    # --- env-copy into a second Compose project (the test installation)
    if not project.sql(ROWS_SQL).strip():
        # Run on its own (-k): the first test's leak is not there; some data to copy.
        project.run("scripts/leakctl", "demo", "seed", "--org", slug, "--leaks", "5", "--sites",
                    "1", timeout=600)
    rows = project.sql(ROWS_SQL)
    tag = rows.splitlines()[0].split("|")[1]
    project.run("scripts/leakctl", "backup", "create", timeout=1200)
    project.run("scripts/leakctl", "backup", "verify", timeout=1200)
    https, http = free_port(), free_port()
    test_name = f"{project.name}-test"
    text = re.sub(r"^COMPOSE_PROJECT_NAME=.*$", f"COMPOSE_PROJECT_NAME={test_name}", env,
                  flags=re.M)
    text = re.sub(r"^LEAKHUB_(HTTPS?_PORT|PUBLIC_PORT_SUFFIX)=.*\n", "", text, flags=re.M)
    # No mail settings: a copy of production must not write to production's users.
    text += (f"LEAKHUB_HTTP_PORT={http}\nLEAKHUB_HTTPS_PORT={https}\n"
             f"LEAKHUB_PUBLIC_PORT_SUFFIX=:{https}\nLEAKHUB_ENV_FILE=.env.test\n")
    (project.folder / ".env.test").write_text(text)
    test = Project(project.engine, project.folder, env_file=".env.test", name=test_name)
    test.base = f"https://localhost:{https}"
    try:
        test.up()
        assert not test.sql(ROWS_SQL).strip()
        try:
            copied = project.run("scripts/leakctl", "env-copy", "prod", "test", timeout=3600)
        except AssertionError as exc:  # production's state is in it; the copy's is wanted too
            raise AssertionError(f"{exc}\n--- the test installation\n{test.diagnose()}") from None
        assert test_name in copied.stdout, copied.stdout + copied.stderr
        test.wait_healthy()
        assert rows.strip() and test.sql(ROWS_SQL) == rows == project.sql(ROWS_SQL)
        assert test.upload_checksums() == project.upload_checksums()

        def users(p):
            return {u["email"]: u for u in json.loads(p.compose(
                "exec", "-T", "web", "leakctl", "user", "list", "--org", slug, "--json").stdout)}

        # Masked by default: no production e-mail address in the copy, each user is
        # user<id>@example.invalid there.
        prod_users = users(project)
        masked = users(test)
        assert {f"user{u['id']}@example.invalid" for u in prod_users.values()} == set(masked)
        assert "masked" in copied.stdout

        # Separate users: one invited in the test installation does not exist in production.
        test.compose("exec", "-T", "web", "leakctl", "user", "invite", "--org", slug, "--email",
                     "tester@example.test", "--role", "viewer")
        assert "tester@example.test" in users(test)
        assert "tester@example.test" not in users(project)

        # Production's administrator signs in at the test installation's own URL (Keycloak's
        # redirect URIs follow it) under the masked address with the production password,
        # trusting the test installation's own root.
        ca = tmp_path / "test-root.crt"
        ca.write_text(test.compose("exec", "-T", "caddy", "cat",
                                   "/data/caddy/pki/authorities/local/root.crt").stdout)
        with sync_playwright() as pw:
            ctx = launch(pw, ca, tmp_path / "chromium-test")
            page = ctx.new_page()
            page.set_default_timeout(30_000)
            sign_in(page, test.base, PASSWORD,
                    email=f"user{prod_users[EMAIL]['id']}@example.invalid")
            goto(page, f"{test.base}/leaks")
            expect(page.locator("body")).to_contain_text(tag)
            ctx.close()
        # Nothing from the test installation's mail: it has no SMTP settings.
        assert not [m for m in map(read_mail, (sink / "mail").glob("*.eml"))
                    if "tester@example.test" in m["rcpt"]]
    finally:
        test.compose("down", "-v", "--remove-orphans", check=False, timeout=600)
