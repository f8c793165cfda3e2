"""Photos through the web with encryption at rest: ciphertext on disk, plaintext served, a
tampered file answers 500 without server paths and the path goes to the log."""
import hashlib
import logging

import pytest

from leakhub.core import crypto
from leakhub.photos import service
from leakhub.photos.storage import photo_storage

from support.reporting_data import BASE, make_tree, new_leak, png_bytes


@pytest.fixture
def leak(actor):
    return new_leak(actor, make_tree(actor)["area"])


def test_photo_is_sealed_on_disk_and_served_plain(actor, leak, login):
    (photo,) = service.add_photos(actor, leak, [("a.png", png_bytes())])
    store = photo_storage(photo.organization_id)
    raw = store._path(photo.sha256).read_bytes()
    assert raw.startswith(crypto.MAGIC)
    c = login(actor.user)
    got = c.get(f"/photos/{photo.id}", base_url=BASE)
    assert got.status_code == 200 and hashlib.sha256(got.data).hexdigest() == photo.sha256


def test_tampered_photo_is_a_500_without_paths_and_logged(actor, leak, login, caplog):
    (photo,) = service.add_photos(actor, leak, [("a.png", png_bytes())])
    path = photo_storage(photo.organization_id)._path(photo.sha256)
    blob = bytearray(path.read_bytes())
    blob[-1] ^= 1
    path.write_bytes(bytes(blob))
    c = login(actor.user)
    with caplog.at_level(logging.ERROR, logger="leakhub.photos"):
        got = c.get(f"/photos/{photo.id}", base_url=BASE)
    assert got.status_code == 500
    assert str(path) not in got.get_data(as_text=True)
    assert "cannot be decrypted" in got.get_data(as_text=True)
    assert any(str(path) in r.getMessage() for r in caplog.records)
