"""Where uploaded bytes live: a tiny interface so that S3-compatible object storage can replace
the filesystem later (DESIGN §9) without touching the callers.

    store = photo_storage(organization)
    key = store.put(data)  # key = sha256 of `data`; storing the same bytes twice is one file
    with store.open(key) as fh: ...
    store.delete(key)

Keys are content hashes, so the same bytes are stored once (per organization: each
organization has its own namespace, so deleting in one never touches another's files).

Files are encrypted at rest with the installation's data key (core/crypto.py); the key is the
hash of the plaintext. Plain files from before encryption are still read.
"""
from __future__ import annotations

import datetime as dt
import hashlib
import io
import re
from pathlib import Path
from typing import BinaryIO, Protocol

from ..core import crypto
from ..core.config import get_config
from ..core.files import atomic_write

_KEY = re.compile(r"^[0-9a-f]{64}$")


class Storage(Protocol):
    def put(self, data: bytes) -> str: ...
    def open(self, key: str) -> BinaryIO: ...
    def delete(self, key: str) -> None: ...
    def exists(self, key: str) -> bool: ...
    def modified_at(self, key: str) -> dt.datetime | None: ...


class FileStorage:
    """Files under `root/ab/abcdef...` (two-character fan-out), written atomically."""

    def __init__(self, root: Path, config=None):
        self.root = Path(root)
        self._config = config

    @property
    def config(self):
        return self._config or get_config()

    def _path(self, key: str) -> Path:
        if not isinstance(key, str) or not _KEY.match(key):
            raise ValueError("invalid storage key")
        return self.root / key[:2] / key

    def put(self, data: bytes) -> str:
        key = hashlib.sha256(data).hexdigest()
        # Always (re)written, even when present: refreshes the modification time that
        # `delete` callers consult to avoid racing a concurrent upload of the same bytes.
        atomic_write(self._path(key), crypto.seal_for(self.config, data, key), mode=0o640)
        return key

    def open(self, key: str) -> BinaryIO:
        return io.BytesIO(self.read(key))

    def read(self, key: str) -> bytes:
        path = self._path(key)
        with open(path, "rb") as fh:
            blob = fh.read()
        return crypto.open_for(self.config, blob, key, path)

    def delete(self, key: str) -> None:
        try:
            self._path(key).unlink()
        except FileNotFoundError:
            pass

    def exists(self, key: str) -> bool:
        return self._path(key).is_file()

    def modified_at(self, key: str) -> dt.datetime | None:
        try:
            ts = self._path(key).stat().st_mtime
        except FileNotFoundError:
            return None
        return dt.datetime.fromtimestamp(ts, dt.UTC).replace(tzinfo=None)

    def keys(self):
        if not self.root.is_dir():
            return
        for sub in sorted(self.root.iterdir()):
            if sub.is_dir() and len(sub.name) == 2:
                for f in sorted(sub.iterdir()):
                    if _KEY.match(f.name):
                        yield f.name


def uploads_root(config=None) -> Path:
    config = config or get_config()
    return Path(config.data_dir) / "uploads"


def photo_storage(organization, config=None) -> FileStorage:
    org_id = organization if isinstance(organization, int) else organization.id
    return FileStorage(uploads_root(config) / "photos" / str(int(org_id)), config)
