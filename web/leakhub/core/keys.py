"""Data key operations behind `leakctl keys` (docs/encryption.md).

- `rotate`: a new data key becomes active, every stored file (uploads and the encrypted secret
  files) is re-encrypted with it, one file at a time (temp + fsync + rename), then the old keys
  are dropped from the key ring. The key ring records the keys being retired before the first
  file is touched, so a crash leaves a state that the next `rotate` resumes: it finishes the
  same rotation instead of starting another, and the old keys stay until every file is done.
- `encrypt-existing`: plaintext files from before encryption are encrypted with the active key.
- `rewrap`: the key ring is wrapped under a new master key (a new key file or passphrase);
  no data file changes.
"""
from __future__ import annotations

import os
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from . import crypto
from .files import atomic_write, atomic_write_with
from .secrets import decode_secret, encode_secret


@dataclass
class StoredFile:
    path: Path
    name: str          # associated data: the file's base name (a content hash or secret name)
    secret: bool


def uploads_dir(config) -> Path:
    return Path(config.data_dir) / "uploads"


def exports_dir(config) -> Path:
    """The worker's export files (exports/jobs.py), kept 24 h, encrypted like uploads."""
    return Path(config.data_dir) / "exports"


def stored_files(config):
    """Every file encryption at rest covers: uploads and export files, then the
    application's secret files."""
    for root in (uploads_dir(config), exports_dir(config)):
        if not root.is_dir():
            continue
        for dirpath, dirnames, filenames in os.walk(root):
            dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
            for fname in sorted(filenames):
                path = Path(dirpath) / fname
                if not fname.startswith(".") and path.is_file() and not path.is_symlink():
                    yield StoredFile(path, fname, False)
    for name in sorted(crypto.ENCRYPTED_SECRETS):
        path = Path(config.secrets_dir) / name
        if path.is_file():
            yield StoredFile(path, name, True)


def key_id(f: StoredFile) -> str | None:
    """The data key id a stored file uses, None for plaintext."""
    if f.secret:
        text = f.path.read_text()
        if not text.startswith(crypto.ARMOR):
            return None
        return crypto.key_id_of(crypto.unarmor(text, f.path))
    with open(f.path, "rb") as fh:
        head = fh.read(64)
    return crypto.key_id_of(head) if crypto.is_sealed(head) else None


def census(config) -> dict:
    """{key id or "plaintext": number of files}."""
    counts = Counter()
    for f in stored_files(config):
        try:
            counts[key_id(f) or "plaintext"] += 1
        except FileNotFoundError:
            continue
    return dict(counts)


def _reseal(config, ring, f: StoredFile) -> None:
    """Re-encrypt one file with the active key, atomically (the old file stays readable
    until the rename)."""
    if f.secret:
        value = decode_secret(config.secrets_dir, f.name, f.path.read_text())
        text = encode_secret(config.secrets_dir, f.name, value)
        atomic_write(f.path, (text + "\n").encode(), mode=0o600)
        return
    # A chunk at a time: export files are as large as the register (tens of MB), and the
    # rotation runs in the worker's or leakctl's memory.
    chunks = crypto.open_stream(config, f.path, f.name, f.path)
    try:
        mode = f.path.stat().st_mode & 0o777
        atomic_write_with(f.path, lambda fh: ring.seal_chunks(chunks, fh, f.name), mode=mode)
    finally:
        chunks.close()


def _pass(config, ring, wanted, progress=None) -> int:
    """Re-encrypt every file whose key id `wanted(id)` selects; returns how many."""
    files = list(stored_files(config))
    done = 0
    for f in files:
        try:
            if wanted(key_id(f)):
                _reseal(config, ring, f)
                done += 1
        except FileNotFoundError:
            pass            # deleted meanwhile (photo removed, import staging purged)
        if progress:
            progress(1, len(files))
    return done


@dataclass
class Outcome:
    active: str
    resumed: bool
    reencrypted: int
    dropped: list


def rotate(config, progress=None, *, fail_after: int | None = None) -> Outcome:
    """See the module docstring. `fail_after` (tests) raises after that many files."""
    with crypto.operation_lock(config):
        return _rotate(config, progress, fail_after)


