"""Leak register against the real stack (PostgreSQL, Keycloak sign-in, Caddy over HTTPS).

The first tests seed through leakctl. The others work like a browser without JavaScript: a
signed-in `requests` session opens a page, reads its form (hidden fields such as csrf_token and
version, the selected options, the textareas), changes some values and submits it. Each test
creates its own organization; the locations and surveys are made through their forms too.
"""
from __future__ import annotations

import http.client
import io
import json
import re
import select
import socket
import ssl
from urllib.parse import urlsplit

import pytest
import requests
from openpyxl import load_workbook
from PIL import Image

from support.forms import Browser, location_of, make_world, record_leak
from support.kc import new_org, sign_in
from support.reporting_data import pdf_text


def test_demo_seed_on_postgres_keeps_the_audit_chain(stack):
    slug, _, _ = new_org(stack, prefix="seed")
    out = stack.leakctl("demo", "seed", "--org", slug, "--leaks", "3000", "--sites", "2",
                        "--seed", "5", "--json", timeout=900)
    result = json.loads(out.stdout)
    assert result["leaks"] == 3000 and result["sites"] == 2
    assert result["audit_entries"] == 3000 + result["status_changes"]
    again = json.loads(stack.leakctl("demo", "seed", "--org", slug, "--leaks", "5",
                                     "--sites", "1", "--json").stdout)
    assert again["leaks"] == 5
    report = json.loads(stack.leakctl("audit", "verify", "--org", slug, "--json").stdout)
    reports = report if isinstance(report, list) else [report]
    assert all(r["ok"] for r in reports), reports
    # The dashboard's per-day counts, kept by the triggers during the bulk seed, match.
    counts = stack.leakctl("dashboard", "check", "--org", slug, "--json")
    assert json.loads(counts.stdout) == {slug: []}


