"""Backups on the real stack: PostgreSQL (pg_dump/pg_restore, scratch and swapped databases)
and Keycloak (its database travels in the archive; sign-in works after a restore).

- Round trip into a fresh installation: an organization with leaks, a photo and a Keycloak user
  (password changed at first sign-in) is backed up from the session stack, restored into an
  empty home (nothing there: no databases, uploads, secrets or Keycloak data — the restore
  starts that home's PostgreSQL itself), that stack is started once, and the same user signs in
  with the same password through Keycloak and finds every row and photo unchanged.
- A "scratch installation" (its own database on the session stack's PostgreSQL, its own home,
  no Keycloak) for what must not disturb other tests: a backup written by the previous
  release (older schema) restored into the
  same installation (migrated forward), a truncated archive refused on PostgreSQL, SIGKILL in
  the middle of a backup, a full disk (RLIMIT_FSIZE).
"""
from __future__ import annotations

import json
import os
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import pytest

from support import kc
from support.stackctl import REPO, VENV_BIN, Stack, _stack_py, pick_previous, schema_head, superuser

pytestmark = pytest.mark.integration


FINGERPRINT = r'''
import hashlib, json, sys
from leakhub.core.config import get_config
from leakhub.core.db import database, init_database
from leakhub.photos.storage import photo_storage
from pathlib import Path

args = json.loads(sys.argv[1])
config = get_config()
init_database(config)
database.connect()
org = database.execute_sql("SELECT id FROM organization WHERE slug = %s",
                           (args["slug"],)).fetchone()[0]
# What the running stacks' own workers and sign-ins change on their own (security sync and
# review, sessions, jobs, backups) is not data the backup must bring back unchanged.
skip = {"security_event", "finding", "finding_event", "keycloak_event_cursor", "web_session",
        "audit_chain_head", "job_run", "backup_record", "backup_download", "schema_version",
        "security_review_state"}
# Only the columns given (a backup of an older schema has fewer), else all of them.
wanted = args.get("columns") or {}


def columns_of(table):
    if table in wanted:
        return wanted[table]
    return [c for (c,) in database.execute_sql(
        "SELECT column_name FROM information_schema.columns WHERE table_schema = 'public' "
        "AND table_name = %s ORDER BY ordinal_position", (table,)).fetchall()]


tables, columns = {}, {}
for (table,) in database.execute_sql(
        "SELECT table_name FROM information_schema.columns WHERE table_schema = 'public' "
        "AND column_name = 'organization_id' ORDER BY 1").fetchall():
    if table in skip:
        continue
    where = "organization_id = %s"
    params = [org]
    if table == "audit_entry":
        where += " AND seq <= %s AND action NOT LIKE 'backup.%%'"
        params.append(args.get("max_seq") or 10**12)
    columns[table] = columns_of(table)
    select = ", ".join(f'"{c}"' for c in columns[table])
    rows = database.execute_sql(f'SELECT {select} FROM "{table}" WHERE {where} ORDER BY 1',
                                params).fetchall()
    tables[table] = [len(rows), hashlib.sha256(repr(rows).encode()).hexdigest()]
columns["organization"] = columns_of("organization")
select = ", ".join(f'"{c}"' for c in columns["organization"])
org_row = database.execute_sql(f"SELECT {select} FROM organization WHERE id = %s",
                               (org,)).fetchall()
tables["organization"] = [1, hashlib.sha256(repr(org_row).encode()).hexdigest()]
max_seq = database.execute_sql("SELECT MAX(seq) FROM audit_entry WHERE organization_id = %s",
                               (org,)).fetchone()[0]
photos, plain = {}, {}
root = Path(config.data_dir) / "uploads" / "photos" / str(org)
store = photo_storage(org, config)
for p in sorted(root.rglob("*")):
    if p.is_file():
        photos[p.relative_to(root).as_posix()] = hashlib.sha256(p.read_bytes()).hexdigest()
        # the plaintext through the storage (decrypted with this installation's data key)
        plain[p.relative_to(root).as_posix()] = hashlib.sha256(store.read(p.name)).hexdigest()
print(json.dumps({"tables": tables, "columns": columns, "photos": photos, "plain": plain,
                  "max_seq": max_seq, "org_id": org}))
'''

