"""Encryption at rest on the real stack (docs/encryption.md): a photo uploaded through Caddy
and the web is ciphertext on disk and comes back as the plaintext; the application's secrets
are ciphertext; without the data key the web, the worker and leakctl refuse to start with one
clear line; `leakctl status` reports the encryption and where each data directory lives."""
from __future__ import annotations

import hashlib
import io
import json
import os
import subprocess

import pytest
from PIL import Image

from support.forms import Browser, make_world, record_leak
from support.kc import new_org, sign_in
from support.stackctl import VENV_BIN

pytestmark = pytest.mark.integration

ARMOR = "leakhub-encrypted:v1:"
MAGIC = b"\x00LHENC1\n"


def jpeg() -> bytes:
    """A different image each run (the stack is reused: same bytes, same file name)."""
    img = Image.new("RGB", (200, 120), tuple(os.urandom(3)))
    img.putdata([tuple(os.urandom(3)) for _ in range(200 * 120)])
    out = io.BytesIO()
    img.save(out, "JPEG", quality=90)
    return out.getvalue()


def test_photo_is_ciphertext_on_disk_and_plaintext_through_the_app(stack):
    slug, email, otp = new_org(stack, prefix="enc")
    http = stack.requests_session()
    resp, _ = sign_in(http, stack, slug, email, otp)
    assert resp.status_code == 200
    app = Browser(stack, http)
    w = make_world(app)
    leak = record_leak(app, w["area"])
    form = app.form(f"/leaks/{leak}", action=f"/leaks/{leak}/photos")
    app.submit(form, files=[("photos", ("leak.jpg", jpeg(), "image/jpeg"))])
    page = app.page(f"/leaks/{leak}")
    photo = int(page.split('href="/photos/')[1].split('"')[0])
    served = app.get(f"/photos/{photo}")
    assert served.status_code == 200 and served.content[:3] == b"\xff\xd8\xff"
    digest = hashlib.sha256(served.content).hexdigest()
    (on_disk,) = (stack.home / "data" / "uploads" / "photos").glob(f"*/{digest[:2]}/{digest}")
    raw = on_disk.read_bytes()
    assert raw.startswith(MAGIC) and served.content not in raw
    assert hashlib.sha256(raw).hexdigest() != digest
    for name in ("session-key", "keycloak-service-client-secret", "backup-identity"):
        assert (stack.home / "secrets" / name).read_text().startswith(ARMOR), name

    # Rotation while the web serves: the running web picks up the new key ring.
    before = json.loads(stack.leakctl("keys", "status", "--json").stdout)
    out = stack.leakctl("keys", "rotate", "--yes").stdout
    after = json.loads(stack.leakctl("keys", "status", "--json").stdout)
    assert after["active"] != before["active"] and f"dropped {before['active']}" in out
    assert set(after["files"]) == {after["active"]} and after["retiring"] == []
    assert on_disk.read_bytes() != raw
    again = app.get(f"/photos/{photo}")
    assert again.status_code == 200 and again.content == served.content
    assert app.get(f"/photos/{photo}/thumb").status_code == 200     # still signed in


def _env_without_key(stack, tmp_path):
    return dict(stack.env, LEAKHUB_DATA_KEY_FILE=str(tmp_path / "absent" / "data-key"))


def test_without_the_key_web_worker_and_leakctl_refuse_to_start(stack, tmp_path):
    env = _env_without_key(stack, tmp_path)
    web = subprocess.run([str(VENV_BIN / "python"), "-c",
                          "from leakhub.app import create_web_server_app; "
                          "create_web_server_app()"],
                         env=env, capture_output=True, text=True, timeout=120)
    assert web.returncode == 3, web.stderr
    assert f"leakhub web: cannot start: the data key file {tmp_path}/absent/data-key " \
           "(LEAKHUB_DATA_KEY_FILE) is missing" in web.stderr
    assert "Traceback" not in web.stderr
    worker = subprocess.run([str(VENV_BIN / "python"), "-m", "leakhub_worker"], env=env,
                            capture_output=True, text=True, timeout=120)
    assert worker.returncode == 1 and "leakhub worker: cannot start" in worker.stderr
    assert "Traceback" not in worker.stderr
    cli = subprocess.run([str(VENV_BIN / "leakctl"), "keys", "status"], env=env,
                         capture_output=True, text=True, timeout=120)
    assert cli.returncode == 1 and "is missing" in cli.stdout, cli.stdout + cli.stderr
    assert not (tmp_path / "absent").exists()        # never generated over existing data


def test_status_reports_encryption_and_the_data_directories(stack):
    proc = stack.leakctl("status", "--json", check=False)
    checks = {c["name"]: c for c in json.loads(proc.stdout)["checks"]}
    assert checks["encryption"]["ok"], checks["encryption"]
    assert "file(s) encrypted" in checks["encryption"]["detail"]
    for label in ("database", "uploads", "backups", "secrets"):
        detail = checks[f"encrypted {label}"]["detail"]
        assert "encrypted" in detail or "cannot tell" in detail or "memory" in detail, detail
