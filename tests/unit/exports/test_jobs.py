"""Large exports as worker jobs (issue 19): queued by the web request, written by the worker
(temporary name, then renamed), downloadable only by the user who asked, deleted after the
retention."""
import csv
import datetime as dt
import io

import pytest

from leakhub.core import crypto, keys
from leakhub.exports import jobs
from leakhub.exports.models import ExportJob

from support.reporting_data import BASE, make_tree, new_leak


@pytest.fixture
def five_leaks(actor, monkeypatch):
    tree = make_tree(actor)
    for i in range(5):
        new_leak(actor, tree["area"], found_at=dt.datetime(2024, 3, 1 + i, 9),
                 description=f"Leck {i}")
    monkeypatch.setattr(jobs, "DIRECT_MAX_ROWS", 3)
    return tree


def test_small_export_stays_direct(actor, five_leaks, login):
    c = login(actor.user)
    resp = c.get("/leaks/export.csv?status=open&q=Leck%201", base_url=BASE)
    assert resp.status_code == 200 and resp.mimetype == "text/csv"
    assert ExportJob.select().count() == 0


@pytest.mark.parametrize("fmt", ["csv", "xlsx"])
def test_large_export_runs_as_a_job_for_its_user_only(actor, five_leaks, login, make_actor,
                                                      other_org, app, fmt):
    c = login(actor.user)
    resp = c.get(f"/leaks/export.{fmt}", base_url=BASE)
    assert resp.status_code == 303
    page = resp.headers["Location"]
    job = ExportJob.get()
    assert job.status == "queued" and job.rows_total == 5 and page.endswith(job.uid)
    html = c.get(page, base_url=BASE).get_data(as_text=True)
    assert 'data-status="queued"' in html and 'http-equiv="refresh"' in html
    assert c.get(f"{page}/download", base_url=BASE).status_code == 404  # not written yet

    assert jobs.run_pending().startswith("exports written: 1")
    job = ExportJob.get()
    assert job.status == "done" and job.rows_done == 5 and job.size > 0
    folder = jobs.exports_dir()
    assert [p.name for p in folder.iterdir()] == [job.file_name]  # no .part left
    html = c.get(page, base_url=BASE).get_data(as_text=True)
    assert 'data-testid="export-download"' in html and "refresh" not in html
    resp = c.get(f"{page}/download", base_url=BASE)
    assert resp.status_code == 200 and resp.headers["Cache-Control"] == "private, no-store"
    if fmt == "csv":
        rows = list(csv.reader(io.StringIO(resp.get_data().decode("utf-8-sig"))))
        assert len(rows) == 6
    else:
        assert resp.get_data()[:2] == b"PK"

    # Another member of the organization, and an admin of another one: as if it did not exist.
    for stranger in (make_actor("admin"), make_actor("admin", organization=other_org)):
        with app.test_client() as other:
            login(stranger.user, other)
            assert other.get(page, base_url=BASE).status_code == 404
            assert other.get(f"{page}/download", base_url=BASE).status_code == 404

    # After the retention the file and the row are gone.
    jobs.clean_up(now=job.expires_at + dt.timedelta(seconds=1))
    assert ExportJob.select().count() == 0 and list(folder.iterdir()) == []
    assert c.get(page, base_url=BASE).status_code == 404


def test_the_worker_exports_as_the_user_at_run_time(actor, five_leaks, login, make_actor):
    viewer = make_actor("viewer")
    c = login(viewer.user)
    assert c.get("/leaks/export.csv", base_url=BASE).status_code == 303
    viewer.user.enabled = False
    viewer.user.save()
    jobs.run_pending()
    job = ExportJob.get()
    assert job.status == "failed" and not job.file_name
    assert list(jobs.exports_dir().iterdir()) == []


