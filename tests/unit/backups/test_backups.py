"""Backups in the embedded mode (SQLite app database, Keycloak's H2 files as plain files):
archive format, round trip, restore of an older schema, refusals (tamper, truncation, wrong
key, newer version, forged archive), rotation, locking, worker jobs, admin page."""
from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import signal
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import pytest
from pyrage import x25519

from leakhub.authz import Actor
from leakhub.backups import (
    archive,
    create,
    inventory,
    jobs,
    keys,
    lock,
    restore,
    rotation,
    service,
    verify,
)
from leakhub.backups.models import BackupDownload, BackupRecord
from leakhub.backups.settings import BackupSettings, set_settings
from leakhub.core import migrations
from leakhub.core.config import Config
from leakhub.core.db import database, utcnow
from leakhub.core.secrets import ensure_all, read_secret
from leakhub.jobs.models import JobRun

from support.reporting_data import BASE, jpeg_with_exif_gps, make_tree, new_leak

REPO = Path(__file__).resolve().parents[3]


def _env(tmp_path):
    return {
        "LEAKHUB_HOME": str(tmp_path),
        "LEAKHUB_PUBLIC_URL": "https://leakhub.test",
        "LEAKHUB_INTERNAL_URL": "http://127.0.0.1:9",     # nothing listens: "not serving"
        "KEYCLOAK_URL": "http://127.0.0.1:9/auth",
        "LEAKHUB_TESTING": "1",
        "LEAKHUB_ORG_SLUG": "acme",
    }


@pytest.fixture
def config(tmp_path):
    cfg = Config.from_env(_env(tmp_path))
    ensure_all(cfg.secrets_dir)
    h2 = tmp_path / "keycloak" / "h2"
    h2.mkdir(parents=True)
    (h2 / "keycloakdb.mv.db").write_bytes(b"H2 " + os.urandom(4000))
    set_settings(BackupSettings(keycloak_db="h2", keycloak_h2_dir=h2))
    yield cfg
    set_settings(None)


@pytest.fixture
def seeded(app, config, actor):
    """An organization with locations, leaks and two photos (files in uploads)."""
    tree = make_tree(actor)
    leaks = [new_leak(actor, tree["area"], description=f"leak {i}") for i in range(5)]
    from leakhub.photos.service import add_photos

    with app.test_request_context():
        add_photos(actor, leaks[0], [("a.jpg", jpeg_with_exif_gps()),
                                     ("b.jpg", jpeg_with_exif_gps(size=(80, 40)))])
    return {"actor": actor, "leaks": leaks}


def fingerprint(config) -> dict:
    """Every row of every table (hashed) and every upload file's SHA-256."""
    database.connect(reuse_if_open=True)
    rows = {}
    for table in sorted(database.get_tables()):
        if table in ("schema_version", "backup_record", "backup_download", "web_session",
                     "job_run", "audit_chain_head"):
            continue
        # the audit trail gains backup.created/restored events: compare what came before
        where = " WHERE action NOT LIKE 'backup.%'" if table == "audit_entry" else ""
        cur = database.execute_sql(f'SELECT * FROM "{table}"{where} ORDER BY 1')
        rows[table] = hashlib.sha256(repr(cur.fetchall()).encode()).hexdigest()
    uploads = {}
    root = Path(config.data_dir) / "uploads"
    for p in sorted(root.rglob("*")):
        if p.is_file():
            uploads[p.relative_to(root).as_posix()] = hashlib.sha256(p.read_bytes()).hexdigest()
    return {"rows": rows, "uploads": uploads}


# ---------------------------------------------------------------------------- archive

def test_identity_generated_with_secrets_and_exportable(config):
    text = read_secret(config.secrets_dir, "backup-identity")
    assert text.startswith("# created: ") and "AGE-SECRET-KEY-1" in text
    assert oct((config.secrets_dir / "backup-identity").stat().st_mode & 0o777) == "0o600"
    assert keys.export_identity(config).strip() == text.strip()
    public = keys.export_identity(config, public=True).strip()
    assert public.startswith("age1") and public in text