ADD_PHOTO = r'''
import io, sys
from PIL import Image
from leakhub.app import create_app
from leakhub.authz import Actor
from leakhub.leaks.models import Leak
from leakhub.orgs.models import Organization
from leakhub.photos.service import add_photos

app = create_app(migrate=False)
with app.test_request_context():
    org = Organization.get(Organization.slug == sys.argv[1])
    leak = Leak.select().where(Leak.organization == org).order_by(Leak.id).first()
    img = Image.new("RGB", (320, 200), (10, 120, 200))
    for x in range(0, 320, 16):
        img.putpixel((x, x % 200), (255, 255, 0))
    out = io.BytesIO()
    img.save(out, "JPEG", quality=90)
    photos = add_photos(Actor.system(org, label="test"), leak, [("leak.jpg", out.getvalue())])
    print(photos[0].sha256)
'''

PLAIN_SECRETS = r'''
import sys
from pathlib import Path
from leakhub.core.config import get_config
from leakhub.core.secrets import read_secret
src, dst = get_config().secrets_dir, Path(sys.argv[1])
dst.mkdir(mode=0o700, parents=True, exist_ok=True)
for f in sorted(Path(src).iterdir()):
    if f.is_file() and not f.name.startswith(".") and f.name not in ("data-keyring",
                                                                      "backup-identity"):
        (dst / f.name).write_text(read_secret(src, f.name) + "\n")
        (dst / f.name).chmod(0o600)
'''

SQL = r'''
import json, sys
from leakhub.core.config import get_config
from leakhub.core.db import database, init_database
init_database(get_config())
database.connect()
cursor = database.execute_sql(sys.argv[1])
rows = cursor.fetchall() if sys.argv[1].lstrip().upper().startswith("SELECT") else []
print(json.dumps([list(map(str, r)) for r in rows]))
'''


def py(env: dict, code: str, *args, check=True) -> subprocess.CompletedProcess:
    proc = subprocess.run([str(VENV_BIN / "python"), "-c", code, *map(str, args)], env=env,
                          capture_output=True, text=True, timeout=600)
    if check and proc.returncode != 0:
        raise AssertionError(f"python snippet failed:\n{proc.stdout}\n{proc.stderr}")
    return proc


def leakctl(env: dict, *args, check=True, timeout=900, **kw) -> subprocess.CompletedProcess:
    proc = subprocess.run([str(VENV_BIN / "leakctl"), *map(str, args)], env=env,
                          capture_output=True, text=True, timeout=timeout,
                          stdin=subprocess.DEVNULL, **kw)
    if check and proc.returncode != 0:
        raise AssertionError(f"leakctl {' '.join(map(str, args))} exited {proc.returncode}:\n"
                             f"{proc.stdout}\n{proc.stderr}")
    return proc


def fingerprint(env, slug, max_seq=None, columns=None) -> dict:
    args = {"slug": slug, "max_seq": max_seq, "columns": columns}
    return json.loads(py(env, FINGERPRINT, json.dumps(args)).stdout.strip().splitlines()[-1])


def backup_with_retry(env, *args) -> dict:
    """The stack's own worker may be verifying at this moment (lock held): try again."""
    for _ in range(30):
        proc = leakctl(env, "backup", "create", "--json", *args, check=False)
        if proc.returncode == 0:
            return json.loads(proc.stdout.strip().splitlines()[-1])
        if "another backup operation is running" not in proc.stderr:
            raise AssertionError(proc.stderr)
        time.sleep(2)
    raise AssertionError("backup lock stayed busy")


# ---------------------------------------------------------------------------- round trip

