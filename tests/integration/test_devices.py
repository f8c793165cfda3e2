"""Devices end to end against the real stack, no mocks of authentication: `leakctl device add`
as a subprocess, a client-credentials token from the real Keycloak (the organization's realm,
through Caddy), findings with a photo posted to the ingest API through Caddy, replay, and
`leakctl device disable` revoking the very same (unexpired) token at once."""
from __future__ import annotations

import base64
import io
import json
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from PIL import Image

from support.kc import new_org
from support.stackctl import VENV_BIN, superuser

# The plaintext of a stored upload, read through the storage (decrypted with the stack's key).
READ_UPLOAD = ("import sys; from leakhub.photos.storage import photo_storage; "
               "sys.stdout.buffer.write(photo_storage(int(sys.argv[1])).read(sys.argv[2]))")

pytestmark = pytest.mark.integration


def jpeg_with_gps() -> bytes:
    img = Image.new("RGB", (64, 48), (200, 30, 30))
    exif = Image.Exif()
    exif[0x010F] = "SecretCam"
    gps = exif.get_ifd(0x8825)
    gps[1], gps[2] = "N", (52.0, 31.0, 12.0)
    out = io.BytesIO()
    img.save(out, "JPEG", exif=exif)
    return out.getvalue()


def token(http, token_url, client_id, secret):
    return http.post(token_url, data={"grant_type": "client_credentials",
                                      "client_id": client_id, "client_secret": secret},
                     timeout=30)


def rows(stack, query, *args):
    with superuser(stack, "leakhub") as conn:
        return conn.execute(query, args).fetchall()


def test_device_add_token_ingest_with_photo_replay_and_disable(stack):
    slug, _, _ = new_org(stack, prefix="dev")
    # Two demo sites: W01 and W02, each with buildings H1... and areas H1.1... (codes repeat).
    stack.leakctl("demo", "seed", "--org", slug, "--sites", "2", "--leaks", "0", "--seed", "7",
                  "--json")
    out = stack.leakctl("device", "add", "--org", slug, "--name", "LD500 Halle 1",
                        "--model", "CS Instruments LD 500", "--serial", "SN-4711", "--json")
    added = json.loads(out.stdout)
    client_id, secret, token_url = added["client_id"], added["client_secret"], added["token_url"]
    assert client_id == "device-ld500-halle-1" and len(secret) >= 16
    assert token_url == f"{stack.public_url}/auth/realms/{slug}/protocol/openid-connect/token"

    http = stack.requests_session()
    resp = token(http, token_url, client_id, secret)
    assert resp.status_code == 200, resp.text
    access = resp.json()["access_token"]
    ingest = f"{stack.public_url}/api/v1/ingest/findings"
    auth = {"Authorization": f"Bearer {access}"}

    photo = {"filename": "kupplung.jpg",
             "content_base64": base64.b64encode(jpeg_with_gps()).decode()}
    body = {"findings": [
        {"id": "ld500-0001", "location": "W01 / H1 / H1.1", "rate_lpm": "12,5",
         "component": "coupling", "found_at": "2024-03-31T14:30:00+02:00", "photos": [photo]},
        {"id": "ld500-0002", "location": "W02", "rate_lpm": 3},
    ]}
    # An ambiguous code first: 422 naming both candidates, nothing written.
    bad = http.post(ingest, headers=auth, json={"findings": [
        body["findings"][1], {"id": "ld500-0003", "location": "H1", "rate_lpm": 1}]})
    assert bad.status_code == 422, bad.text
    assert bad.headers["Content-Type"].startswith("application/problem+json")
    candidates = bad.json()["candidates"]["findings[1].location"]
    assert len(candidates) == 2 and all(c.startswith(("W01 · ", "W02 · ")) for c in candidates)

    org_id = rows(stack, "SELECT id FROM organization WHERE slug = %s", slug)[0][0]
    assert rows(stack, "SELECT count(*) FROM leak WHERE organization_id = %s", org_id) == [(0,)]

    first = http.post(ingest, headers=auth, json=body)
    assert first.status_code == 201, first.text
    created = first.json()["created"]
    assert [c["id"] for c in created] == ["ld500-0001", "ld500-0002"]
    assert created[0]["photos"] == 1
    leak_id = created[0]["leak_id"]
    leak = rows(stack, "SELECT l.status, l.source, l.device_serial, l.rate_lpm, l.found_at, "
                       "loc.code FROM leak l JOIN location loc ON loc.id = l.location_id "
                       "WHERE l.id = %s", leak_id)[0]
    assert leak[:3] == ("to_review", "device", "SN-4711") and float(leak[3]) == 12.5
    assert leak[4].isoformat() == "2024-03-31T12:30:00" and leak[5] == "H1.1"
    photos = rows(stack, "SELECT sha256, content_type FROM photo WHERE leak_id = %s", leak_id)
    assert len(photos) == 1 and photos[0][1] == "image/jpeg"
    on_disk = (Path(stack.env["LEAKHUB_DATA_DIR"]) / "uploads" / "photos" / str(org_id)
               / photos[0][0][:2] / photos[0][0]).read_bytes()
    assert on_disk.startswith(b"\x00LHENC1\n")        # encrypted at rest (docs/encryption.md)
    stored = subprocess.run([str(VENV_BIN / "python"), "-c", READ_UPLOAD, str(org_id),
                             photos[0][0]], env=stack.env, capture_output=True, check=True,
                            timeout=120).stdout
    assert stored[:3] == b"\xff\xd8\xff" and b"SecretCam" not in stored

    def counts():
        return rows(stack, "SELECT (SELECT count(*) FROM leak WHERE organization_id = %s), "
                           "(SELECT count(*) FROM photo WHERE organization_id = %s)",
                    org_id, org_id)[0]
    assert counts() == (2, 1)
    replay = http.post(ingest, headers=auth, json=body)
    assert replay.status_code == 200, replay.text
    assert replay.json()["created"] == []
    assert [d["id"] for d in replay.json()["duplicates"]] == ["ld500-0001", "ld500-0002"]
    assert counts() == (2, 1)

    # The same new batch four times at once: created once, the others see duplicates.
    batch = {"findings": [{"id": "ld500-0100", "location": "W01 / H1", "rate_lpm": 2}]}
    with ThreadPoolExecutor(4) as pool:
        answers = list(pool.map(lambda _: http.post(ingest, headers=auth, json=batch),
                                range(4)))
    assert sorted(r.status_code for r in answers) == [200, 200, 200, 201], \
        [(r.status_code, r.text[:200]) for r in answers]
    assert counts() == (3, 1)

    listed = json.loads(stack.leakctl("device", "list", "--org", slug, "--json").stdout)
    assert listed[0]["enabled"] and listed[0]["last_contact_at"]

    stack.leakctl("device", "disable", "--org", slug, "--name", "LD500 Halle 1")
    # The same token, still far from its expiry, is refused at the next request ...
    assert json.loads(base64.urlsafe_b64decode(access.split(".")[1] + "=="))["exp"] > time.time()
    refused = http.post(ingest, headers=auth, json={"findings": [
        {"id": "ld500-0009", "location": "W01", "rate_lpm": 1}]})
    assert refused.status_code == 401, refused.text
    assert refused.headers["Content-Type"].startswith("application/problem+json")
    # ... and Keycloak issues no new one.
    assert token(http, token_url, client_id, secret).status_code in (400, 401)
    assert counts() == (3, 1)

    # The secret was printed once by leakctl and is in no log of the stack.
    for log in Path(stack.logs_dir).glob("*.log"):
        assert secret not in log.read_text(errors="replace"), log.name