def test_archive_contents_and_manifest(app, config, seeded):
    created = create.create_backup(config, kind="manual")
    assert archive.parse_name(created.name)[1] == "manual"
    assert created.path.exists() and created.path.stat().st_mode & 0o777 == 0o600
    assert not [p for p in Path(config.backup_dir).iterdir() if p.name.startswith(".work")]
    # decrypt with the exported identity, as an operator would with `age -d`
    ident = x25519.Identity.from_str(
        [ln for ln in keys.export_identity(config).splitlines()
         if ln.startswith("AGE-")][0])
    import io

    import pyrage

    plain = io.BytesIO()
    with open(created.path, "rb") as fh:
        pyrage.decrypt_io(fh, plain, [ident])
    plain.seek(0)
    with tarfile.open(fileobj=plain) as tar:
        names = tar.getnames()
        manifest = json.loads(tar.extractfile("manifest.json").read())
    assert names[0] == "FORMAT" and names[-2:] == ["manifest.json", "manifest.mac"]
    assert "db/leakhub.sqlite3" in names and "keycloak/h2/keycloakdb.mv.db" in names
    assert any(n.startswith("uploads/photos/") for n in names)
    assert "secrets/session-key" in names and "secrets/backup-identity" in names
    assert not any("postgres-" in n for n in names)
    assert manifest["schema_version"] == migrations.head()
    assert manifest["kind"] == "manual" and manifest["database"] == "sqlite"
    assert [o["slug"] for o in manifest["organizations"]] == ["acme"]
    assert manifest["uploads"]["files"] == 4       # two photos, two thumbnails
    for _name, meta in manifest["files"].items():
        assert len(meta["sha256"]) == 64 and meta["size"] >= 0
    assert manifest["table_counts"]["app"]["leak"] == 5
    row = BackupRecord.get(BackupRecord.file_name == created.name)
    assert row.sha256 == hashlib.sha256(created.path.read_bytes()).hexdigest()
    assert row.summary["schema_version"] == migrations.head()


def test_round_trip_restore_brings_everything_back(app, config, seeded):
    before = fingerprint(config)
    created = create.create_backup(config, kind="manual")
    assert verify.verify_backup(config, created.name).ok
    # wipe: database content, uploads, secrets (but keep the exported key offline)
    key_file = Path(config.data_dir).parent / "offline-key.txt"
    key_file.write_text(keys.export_identity(config))
    from leakhub.leaks.models import Leak

    Leak.update(description="changed after the backup").execute()
    for p in (Path(config.data_dir) / "uploads").rglob("*"):
        if p.is_file():
            p.unlink()
    for p in Path(config.secrets_dir).iterdir():
        p.unlink()
    database.close()
    report = restore.restore_backup(config, str(created.path), identity_files=[key_file])
    assert report["organizations"] == ["acme"]
    assert "session-key" in report["secrets"]
    after = fingerprint(config)
    assert after == before
    # the restored identity is back (archives made before keep decrypting)
    assert verify.verify_backup(config, created.name).ok
    assert (Path(config.data_dir) / service.REHOST_MARKER).exists()
    # the records agree with the directory (the dump predates its own row)
    assert [r.file_name for r in inventory.records()] == [created.name]
    from leakhub.audit.models import AuditEntry

    assert AuditEntry.select().where(AuditEntry.action == "backup.restored").count() == 1