def test_round_trip_into_a_fresh_installation_keeps_rows_photos_and_sign_in(stack, tmp_path):
    slug, email, otp = kc.new_org(stack, prefix="bk")
    http = stack.requests_session()
    resp, password = kc.sign_in(http, stack, slug, email, otp)
    assert resp.status_code == 200 and resp.url.startswith(stack.public_url), resp.url
    stack.leakctl("demo", "seed", "--org", slug, "--leaks", "50", "--seed", "7")
    py(stack.env, ADD_PHOTO, slug)

    env = dict(stack.env, LEAKHUB_BACKUP_DIR=str(tmp_path / "backups"),
               LEAKHUB_BACKUP_COPY_DIR=str(tmp_path / "nas"))
    before = fingerprint(stack.env, slug)
    assert before["tables"]["leak"][0] == 50 and len(before["photos"]) == 2   # photo + thumb
    # Encrypted at rest: the bytes on disk are not the plaintext, whose hash is the file name.
    for rel, digest in before["plain"].items():
        assert rel.endswith(digest) and before["photos"][rel] != digest
    assert (stack.home / "secrets" / "session-key").read_text().startswith(
        "leakhub-encrypted:v1:")
    made = backup_with_retry(env)
    archive = Path(made["path"])
    assert (tmp_path / "nas" / archive.name).read_bytes() == archive.read_bytes()
    listed = json.loads(leakctl(env, "backup", "list", "--json").stdout)
    assert listed[0]["file"] == archive.name
    assert slug in [o["slug"] for o in listed[0]["summary"]["organizations"]]
    assert slug in listed[0]["summary"]["realms"]
    verified = json.loads(leakctl(env, "backup", "verify", archive.name, "--json").stdout)
    assert verified["ok"], verified
    assert any("Keycloak database restored into a scratch database" in c
               for c in verified["checks"])

    # The session stack serves: a restore there is refused and changes nothing.
    refused = leakctl(env, "backup", "restore", str(archive), "--yes", check=False)
    assert refused.returncode == 1 and "Leakhub is running" in refused.stderr, refused.stderr
    assert fingerprint(stack.env, slug, before["max_seq"]) == before

    # The operator keeps the appliance key offline; the new machine has nothing.
    key = tmp_path / "appliance-key.txt"
    key.write_text(leakctl(env, "backup", "export-key").stdout)
    home = Path(tempfile.mkdtemp(prefix="leakhub-restore-"))
    home.chmod(0o755)
    fresh = None
    try:
        out = _stack_py("env", "--home", str(home), "--db", "postgres", "--ports", "auto",
                        timeout=60)
        fresh_env = dict(os.environ)
        for line in out.stdout.splitlines():
            k, _, v = line.removeprefix("export ").partition("=")
            fresh_env[k] = v.strip("'")
        fresh_env.pop("LEAKHUB_STACK_HOME", None)
        (home / "incoming").mkdir()
        shutil.copy(archive, home / "incoming" / archive.name)
        restored = leakctl(fresh_env, "backup", "restore", home / "incoming" / archive.name,
                           "--identity", key, "--yes", "--json")
        report = json.loads(restored.stdout.strip().splitlines()[-1])
        assert slug in report["organizations"] and "session-key" in report["secrets"]
        assert "postgres-superuser-password" not in report["secrets"]
        assert not any(p.name.startswith(".restore-") for p in (home / "data").iterdir())

        fresh = Stack.start(home)     # the one extra stack start of the suite
        # setup pointed the restored realms' clients at this installation's URL
        assert not (home / "data" / ".rehost-pending").exists()
        after = fingerprint(fresh.env, slug, before["max_seq"])
        assert after["tables"] == before["tables"]
        assert after["photos"] == before["photos"]
        # decrypted on the new host with the data keys the archive carried
        assert after["plain"] == before["plain"]
        assert (home / "keys" / "data-key").is_file()
        # the same person signs in with the same password, through the restored Keycloak
        http2 = fresh.requests_session()
        resp = kc.submit_password(http2, kc.start_login(http2, fresh, slug), email, password)
        assert resp.status_code == 200, resp.text[:500]
        assert resp.url.startswith(fresh.public_url), resp.url
        assert "kc-passwd-update-form" not in resp.text
        assert f"Org {slug}" in resp.text
        photo_page = http2.get(f"{fresh.public_url}/leaks")
        assert photo_page.status_code == 200
    finally:
        if fresh is not None:
            fresh.stop()
        else:
            _stack_py("down", "--home", str(home), timeout=300)
        shutil.rmtree(home, ignore_errors=True)


# ---------------------------------------------------------------------------- scratch install

def _superuser_sql(stack, sql: str) -> None:
    with superuser(stack) as conn:
        conn.execute(sql)


