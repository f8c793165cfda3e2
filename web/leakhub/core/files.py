"""File writes that never leave a half-written file under the final name."""
from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write(path: Path, data: bytes, *, mode: int = 0o644) -> None:
    atomic_write_with(path, lambda fh: fh.write(data), mode=mode)


def atomic_write_with(path: Path, write: Callable[[BinaryIO], object], *,
                      mode: int = 0o644) -> None:
    """`write(fh)` fills a temporary file beside `path`; fsynced, then renamed to `path` (a
    failure leaves `path` as it was). For contents written piece by piece, e.g. sealed in
    chunks, so that a large file is never whole in memory."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
        fsync_dir(path.parent)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