def test_job_files_are_encrypted_at_rest_and_decrypted_on_download(actor, five_leaks, login):
    """The worker's file on disk is sealed (core.crypto, as uploads are): neither the CSV's
    text nor its header is in the bytes; the download is the plaintext."""
    c = login(actor.user)
    page = c.get("/leaks/export.csv", base_url=BASE).headers["Location"]
    jobs.run_pending()
    job = ExportJob.get()
    on_disk = (jobs.exports_dir() / job.file_name).read_bytes()
    assert crypto.is_sealed(on_disk)
    for plain in (b"Tag number", b"Leck 1", "Leck 1".encode("utf-16-le")):
        assert plain not in on_disk
    resp = c.get(f"{page}/download", base_url=BASE)
    assert resp.status_code == 200
    text = resp.get_data().decode("utf-8-sig")
    assert text.startswith("Tag number,") and "Leck 1" in text
    assert job.size == len(resp.get_data()) == int(resp.headers["Content-Length"])
    assert resp.headers["Content-Disposition"].startswith("attachment; filename=")
    assert resp.headers["Cache-Control"] == "private, no-store"
    # Copied under another job's name it does not open (the name is bound to the bytes).
    with pytest.raises(crypto.DataKeyError):
        crypto.open_for(jobs.get_config(), on_disk, "0" * 32 + ".csv", "copy")
    assert [p.name for p in jobs.exports_dir().iterdir()] == [job.file_name]


def test_key_rotation_reencrypts_export_files(actor, five_leaks, login, config):
    """`leakctl keys rotate` covers the export folder: after the old data key is dropped the
    file still downloads."""
    c = login(actor.user)
    page = c.get("/leaks/export.xlsx", base_url=BASE).headers["Location"]
    jobs.run_pending()
    path = jobs.exports_dir() / ExportJob.get().file_name
    before = crypto.key_id_of(path.read_bytes())
    outcome = keys.rotate(config)
    assert before in outcome.dropped and crypto.key_id_of(path.read_bytes()) == outcome.active
    resp = c.get(f"{page}/download", base_url=BASE)
    assert resp.status_code == 200 and resp.get_data()[:2] == b"PK"


def test_download_name_with_umlauts_has_an_ascii_fallback():
    from leakhub.exports.views import _file_name

    assert _file_name("leaks-acme-2026-12-03.csv") == {"filename": "leaks-acme-2026-12-03.csv"}
    names = _file_name("leaks-werk-süd-2026-12-03.csv")
    assert names["filename"] == "leaks-werk-sud-2026-12-03.csv"
    assert names["filename*"] == "UTF-8''leaks-werk-s%C3%BCd-2026-12-03.csv"


def test_progress_updates_while_others_write(actor, five_leaks, login, monkeypatch):
    """A leak recorded by someone else while the worker exports: on SQLite the export's open
    read keeps its connection on an older snapshot, which can never take the write lock
    again (SQLITE_BUSY_SNAPSHOT) — progress updates waited 30 s and failed the job (seen in
    bench_load at 100,000 leaks). The job finishes, with its progress and every row."""
    import threading

    from leakhub.core.db import database
    from leakhub.exports import service
    from leakhub.leaks.models import Leak

    monkeypatch.setattr(service, "BATCH", 2)
    monkeypatch.setattr(jobs, "PROGRESS_EVERY", 2)
    monkeypatch.setattr("leakhub.core.db.SQLITE_WRITE_LOCK_TIMEOUT_S", 2)
    seen = []

    def other_writer():
        try:
            database.connect(reuse_if_open=True)
            Leak.update(description="changed meanwhile").where(
                Leak.description == "Leck 4").execute()
        finally:
            database.close()

    real_rows = service.rows

    def rows_with_a_write_between(*args, **kwargs):
        for n, row in enumerate(real_rows(*args, **kwargs)):
            if n == 1:      # the export's read is open: another connection commits
                t = threading.Thread(target=other_writer)
                t.start()
                t.join()
            yield row

    real_set = jobs._set

    def recording_set(job, **values):
        seen.append(values.get("rows_done"))
        real_set(job, **values)

    monkeypatch.setattr(service, "rows", rows_with_a_write_between)
    monkeypatch.setattr(jobs, "_set", recording_set)
    c = login(actor.user)
    assert c.get("/leaks/export.csv", base_url=BASE).status_code == 303
    assert jobs.run_pending().startswith("exports written: 1")
    job = ExportJob.get()
    assert job.status == "done" and job.rows_done == 5
    assert 2 in seen and 4 in seen      # progress was recorded on the way