@pytest.fixture(scope="module")
def scratch(stack, tmp_path_factory):
    """Its own database on the stack's PostgreSQL and its own home; no Keycloak."""
    home = tmp_path_factory.mktemp("scratch-install")
    db = f"lhbk_{uuid.uuid4().hex[:8]}"
    _superuser_sql(stack, f'CREATE DATABASE "{db}" OWNER leakhub')
    # The session stack's secrets as plain files, as an installation from before encryption
    # at rest has them (the previous release's code reads them in the update test); its data
    # key and key ring are made by the first command that needs them (encryption stays on).
    py(stack.env, PLAIN_SECRETS, home / "secrets")
    env = dict(stack.env)
    env.pop("LEAKHUB_STACK_HOME", None)
    env.update({
        "LEAKHUB_HOME": str(home), "LEAKHUB_DATA_DIR": str(home / "data"),
        "LEAKHUB_SECRETS_DIR": str(home / "secrets"), "LEAKHUB_BACKUP_DIR": str(home / "backups"),
        "DATABASE_URL": f"postgresql://leakhub@127.0.0.1:{stack.ports['postgres']}/{db}",
        "LEAKHUB_INTERNAL_URL": "http://127.0.0.1:9", "KEYCLOAK_URL": "http://127.0.0.1:9/auth",
        "LEAKHUB_BACKUP_KEYCLOAK_DB": "none", "LEAKHUB_ORG_SLUG": "acme"})
    leakctl(dict(env, LEAKHUB_DATA_KEY_FILE="off"), "secrets", "init")
    assert not (home / "keys").exists()
    yield {"env": env, "home": home, "db": db}
    _superuser_sql(stack, f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')


def _head() -> int:
    sys.path.insert(0, str(REPO / "web"))
    from leakhub.core import migrations

    return migrations.head()


def test_backup_of_an_older_release_restores_and_migrates_forward_on_postgresql(scratch,
                                                                                 tmp_path):
    """The data and the backup come from the previous release's code (an earlier commit with
    an older schema, as the update rehearsal picks it); the restore and migrations are HEAD's."""
    env, head = scratch["env"], _head()
    previous = pick_previous(REPO)
    old_code = tmp_path / "previous"
    old_code.mkdir()
    archive = subprocess.run(["git", "-C", str(REPO), "archive", previous, "web"],
                             capture_output=True, check=True, timeout=120).stdout
    subprocess.run(["tar", "-x", "-C", str(old_code)], input=archive, check=True, timeout=120)
    old_env = dict(env, PYTHONPATH=str(old_code / "web"))   # ahead of the editable install
    old_schema = schema_head(REPO, previous)
    assert old_schema < head

    leakctl(old_env, "migrate")
    py(old_env, SQL, "INSERT INTO organization (slug, name, timezone, language, security_mode, "
                     "oidc_client_secret, created_at) VALUES ('acme', 'ACME', 'UTC', 'en', 1, "
                     "'s', now())")
    leakctl(old_env, "demo", "seed", "--org", "acme", "--leaks", "40", "--sites", "2",
            "--seed", "3")
    before = fingerprint(old_env, "acme")
    assert before["tables"]["leak"][0] == 40
    old = json.loads(leakctl(old_env, "backup", "create", "--kind", "pre-update", "--json")
                     .stdout.strip().splitlines()[-1])
    listed = json.loads(leakctl(env, "backup", "list", "--json").stdout)
    assert listed[0]["summary"]["schema_version"] == old_schema
    # the update: schema to head, then more changes that the restore must undo
    leakctl(env, "migrate")
    py(env, SQL, "UPDATE leak SET description = 'changed after the backup'")
    assert fingerprint(env, "acme", before["max_seq"], before["columns"]) != before

    # a truncated copy is refused before anything changes
    truncated = Path(old["path"]).with_name("truncated.tar.age")
    truncated.write_bytes(Path(old["path"]).read_bytes()[:-2000])
    refused = leakctl(env, "backup", "restore", truncated, "--yes", check=False)
    assert refused.returncode == 1 and "damaged, truncated or was tampered" in refused.stderr
    assert json.loads(py(env, SQL, "SELECT count(*) FROM leak WHERE description = "
                                   "'changed after the backup'").stdout) == [["40"]]
    truncated.unlink()

    report = json.loads(leakctl(env, "backup", "restore", old["path"], "--yes", "--json")
                        .stdout.strip().splitlines()[-1])
    assert report["migrations_applied"] == list(range(old_schema + 1, head + 1))
    assert json.loads(py(env, SQL, "SELECT MAX(version) FROM schema_version").stdout) == \
        [[str(head)]]
    after = fingerprint(env, "acme", before["max_seq"], before["columns"])
    # Tables the newer schema added are filled by its migrations (e.g. the dashboard's
    # per-day counts from the leaks); everything the old schema held is back unchanged.
    assert {t: v for t, v in after["tables"].items() if t in before["tables"]} == \
        before["tables"]
    if "leak_daily" not in before["tables"]:
        assert json.loads(py(env, SQL, "SELECT SUM(d.n) FROM leak_daily d JOIN organization o "
                                       "ON o.id = d.organization_id WHERE o.slug = 'acme'")
                          .stdout) == [["40"]]
    # the restored database kept its owner's rights and nothing is left behind
    assert json.loads(py(env, SQL, "SELECT count(*) FROM pg_database WHERE datname LIKE "
                                   f"'{scratch['db']}\\_%%' AND datname NOT LIKE '%%prerestore%%'")
                      .stdout) == [["0"]]


def _archives(home: Path) -> dict:
    d = home / "backups"
    return {p.name: p.read_bytes() for p in d.iterdir()
            if p.is_file() and p.name.endswith(".tar.age")} if d.exists() else {}


def _big_photo(home: Path, letter: str, mib: int) -> Path:
    """An incompressible upload of `mib` MiB, so that a backup takes a while."""
    photos = home / "data" / "uploads" / "photos" / "1" / (letter * 2)
    photos.mkdir(parents=True, exist_ok=True)
    big = photos / (letter * 64)
    big.write_bytes(os.urandom(mib * 2**20))
    return big


def test_sigkill_mid_backup_leaves_no_archive_and_the_next_run_recovers(scratch):
    env, home = scratch["env"], scratch["home"]
    leakctl(env, "migrate")
    big = _big_photo(home, "a", 80)
    try:
        first = json.loads(leakctl(env, "backup", "create", "--json").stdout.strip()
                           .splitlines()[-1])
        kept = _archives(home)
        assert first["file"] in kept
        proc = subprocess.Popen([str(VENV_BIN / "leakctl"), "backup", "create"], env=env,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 120
        partial = None
        while time.monotonic() < deadline and proc.poll() is None:
            partial = next((p for p in (home / "backups").iterdir()
                            if p.name.endswith(".partial") and p.stat().st_size > 2**20), None)
            if partial:
                break
            time.sleep(0.01)
        assert partial is not None, "the backup finished before it could be killed"
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        now = _archives(home)
        assert now == kept                       # nothing new under a final name, old intact
        status = leakctl(env, "backup", "list", "--json")
        assert {b["file"] for b in json.loads(status.stdout)} == set(kept)
        again = json.loads(leakctl(env, "backup", "create", "--json").stdout.strip()
                           .splitlines()[-1])           # the stale lock is no obstacle
        left = [p.name for p in (home / "backups").iterdir()
                if p.name.startswith(".") and p.name != ".lock"]
        assert left == []                        # the killed run's leftovers are gone
        assert json.loads(leakctl(env, "backup", "verify", again["file"], "--json")
                          .stdout)["ok"]
    finally:
        big.unlink(missing_ok=True)


def test_disk_full_during_backup_is_a_clear_error_and_old_backups_stay(scratch):
    env, home = scratch["env"], scratch["home"]
    leakctl(env, "migrate")
    big = _big_photo(home, "b", 12)
    try:
        leakctl(env, "backup", "create")
        kept = _archives(home)

        def limit():
            resource.setrlimit(resource.RLIMIT_FSIZE, (8 * 2**20, 8 * 2**20))

        full = leakctl(env, "backup", "create", check=False, preexec_fn=limit)
        assert full.returncode == 1
        assert full.stderr.strip().splitlines()[-1].startswith("leakctl: error: ")
        assert "not enough space for the backup" in full.stderr or "SIGXFSZ" in full.stderr
        assert "Traceback" not in full.stderr
        assert _archives(home) == kept
        assert [p.name for p in (home / "backups").iterdir()
                if p.name.startswith(".") and p.name != ".lock"] == []
    finally:
        big.unlink(missing_ok=True)