def _rotate(config, progress, fail_after) -> Outcome:
    ring = crypto.keyring(config, refresh=True)
    resumed = bool(ring.retiring)
    if not resumed:
        old = sorted(ring.keys)
        ring.active = ring.new_key()
        ring.retiring = old
        ring.save()            # first the new key and the list to retire, then the files
    crypto.forget_cached()
    ring = crypto.keyring(config, refresh=True)
    counter = {"n": 0}

    def wanted(kid):
        if kid == ring.active:
            return False
        if fail_after is not None and counter["n"] >= fail_after:
            raise RuntimeError("simulated crash during rotation")
        counter["n"] += 1
        return True

    n = _pass(config, ring, wanted, progress)
    # Files written meanwhile by a process that had not yet seen the new key.
    n += _pass(config, ring, lambda kid: kid is not None and kid != ring.active)
    left = census(config)
    still = [k for k in ring.retiring if left.get(k)]
    if still:
        raise crypto.DataKeyError(f"files still use the retiring data key(s) {still}; run "
                                  "`leakctl keys rotate` again")
    dropped = list(ring.retiring)
    for kid in dropped:
        ring.keys.pop(kid, None)
    ring.retiring = []
    ring.save()
    crypto.forget_cached()
    return Outcome(ring.active, resumed, n, dropped)


def encrypt_existing(config, progress=None) -> int:
    with crypto.operation_lock(config):
        ring = crypto.keyring(config, refresh=True)
        return _pass(config, ring, lambda kid: kid is None, progress)


def rewrap(config, new_key_file: Path) -> list[str]:
    """Wrap the key ring under the master key in `new_key_file` (generated when absent).
    Returns what was created. The old key file opens nothing afterwards."""
    with crypto.operation_lock(config):
        return _rewrap(config, Path(new_key_file))


def _rewrap(config, new_key_file: Path) -> list[str]:
    ring = crypto.keyring(config, refresh=True)
    created = []
    if not new_key_file.exists():
        crypto.generate_key_file(new_key_file)
        created.append(str(new_key_file))
    kdf = crypto._kdf_for(new_key_file)
    ring.master = crypto.read_master(new_key_file, kdf)
    ring.kdf = kdf
    ring.key_file = new_key_file
    ring.save()
    crypto.forget_cached()
    return created


def describe(config) -> dict:
    """For `leakctl keys status` and `leakctl status`."""
    if not crypto.enabled(config):
        return {"enabled": False}
    path = crypto.keyring_path(config)
    out = {"enabled": True, "key_file": str(config.data_key_file), "keyring": str(path)}
    if not path.exists():
        out["error"] = "no key ring yet (created by `leakctl secrets init` or setup)"
        return out
    try:
        ring = crypto.keyring(config, refresh=True)
    except crypto.DataKeyError as exc:
        out["error"] = str(exc)
        return out
    out.update(master=crypto.fingerprint(ring.master), active=ring.active,
               retiring=list(ring.retiring),
               passphrase=bool(ring.kdf), files=census(config))
    return out


def dek_export(config) -> dict:
    """The unwrapped data keys for a backup archive (which is itself encrypted with age)."""
    ring = crypto.keyring(config)
    if ring is None:
        return {}
    return {"format": 1, "active": ring.active,
            "keys": {k: crypto._b64(v) for k, v in ring.keys.items()}}


def dek_import(config, doc: dict) -> list[str]:
    """A restore: the archive's data keys join this installation's key ring (wrapped under
    this host's master key); the archive's active key becomes the active one."""
    if not doc or not crypto.enabled(config):
        return []
    ring = crypto.keyring(config, refresh=True)
    added = []
    for kid, b64 in (doc.get("keys") or {}).items():
        if kid not in ring.keys:
            added.append(kid)
        ring.keys[kid] = crypto._unb64(b64)
    if doc.get("active") in ring.keys:
        ring.active = doc["active"]
    ring.save()
    crypto.forget_cached()
    return added