def test_demo_seed_errors_are_one_line(stack):
    out = stack.leakctl("demo", "seed", "--org", "does-not-exist", "--leaks", "1", check=False)
    assert out.returncode != 0
    lines = [line for line in out.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "does not exist" in lines[0], out.stderr
    out = stack.leakctl("demo", "seed", "--org", "x", "--leaks", "-5", check=False)
    assert out.returncode != 0 and "--leaks" in out.stderr


@pytest.fixture
def app(stack):
    """An admin of a fresh organization, signed in through Keycloak."""
    slug, email, otp = new_org(stack, prefix="reg")
    http = stack.requests_session()
    resp, _ = sign_in(http, stack, slug, email, otp)
    assert resp.url == f"{stack.public_url}/" and f"Org {slug}" in resp.text, resp.url
    return Browser(stack, http)


def leak_count(app: Browser, query: str = "") -> int:
    page = app.page("/leaks" + query)
    m = re.search(r'data-testid="leak-count">(\d+) leaks?', page)
    assert m, page[:3000]
    return int(m.group(1))


def row_tags(page: str) -> list[str]:
    return re.findall(r'data-testid="leak-row-([^"]+)"', page)


def jpeg_with_exif_gps(size=(64, 48)) -> bytes:
    img = Image.new("RGB", size, (200, 30, 30))
    exif = Image.Exif()
    exif[0x010F] = "SecretCam"      # Make
    exif[0x0110] = "Model X"        # Model
    exif[0x0112] = 6                # orientation: rotate 90° to display
    gps = exif.get_ifd(0x8825)
    gps[1], gps[2], gps[3], gps[4] = "N", (52.0, 31.0, 12.0), "E", (13.0, 24.0, 36.0)
    out = io.BytesIO()
    img.save(out, "JPEG", exif=exif, comment=b"secret comment")
    return out.getvalue()


def photo_ids(page: str) -> list[int]:
    return sorted({int(i) for i in re.findall(r'href="/photos/(\d+)"', page)})


# --------------------------------------------------------------------------- tests

def test_create_edit_list_and_filter_through_the_app(app):
    w = make_world(app)
    first = record_leak(app, w["area"], tag="4711", survey=w["survey"])
    page = app.page(f"/leaks/{first}")
    assert 'data-testid="leak-tag">Leak 4711' in page and "12.5 l/min" in page
    # 12.5 l/min × 6.4 kW/(m³/min) × 8000 h = 640 kWh (the built-in energy settings)
    assert re.search(r'data-testid="kwh">640 kWh', page), page
    assert "Werk Berlin" in page and "Wartungseinheit zischt" in page
    second = record_leak(app, w["site2"], component="valve", rate="3",
                         description="Ventil undicht")
    assert 'data-testid="leak-tag">Leak 4712' in app.page(f"/leaks/{second}")  # next number

    # A form error re-renders with 422 and keeps the input; nothing is stored.
    bad = app.form("/leaks/new").set("location", w["area"]).set("rate_lpm", "zwölf")
    resp = app.submit(bad.set("found_at", "2024-03-05T10:15"))
    assert resp.status_code == 422 and 'data-testid="error-rate_lpm"' in resp.text
    assert 'value="zwölf"' in resp.text

    # Edit: the form comes filled in with the stored values and the version.
    form = app.form(f"/leaks/{first}/edit")
    assert form.get("version") == "1" and form.get("rate_lpm") == "12.5"
    assert form.get("description") == "Wartungseinheit zischt"
    assert form.get("location") == str(w["area"])
    resp = app.submit(form.set("rate_lpm", "25")
                      .set("description", "Wartungseinheit, Öler undicht"))
    assert location_of(resp) == f"/leaks/{first}"
    page = app.page(f"/leaks/{first}")
    assert re.search(r'class="kpi">25 l/min', page), page and "Öler undicht" in page
    assert re.search(r'data-testid="kwh">1,280 kWh', page), page

    # List and filters on PostgreSQL.
    assert leak_count(app) == 2
    assert leak_count(app, f"?location={w['site']}") == 1
    assert row_tags(app.page(f"/leaks?location={w['site2']}")) == ["4712"]
    assert leak_count(app, "?component=valve") == 1
    assert leak_count(app, "?q=öler") == 1                      # case-insensitive search
    assert leak_count(app, f"?survey={w['survey']}&status=open") == 1
    assert leak_count(app, "?status=repaired") == 0
    assert row_tags(app.page("/leaks?sort=-rate")) == ["4711", "4712"]
    assert row_tags(app.page("/leaks?sort=rate")) == ["4712", "4711"]


def test_photo_upload_strips_exif_and_refuses_a_renamed_non_image(app):
    w = make_world(app)
    leak = record_leak(app, w["area"])
    raw = jpeg_with_exif_gps()
    assert b"SecretCam" in raw and Image.open(io.BytesIO(raw)).getexif()
    form = app.form(f"/leaks/{leak}", action=f"/leaks/{leak}/photos")
    resp = app.submit(form, files=[("photos", ("Kupplung.jpg", raw, "image/jpeg"))])
    assert location_of(resp).startswith(f"/leaks/{leak}"), resp.headers["Location"]
    page = app.page(f"/leaks/{leak}")
    (photo,) = photo_ids(page)
    served = app.get(f"/photos/{photo}")
    assert served.status_code == 200 and served.headers["Content-Type"] == "image/jpeg"
    assert "private" in served.headers["Cache-Control"]
    # The photo's own CSP survives Caddy (which sets its generic one only as a default).
    assert served.headers["Content-Security-Policy"] == "default-src 'none'; sandbox"
    for secret in (b"SecretCam", b"Model X", b"secret comment", b"Exif"):
        assert secret not in served.content
    img = Image.open(io.BytesIO(served.content))
    assert img.format == "JPEG" and not img.getexif() and "comment" not in img.info
    assert img.size == (48, 64)       # orientation applied to the pixels, then dropped
    thumb = app.get(f"/photos/{photo}/thumb")
    assert thumb.status_code == 200 and b"SecretCam" not in thumb.content

    # A PDF renamed .jpg (with an image content type) is refused, naming the file; a good
    # photo sent with it is not stored either (all or nothing).
    form = app.form(f"/leaks/{leak}", action=f"/leaks/{leak}/photos")
    resp = app.submit(form, files=[("photos", ("ok.jpg", raw, "image/jpeg")),
                                   ("photos", ("invoice.jpg", b"%PDF-1.4\n% not an image\n",
                                               "image/jpeg"))])
    assert resp.status_code == 422 and "invoice.jpg" in resp.text
    assert photo_ids(app.page(f"/leaks/{leak}")) == [photo]


class _Replay:
    """Bytes read from a socket, for http.client.HTTPResponse to parse."""

    def __init__(self, data: bytes):
        self.data = data

    def makefile(self, *args, **kwargs):
        return io.BytesIO(self.data)


def post_like_a_browser(stack, prepared, chunk: int = 256 * 1024):
    """Send a prepared request over its own TLS connection, watching for an early answer while
    the body goes out (as browsers do): a server that refuses a large body answers and closes
    before it is all sent, and a plain client then fails on a broken pipe instead of reading
    the answer. Returns (status, body text, bytes of the body sent)."""
    url = urlsplit(prepared.url)
    ctx = ssl.create_default_context(cafile=str(stack.ca_cert))
    raw = socket.create_connection(("127.0.0.1", url.port), timeout=60)
    received = b""
    with ctx.wrap_socket(raw, server_hostname=url.hostname) as sock:
        headers = {k: v for k, v in prepared.headers.items() if k.lower() != "connection"}
        head = f"POST {url.path} HTTP/1.1\r\nHost: {url.netloc}\r\nConnection: close\r\n"
        head += "".join(f"{k}: {v}\r\n" for k, v in headers.items()) + "\r\n"
        sock.sendall(head.encode("latin-1"))
        body, sent = memoryview(prepared.body), 0
        while sent < len(body) and not received:
            if sock.pending() or select.select([sock], [], [], 0)[0]:
                sock.setblocking(False)
                try:        # application data, or only TLS records such as session tickets
                    received = sock.recv(65536)
                except ssl.SSLWantReadError:
                    pass
                finally:
                    sock.settimeout(60)
                if received:
                    break                                   # the server has answered
            try:
                sock.sendall(body[sent:sent + chunk])
            except (BrokenPipeError, ConnectionResetError, ssl.SSLError):
                break
            sent += chunk
        while True:         # Connection: close -> the answer ends when the server closes
            try:
                data = sock.recv(65536)
            except (ConnectionResetError, ssl.SSLError):
                break
            if not data:
                break
            received += data
    resp = http.client.HTTPResponse(_Replay(received))
    resp.begin()
    return resp.status, resp.read().decode("utf-8", "replace"), min(sent, len(body))


def test_oversized_upload_gets_413(app, stack):
    w = make_world(app)
    leak = record_leak(app, w["area"])
    # What the stack gives the web (scripts/stack.py sets nothing: the default, 20 MB).
    limit = int(stack.state["env"].get("LEAKHUB_MAX_UPLOAD_MB") or 20) * 1024 * 1024
    form = app.form(f"/leaks/{leak}", action=f"/leaks/{leak}/photos")
    big = b"\xff\xd8\xff\xe0" + b"\0" * (limit + 1024)
    prepared = app.http.prepare_request(requests.Request(
        "POST", form.url, data=form.fields, files=[("photos", ("big.jpg", big, "image/jpeg"))],
        headers={"Origin": stack.public_url}))
    assert int(prepared.headers["Content-Length"]) > limit
    status, body, _sent = post_like_a_browser(stack, prepared)
    # Caddy sets no body limit (caddy/Caddyfile): the app (MAX_CONTENT_LENGTH) answers with its
    # own error page, through Caddy.
    assert status == 413, (status, body[:500])
    assert "Too large" in body and "<!doctype html>" in body.lower()
    assert "big.jpg" not in body        # the request limit, not the per-file check (15 MB)
    assert photo_ids(app.page(f"/leaks/{leak}")) == []
    # Just under the limit (two files below the per-file limit) is not refused for its size:
    # the files are looked at, and refused as broken images (422, naming the file).
    half = big[:limit // 2 - 64 * 1024]
    prepared = app.http.prepare_request(requests.Request(
        "POST", form.url, data=form.fields, files=[("photos", ("a.jpg", half, "image/jpeg")),
                                                   ("photos", ("b.jpg", half, "image/jpeg"))],
        headers={"Origin": stack.public_url}))
    assert int(prepared.headers["Content-Length"]) < limit
    status, body, _sent = post_like_a_browser(stack, prepared)
    assert status == 422 and "a.jpg" in body, (status, body[:500])
    # The session is still fine and a normal photo goes through afterwards.
    form = app.form(f"/leaks/{leak}", action=f"/leaks/{leak}/photos")
    app.submit(form, files=[("photos", ("ok.jpg", jpeg_with_exif_gps(), "image/jpeg"))])
    assert len(photo_ids(app.page(f"/leaks/{leak}"))) == 1


GERMAN = (
    "Leckage-Nr;Standort;Datum;Leckrate l/min;Druck;Bauteil;Bemerkung;Status\r\n"
    "101;BER/H1/A1;05.03.2024;12,5;6,5;Kupplung;Kupplung undicht – Größe ½\";offen\r\n"
    "102;BER/H1/A1;06.03.2024;1.234,75;7;Schlauch;Schlauch rissig;repariert\r\n"
    "103;Werk München;07.03.2024;3;;Wartungseinheit;Öler tropft;Offen\r\n"
)


def import_file(app: Browser, data: bytes, name: str):
    """Upload → review (suggested mapping, preview) → commit, as the import pages do.
    Returns (preview page, commit response)."""
    form = app.form("/leaks/import")
    resp = app.submit(form, files={"file": (name, data, "text/csv")})
    review_url = location_of(resp)
    assert "/leaks/import/" in review_url
    preview = app.get(review_url)
    assert preview.status_code == 200, preview.text[:2000]
    form = app.form(preview).set("action", "commit")
    return preview.text, app.submit(form)


def test_import_german_excel_csv_all_or_nothing_and_idempotent(app):
    w = make_world(app)
    data = GERMAN.encode("cp1252")
    with pytest.raises(UnicodeDecodeError):
        data.decode("utf-8")

    bad = GERMAN.replace("1.234,75", "viel").encode("cp1252")    # row 3 (the 2nd data row)
    preview, resp = import_file(app, bad, "begehung-fehler.csv")
    assert "Leckrate l/min" in preview and "cp1252" in preview
    assert resp.status_code == 422, resp.status_code
    errors = re.search(r'data-testid="import-errors">(.*?)</ul>', resp.text, re.S).group(1)
    assert "Row 3" in errors and "Leckrate l/min" in errors, errors
    assert "Row 2" not in errors and "Row 4" not in errors
    assert leak_count(app) == 0

    preview, resp = import_file(app, data, "begehung.csv")
    assert "3 rows: 3 new, 0 changed, 0 unchanged" in preview
    assert location_of(resp) == "/leaks"
    page = app.page("/leaks")
    assert "3 new, 0 updated, 0 unchanged" in page
    assert sorted(row_tags(page)) == ["101", "102", "103"]
    # Decimal comma and thousands point, dd.mm.yyyy, cp1252 text, locations by path and name.
    assert leak_count(app, f"?location={w['site2']}") == 1
    assert leak_count(app, "?q=Größe") == 1 and leak_count(app, "?status=repaired") == 1
    xlsx = load_workbook(io.BytesIO(app.get("/leaks/export.xlsx?q=Schlauch").content)).active
    header, row = list(xlsx.iter_rows(values_only=True))[:2]
    assert dict(zip(header, row, strict=False))["Leak rate l/min"] == 1234.75

    for _ in range(2):      # importing the same file again changes nothing
        preview, resp = import_file(app, data, "begehung.csv")
        assert "3 rows: 0 new, 0 changed, 3 unchanged" in preview
        assert location_of(resp) == "/leaks"
    assert leak_count(app) == 3


def test_concurrent_edit_gives_a_conflict_and_keeps_the_first_save(app):
    w = make_world(app)
    leak = record_leak(app, w["area"], description="original")
    form_a = app.form(f"/leaks/{leak}/edit")      # two tabs (or two people) open the form
    form_b = app.form(f"/leaks/{leak}/edit")
    assert form_a.get("version") == form_b.get("version") == "1"
    assert location_of(app.submit(form_a.set("description", "from A"))) == f"/leaks/{leak}"
    resp = app.submit(form_b.set("description", "from B").set("rate_lpm", "99"))
    assert resp.status_code == 409
    assert 'data-testid="conflict"' in resp.text
    row = re.search(r'data-testid="conflict-description">(.*?)</tr>', resp.text, re.S).group(1)
    assert "from B" in row and "from A" in row      # yours and the saved version
    assert 'data-testid="conflict-rate_lpm"' in resp.text
    # Nothing of B was saved.
    current = app.form(f"/leaks/{leak}/edit")
    assert current.get("version") == "2" and current.get("description") == "from A"
    assert current.get("rate_lpm") == "12.5"
    # The conflict page's form carries the new version: saving it is a conscious overwrite.
    again = app.form(resp)
    assert again.get("version") == "2" and again.get("description") == "from B"
    assert location_of(app.submit(again)) == f"/leaks/{leak}"
    assert app.form(f"/leaks/{leak}/edit").get("description") == "from B"


def test_xlsx_export_of_a_filter_holds_numbers(app):
    w = make_world(app)
    record_leak(app, w["area"], tag="1", rate="12,5", component="coupling")
    record_leak(app, w["site2"], tag="2", rate="3")
    # The list's XLSX link carries its filter.
    page = app.page(f"/leaks?location={w['site']}")
    href = re.search(r'href="([^"]+)" data-testid="export-xlsx"', page).group(1)
    resp = app.get(href.replace("&amp;", "&"))
    assert resp.status_code == 200
    assert resp.headers["Content-Type"].startswith("application/vnd.openxmlformats")
    rows = list(load_workbook(io.BytesIO(resp.content)).active.iter_rows(values_only=True))
    header, data = rows[0], [dict(zip(rows[0], r, strict=False)) for r in rows[1:]]
    assert [r["Tag number"] for r in data] == ["1"], data
    row = data[0]
    for col in ("Leak rate l/min", "Pressure bar", "Energy kWh per year", "Cost per year",
                "CO2 kg per year", "Priority"):
        assert isinstance(row[col], (int, float)) and not isinstance(row[col], bool), (col, row)
    assert (row["Leak rate l/min"], row["Pressure bar"], row["Energy kWh per year"]) == (
        12.5, 6.5, 640)
    assert row["Cost per year"] == pytest.approx(121.6)
    assert row["Location path"] == "BER/H1/A1"
    assert "Leak rate l/min" in header


def test_survey_pdf_renders_with_the_survey_leak_numbers(app):
    w = make_world(app)
    record_leak(app, w["area"], tag="4711", survey=w["survey"])
    record_leak(app, w["hall"], tag="4712", survey=w["survey"], rate="35,5")
    record_leak(app, w["site2"], tag="9999")                  # not in the survey
    page = app.page(f"/surveys/{w['survey']}")
    assert f"/surveys/{w['survey']}/report.pdf" in page
    resp = app.get(f"/surveys/{w['survey']}/report.pdf")
    assert resp.status_code == 200 and resp.headers["Content-Type"] == "application/pdf"
    assert resp.content.startswith(b"%PDF")
    text = pdf_text(resp.content)
    assert b"(4711)" in text and b"(4712)" in text and b"9999" not in text
    assert b"Page 1 of" in text


def activity_rows(page: str) -> list[list[tuple[str, str, str]]]:
    """The leak page's Activity section: per item (newest first) its (field, old, new) rows."""
    section = re.search(r'data-testid="activity">(.*?)</section>', page, re.S)
    assert section, "no Activity section on the leak page"
    items = re.split(r'data-testid="activity-item"', section.group(1))[1:]
    return [re.findall(r'<tr><td>([^<]*)</td>\s*<td class="old">([^<]*)</td>\s*'
                       r'<td class="new">([^<]*)</td></tr>', item) for item in items]


def test_activity_of_an_edit_lists_the_changed_field_with_old_and_new(app):
    w = make_world(app)
    leak = record_leak(app, w["area"], description="vorher")
    # Fields are shown by their labels (issue 14: readable, translated Activity).
    assert [f for f, _, _ in activity_rows(app.page(f"/leaks/{leak}"))[0]].count("Leak rate") == 1
    form = app.form(f"/leaks/{leak}/edit").set("description", "nachher")
    assert location_of(app.submit(form)) == f"/leaks/{leak}"
    newest = activity_rows(app.page(f"/leaks/{leak}"))[0]
    assert ("Description", "vorher", "nachher") in newest, newest


def test_activity_of_an_edit_lists_only_what_changed(app):
    w = make_world(app)
    leak = record_leak(app, w["area"], description="vorher")
    form = app.form(f"/leaks/{leak}/edit").set("description", "nachher")
    assert location_of(app.submit(form)) == f"/leaks/{leak}"
    newest = activity_rows(app.page(f"/leaks/{leak}"))[0]
    assert newest == [("Description", "vorher", "nachher")], newest