def test_restore_of_an_older_schema_migrates_forward(config, tmp_path):
    from leakhub.core.db import init_database

    init_database(config)
    database.connect(reuse_if_open=True)
    migrations.migrate(config.data_dir, target=migrations.head() - 1, log=lambda m: None)
    database.execute_sql(
        "INSERT INTO organization (slug, name, timezone, language, security_mode, "
        "oidc_client_secret, created_at) VALUES ('acme', 'ACME old', 'UTC', 'en', 1, 's', ?)",
        (utcnow(),))
    old = create.create_backup(config, kind="pre-update")
    assert old.manifest["schema_version"] == migrations.head() - 1
    # the installation is upgraded and gets new data, then the old backup is restored
    migrations.migrate(config.data_dir, log=lambda m: None)
    database.execute_sql("UPDATE organization SET name = 'renamed later'")
    database.close()
    report = restore.restore_backup(config, str(old.path))
    assert report["migrations_applied"] == [migrations.head()]
    database.connect(reuse_if_open=True)
    assert migrations.current_version() == migrations.head()
    assert database.execute_sql("SELECT name FROM organization").fetchall() == [("ACME old",)]
    assert BackupRecord.select().count() == 1      # reconciled after the migration made the table


def _tamper(path: Path, how: str) -> Path:
    data = bytearray(path.read_bytes())
    out = path.with_name(path.name.replace(".tar.age", f"-{how}.bin"))
    if how == "flip":
        data[len(data) // 2] ^= 0x01
    elif how == "truncate":
        data = data[: len(data) - 1000]
    out.write_bytes(bytes(data))
    return out


@pytest.mark.parametrize("how,message", [
    ("flip", "damaged, truncated or was tampered with"),
    ("truncate", "damaged, truncated or was tampered with"),
])
def test_damaged_archives_are_refused_before_anything_changes(app, config, seeded, how, message):
    created = create.create_backup(config)
    bad = _tamper(created.path, how)
    before = fingerprint(config)
    secrets_before = {p.name: p.read_bytes() for p in config.secrets_dir.iterdir()}
    with pytest.raises(service.BackupError, match=message):
        restore.restore_backup(config, str(bad))
    assert fingerprint(config) == before
    assert {p.name: p.read_bytes() for p in config.secrets_dir.iterdir()} == secrets_before
    assert not verify.verify_backup(config, str(bad), record_result=False).ok
    assert not [p for p in Path(config.data_dir).iterdir() if p.name.startswith(".restore")]


def test_wrong_identity_is_refused(app, config, seeded, tmp_path):
    created = create.create_backup(config)
    other = tmp_path / "other-key.txt"
    other.write_text(archive.new_identity_text())
    (config.secrets_dir / "backup-identity").write_text(other.read_text())   # key was lost
    before = fingerprint(config)
    with pytest.raises(service.BackupError, match="none of the identities opens this archive"):
        restore.restore_backup(config, str(created.path), identity_files=[other])
    assert fingerprint(config) == before


def test_newer_backup_is_refused(app, config, seeded):
    head = migrations.head()
    database.execute_sql("INSERT INTO schema_version (version, name, applied_at) VALUES (?, ?, ?)",
                         (head + 1, "from_the_future", utcnow()))
    created = create.create_backup(config)
    database.execute_sql("DELETE FROM schema_version WHERE version = ?", (head + 1,))
    before = fingerprint(config)
    with pytest.raises(service.BackupError,
                       match=rf"newer Leakhub .*schema {head + 1}.*schema {head}\."):
        restore.restore_backup(config, str(created.path))
    assert fingerprint(config) == before
    result = verify.verify_backup(config, created.name)
    assert not result.ok and "newer" in result.message


def test_forged_archive_with_only_the_public_key_is_refused(app, config, seeded, tmp_path):
    """age proves who can read, not who wrote: the manifest MAC needs the appliance key."""
    created = create.create_backup(config)
    staging = tmp_path / "unpacked"
    staging.mkdir()
    extracted = archive.extract_archive(created.path, keys.local_identities(config), staging)
    assert extracted.authentic
    forger = x25519.Identity.generate()
    entries = [archive.Entry(name, path=staging / name) for name in extracted.manifest["files"]]
    forged = Path(config.backup_dir) / archive.archive_name(utcnow(), "manual", 7)
    archive.write_archive(forged, entries, lambda files: dict(extracted.manifest, files=files),
                          recipients=keys.recipients(config), signer=forger)
    with pytest.raises(service.BackupError, match="MAC does not match"):
        restore.restore_backup(config, str(forged))
    result = verify.verify_backup(config, forged.name)
    assert not result.ok and "not written by this appliance" in result.message


def test_restore_refuses_while_serving(app, config, seeded, monkeypatch):
    from leakhub.backups import native

    created = create.create_backup(config)
    monkeypatch.setattr(native, "serving", lambda cfg: native.Serving(["web (pid 4242)"]))
    with pytest.raises(service.BackupError, match=r"Leakhub is running \(web \(pid 4242\)\)"):
        restore.restore_backup(config, str(created.path))
    with pytest.raises(service.BackupError, match="native stack only"):
        restore.restore_backup(config, str(created.path), stop_services=True)


def test_customer_recipient_can_decrypt(app, config, seeded, tmp_path):
    customer = x25519.Identity.generate()
    set_settings(BackupSettings(keycloak_db="h2",
                                keycloak_h2_dir=Path(config.data_dir).parent / "keycloak" / "h2",
                                recipients=(str(customer.to_public()),)))
    created = create.create_backup(config)
    assert str(customer.to_public()) in created.manifest["recipients"]
    key = tmp_path / "customer.txt"
    key.write_text(str(customer) + "\n")
    (config.secrets_dir / "backup-identity").write_text(archive.new_identity_text())
    with pytest.raises(service.BackupError, match="--allow-unsigned"):
        restore.restore_backup(config, str(created.path), identity_files=[key])
    restore.restore_backup(config, str(created.path), identity_files=[key], allow_unsigned=True)


def test_copy_dir_gets_the_archive(app, config, seeded, tmp_path):
    copy_dir = tmp_path / "nas"
    set_settings(BackupSettings(keycloak_db="h2", copy_dir=copy_dir,
                                keycloak_h2_dir=Path(config.data_dir).parent / "keycloak" / "h2"))
    created = create.create_backup(config)
    assert (copy_dir / created.name).read_bytes() == created.path.read_bytes()
    assert BackupRecord.get(BackupRecord.file_name == created.name).copied


def test_h2_copy_retries_while_files_change(tmp_path, monkeypatch):
    from leakhub.backups import databases

    h2 = tmp_path / "h2"
    h2.mkdir()
    f = h2 / "keycloakdb.mv.db"
    f.write_bytes(b"x" * 100)
    calls = {"n": 0}
    real_copy = databases.shutil.copy2

    def copy_and_touch(src, dst):
        real_copy(src, dst)
        calls["n"] += 1
        if calls["n"] == 1:             # Keycloak writes during the first copy
            with open(src, "ab") as fh:
                fh.write(b"y")

    monkeypatch.setattr(databases.shutil, "copy2", copy_and_touch)
    info = databases.copy_h2(h2, tmp_path / "copy", pause=0)
    assert info["attempts"] == 2 and (tmp_path / "copy" / f.name).read_bytes() == f.read_bytes()
    monkeypatch.setattr(databases, "_h2_state",
                        lambda d: {f.name: (time.monotonic_ns(), 0, 0)})
    with pytest.raises(databases.DatabaseError, match="kept changing"):
        databases.copy_h2(h2, tmp_path / "copy2", attempts=3, pause=0)


# ---------------------------------------------------------------------------- rotation

def _items(times, status=None):
    return [rotation.Item(archive.archive_name(t, "scheduled"), t, (status or {}).get(t))
            for t in times]


def test_rotation_keeps_daily_weekly_monthly():
    now = dt.datetime(2025, 6, 30, 2, 30)          # frozen clock: a Monday
    times = [now - dt.timedelta(days=d) for d in range(0, 400)]   # one backup per night
    times.append(now - dt.timedelta(hours=5))      # a manual one on the previous day
    keep, delete = rotation.plan(_items(times), keep_daily=7, keep_weekly=4, keep_monthly=12)
    kept = sorted((i.created_at for i in keep), reverse=True)
    daily = [now - dt.timedelta(days=d) for d in range(0, 7)]
    daily[1] = now - dt.timedelta(hours=5)          # newest of 29 June is the manual one
    assert kept[:7] == daily
    # weeks: newest of each of the 4 newest ISO weeks -> today (Mon) and the 3 Sundays before
    weekly = [now, dt.datetime(2025, 6, 29, 21, 30), dt.datetime(2025, 6, 22, 2, 30),
              dt.datetime(2025, 6, 15, 2, 30)]
    for w in weekly:
        assert w in kept or w.date() == dt.date(2025, 6, 29)
    months = {(t.year, t.month) for t in kept}
    assert len(months) == 12 and (2024, 7) in months and (2024, 6) not in months
    # exactly: 7 daily + 2 more weekly (15 and 22 June) + 11 more monthly (last of each month)
    assert len(keep) == 7 + 2 + 11
    assert len(keep) + len(delete) == len(times)


def test_rotation_never_deletes_the_newest_verified_and_drops_failed():
    now = dt.datetime(2025, 6, 30, 2, 30)
    times = [now - dt.timedelta(days=d) for d in range(10)]
    old_verified = now - dt.timedelta(days=9)
    status = {t: "failed" for t in times[:9]}       # the last nine nights all failed verification
    status[old_verified] = "ok"
    keep, delete = rotation.plan(_items(times, status), keep_daily=3, keep_weekly=0,
                                 keep_monthly=0)
    kept = {i.created_at for i in keep}
    assert old_verified in kept                      # the newest good backup
    assert now in kept                               # the newest of all (pending)
    assert kept == {now, old_verified}
    keep, delete = rotation.plan(_items(times, status), keep_daily=0, keep_weekly=0,
                                 keep_monthly=0)
    assert {i.created_at for i in keep} == {now, old_verified}


def test_rotate_deletes_files_from_both_directories(app, config, tmp_path):
    copy_dir = tmp_path / "nas"
    copy_dir.mkdir()
    set_settings(BackupSettings(keycloak_db="h2", copy_dir=copy_dir, keep_daily=2, keep_weekly=0,
                                keep_monthly=0))
    base = dt.datetime(2025, 1, 10, 2, 30)
    names = []
    for d in range(5):
        name = archive.archive_name(base + dt.timedelta(days=d), "scheduled")
        for folder in (Path(config.backup_dir), copy_dir):
            folder.mkdir(parents=True, exist_ok=True)
            (folder / name).write_bytes(b"x")
        names.append(name)
    inventory.reconcile(config)
    BackupRecord.update(verify_status="ok").where(BackupRecord.file_name == names[0]).execute()
    keep, delete = rotation.rotate(config)
    assert {i.name for i in keep} == {names[4], names[3], names[0]}
    assert sorted(p.name for p in Path(config.backup_dir).iterdir()
                  if p.name.endswith(".age")) == sorted({names[4], names[3], names[0]})
    assert sorted(p.name for p in copy_dir.iterdir()) == sorted({names[4], names[3], names[0]})
    assert BackupRecord.select().count() == 3


# ---------------------------------------------------------------------------- lock, jobs

def _holder_script(config) -> str:
    return (
        "import sys, time\n"
        f"sys.path.insert(0, {str(REPO / 'web')!r})\n"
        "from leakhub.core.config import Config\n"
        "from leakhub.backups import lock\n"
        f"cfg = Config.from_env({_env(Path(config.data_dir).parent)!r})\n"
        "with lock.backup_lock(cfg, what='test holder'):\n"
        "    print('locked', flush=True)\n"
        "    open(cfg.backup_dir / '.leakhub-backup-x.partial', 'w').write('half')\n"
        "    time.sleep(60)\n")


def test_lock_refuses_concurrent_runs_and_a_killed_holder_leaves_no_stale_lock(app, config):
    proc = subprocess.Popen([sys.executable, "-c", _holder_script(config)],
                            stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "locked"
        with pytest.raises(service.BackupBusy, match="test holder"):
            create.create_backup(config)
        assert not lock.lock_is_free(config)
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    assert lock.lock_is_free(config)
    created = create.create_backup(config)          # recovered; leftovers cleaned up
    assert created.path.exists()
    assert not (config.backup_dir / ".leakhub-backup-x.partial").exists()


def test_worker_jobs_are_recorded_and_interrupted_runs_reported(app, config, seeded):
    from leakhub.jobs.models import JobRun
    from leakhub.jobs.service import run_recorded

    JobRun.create(job="backup", started_at=utcnow() - dt.timedelta(hours=25), status="running")
    run = run_recorded("backup", jobs.scheduled_backup)
    assert run.status == "ok", run.message
    assert "MiB" in run.message and "1 interrupted earlier run(s) marked failed" in run.message
    assert JobRun.select().where((JobRun.job == "backup")
                                 & (JobRun.status == "failed")).count() == 1
    verify = run_recorded("backup-verify", jobs.verify_pending)
    assert verify.status == "ok" and "verified" in verify.message, verify.message
    assert BackupRecord.select().first().verify_status == "ok"
    again = run_recorded("backup-verify", jobs.verify_pending)
    assert "already verified" in again.message
    rotate = run_recorded("backup-rotate", jobs.rotate_backups)
    assert rotate.status == "ok" and rotate.message.startswith("kept 1, deleted 0")
    assert all(r.duration_ms is not None for r in JobRun.select().where(JobRun.status == "ok"))


def test_failed_verification_fails_the_job(app, config, seeded):
    from leakhub.jobs.service import run_recorded

    created = create.create_backup(config)
    data = bytearray(created.path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    created.path.write_bytes(bytes(data))
    run = run_recorded("backup-verify", jobs.verify_pending)
    assert run.status == "failed" and "verification FAILED" in run.message
    assert BackupRecord.get(BackupRecord.file_name == created.name).verify_status == "failed"


def test_backup_overdue_at_worker_start(app, config, monkeypatch):
    monkeypatch.setattr("leakhub.backups.jobs.get_config", lambda: config)
    now = dt.datetime(2025, 6, 30, 9, 0)
    assert not jobs.backup_overdue(now)                       # nothing yet: wait for 02:30
    Path(config.backup_dir).mkdir(parents=True, exist_ok=True)
    (Path(config.backup_dir) / archive.archive_name(dt.datetime(2025, 6, 29, 2, 30),
                                                    "scheduled")).write_bytes(b"x")
    assert jobs.backup_overdue(now)                           # 30 June 02:30 was missed
    assert not jobs.backup_overdue(dt.datetime(2025, 6, 30, 2, 0))


def test_status_check(app, config, seeded):
    from leakhub.ops.status import check_backups

    assert check_backups(config).ok                            # young installation
    later = utcnow() + dt.timedelta(days=3)
    assert not check_backups(config, now=later).ok
    created = create.create_backup(config)
    assert verify.verify_backup(config, created.name).ok
    assert check_backups(config).ok
    check = check_backups(config, now=later)
    assert not check.ok and "older than 36 h" in check.detail


# ---------------------------------------------------------------------------- admin page

def test_only_operator_admins_see_the_page(app, client, config, login, make_user, other_org):
    created = create.create_backup(config)
    record_id = BackupRecord.get(BackupRecord.file_name == created.name).id
    for role, code in (("manager", 403), ("editor", 403), ("viewer", 403)):
        c = login(make_user(role))
        assert c.get("/admin/backups", base_url=BASE).status_code == code
        assert c.get(f"/admin/backups/{record_id}/download", base_url=BASE).status_code == code
    from leakhub.identity.models import User

    foreign_admin = User.create(organization=other_org, sub="o-1", email="a@other.test",
                                role="admin")
    c = login(foreign_admin)
    assert c.get("/admin/backups", base_url=BASE).status_code == 404
    assert c.get(f"/admin/backups/{record_id}/download", base_url=BASE).status_code == 404
    assert c.post("/admin/backups/create", data={"csrf_token": "t"},
                  base_url=BASE).status_code == 404
    assert BackupDownload.select().count() == 0


def test_admin_lists_creates_and_downloads_with_a_log(app, client, config, login, make_user,
                                                      monkeypatch):
    monkeypatch.setattr("leakhub.backups.jobs.get_config", lambda: config)
    admin = make_user("admin")
    c = login(admin)
    page = c.get("/admin/backups", base_url=BASE)
    assert page.status_code == 200
    text = page.get_data(as_text=True)
    assert "No backups yet" in text and 'data-testid="backup-warning"' in text
    assert 'data-testid="nav-backups"' in text
    assert c.post("/admin/backups/create", data={}, base_url=BASE).status_code == 403   # CSRF
    resp = c.post("/admin/backups/create", data={"csrf_token": "t"}, base_url=BASE)
    assert resp.status_code == 303
    # The page queues the backup; the worker makes it (it holds the backup identity).
    assert BackupRecord.select().count() == 0
    assert 'data-testid="backup-requested"' in c.get("/admin/backups", base_url=BASE).get_data(
        as_text=True)
    c.post("/admin/backups/create", data={"csrf_token": "t"}, base_url=BASE)   # no second one
    assert admin.email in jobs.run_requested_backups()
    assert jobs.run_requested_backups() == "no backup requested"
    request = JobRun.get(JobRun.job == jobs.REQUEST)
    assert request.status == "ok" and admin.email in request.message
    # A request cut off by a killed worker does not block the next one.
    JobRun.update(status="running").where(JobRun.id == request.id).execute()
    jobs.run_requested_backups()
    assert JobRun.get_by_id(request.id).status == "failed"
    assert jobs.request_backup(Actor(organization=admin.organization, kind="user",
                                     user=admin))[1] is True
    JobRun.delete().where(JobRun.job == jobs.REQUEST).execute()
    row = BackupRecord.get()
    text = c.get("/admin/backups", base_url=BASE).get_data(as_text=True)
    assert row.file_name in text and "not yet" in text
    resp = c.get(f"/admin/backups/{row.id}/download", base_url=BASE,
                 headers={"User-Agent": "pytest-browser"}, environ_base={"REMOTE_ADDR": "10.1.2.3"})
    assert resp.status_code == 200
    assert resp.headers["Content-Disposition"].startswith("attachment")
    body = resp.get_data()
    assert hashlib.sha256(body).hexdigest() == row.sha256
    log = BackupDownload.get()
    assert (log.user_id, log.file_name, log.ip, log.user_agent) == \
        (admin.id, row.file_name, "10.1.2.3", "pytest-browser")
    from leakhub.audit.models import AuditEntry

    entry = AuditEntry.get(AuditEntry.action == "backup.downloaded")
    assert entry.actor_id == admin.id and row.file_name in entry.changes
    text = c.get("/admin/backups", base_url=BASE).get_data(as_text=True)
    assert 'data-testid="download-row"' in text and "10.1.2.3" in text
    # verified now: the banner goes away
    assert verify.verify_backup(config, row.file_name).ok
    text = c.get("/admin/backups", base_url=BASE).get_data(as_text=True)
    assert 'data-testid="backup-warning"' not in text and "verified" in text


def test_external_scheduler_offers_no_backup_request(app, client, config, login, make_user):
    """LEAKHUB_BACKUP_SCHEDULER=external (Helm): the worker serves no requests, so the page shows
    how to start the outside job instead of the button, and a POST queues nothing."""
    set_settings(BackupSettings(scheduler="external"))    # the config fixture resets it
    c = login(make_user("admin"))
    text = c.get("/admin/backups", base_url=BASE).get_data(as_text=True)
    assert 'data-testid="backup-create"' not in text
    assert 'data-testid="backup-external"' in text and "cronjob/" in text
    resp = c.post("/admin/backups/create", data={"csrf_token": "t"}, base_url=BASE)
    assert resp.status_code == 303
    assert JobRun.select().where(JobRun.job == jobs.REQUEST).count() == 0
    text = c.get("/admin/backups", base_url=BASE).get_data(as_text=True)
    assert "LEAKHUB_BACKUP_SCHEDULER=external" in text and "Nothing was requested" in text


def test_banner_only_for_operator_admins(app, client, config, login, make_user):
    c = login(make_user("manager"))
    text = c.get("/", base_url=BASE).get_data(as_text=True)
    assert 'data-testid="backup-warning"' not in text and "nav-backups" not in text
    c = login(make_user("admin"))
    text = c.get("/", base_url=BASE).get_data(as_text=True)
    assert 'data-testid="backup-warning"' in text


# ---------------------------------------------------------------------------- leakctl

def _leakctl(config, *args, preexec_fn=None, env_extra=None):
    env = dict(os.environ)
    env.update(_env(Path(config.data_dir).parent))
    env.update({"LEAKHUB_BACKUP_KEYCLOAK_DB": "h2", "LEAKHUB_LOG_LEVEL": "WARNING"})
    env.update(env_extra or {})
    return subprocess.run([str(REPO / ".venv" / "bin" / "leakctl"), *args], env=env,
                          capture_output=True, text=True, timeout=300, preexec_fn=preexec_fn)


def test_leakctl_backup_commands(app, config, seeded, tmp_path):
    database.close()
    out = _leakctl(config, "backup", "create", "--json")
    assert out.returncode == 0, out.stderr
    made = json.loads(out.stdout)
    listed = _leakctl(config, "backup", "list", "--json")
    assert [b["file"] for b in json.loads(listed.stdout)] == [made["file"]]
    verified = _leakctl(config, "backup", "verify")
    assert verified.returncode == 0 and "verified" in verified.stdout, verified.stderr
    key = _leakctl(config, "backup", "export-key")
    assert "AGE-SECRET-KEY-1" in key.stdout
    refused = _leakctl(config, "backup", "restore", made["file"])      # no --yes, no tty
    assert refused.returncode != 0 and "cancelled" in refused.stderr + refused.stdout
    pruned = _leakctl(config, "backup", "prune", "--dry-run")
    assert pruned.returncode == 0 and f"keep    {made['file']}" in pruned.stdout


def test_disk_full_gives_a_clear_error_and_keeps_old_backups(app, config, seeded):
    import resource

    database.close()
    first = _leakctl(config, "backup", "create", "--json")
    assert first.returncode == 0, first.stderr
    old = json.loads(first.stdout)
    old_bytes = (Path(config.backup_dir) / old["file"]).read_bytes()
    (Path(config.data_dir) / "uploads" / "big.bin").write_bytes(os.urandom(3 * 2**20))

    def limit():
        resource.setrlimit(resource.RLIMIT_FSIZE, (2 * 2**20, 2 * 2**20))

    full = _leakctl(config, "backup", "create", preexec_fn=limit)
    assert full.returncode == 1
    assert "not enough space for the backup" in full.stderr and "Traceback" not in full.stderr
    names = sorted(p.name for p in Path(config.backup_dir).iterdir() if not p.name == ".lock")
    assert names == [old["file"]]
    assert (Path(config.backup_dir) / old["file"]).read_bytes() == old_bytes
