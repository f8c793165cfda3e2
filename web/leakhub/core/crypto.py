"""Encryption at rest for uploads and secret files (issue 15 item 5; docs/encryption.md).

Envelope encryption with AES-256-GCM (the `cryptography` package):

- the **master key** (key-encryption key) lives in the file LEAKHUB_DATA_KEY_FILE, meant for a
  mount outside the data volumes (default `$LEAKHUB_HOME/keys/data-key`). It holds either a
  generated key (`leakhub-data-key-v1:<base64 of 32 bytes>`) or a passphrase of at least 16
  characters (scrypt-derived; e.g. typed at boot into a tmpfs file). It never leaves that file.
- the **data keys** (DEKs, 32 random bytes each) are kept wrapped by the master key in the key
  ring `<LEAKHUB_SECRETS_DIR>/data-keyring` (JSON). One is active (new files); others are
  retiring while `leakctl keys rotate` re-encrypts the files that use them.
- every file is sealed on its own: `MAGIC | len(id) | id | nonce(12) | ciphertext+tag`, the
  file's base name bound as associated data (a file copied under another name does not
  open). Secret files are the same bytes, base64-armoured as one text line.

Files without the magic are legacy plaintext and are read as they are; `leakctl keys
encrypt-existing` (and `rotate`) encrypts them. LEAKHUB_DATA_KEY_FILE=off disables
encryption for new writes (benchmarks; not for production).
"""
from __future__ import annotations

import base64
import contextlib
import fcntl
import hashlib
import hmac
import json
import os
import secrets as _random
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from .errors import LeakhubError
from .files import atomic_write

MAGIC = b"\x00LHENC1\n"
ARMOR = "leakhub-encrypted:v1:"
KEY_PREFIX = "leakhub-data-key-v1:"
KEYRING_NAME = "data-keyring"
NONCE = 12
CHUNK = 1 << 20       # streamed files (exports): memory per chunk, not per file
MIN_PASSPHRASE = 16
SCRYPT = {"n": 2**15, "r": 8, "p": 1}

# Secret files the application alone reads: encrypted. The database passwords and Keycloak's
# bootstrap client secret stay plain files because PostgreSQL, Keycloak and the standard-library
# host tooling read them directly (they protect only servers on the internal network; the
# volumes they sit on are the LUKS part of docs/encryption.md).
ENCRYPTED_SECRETS = frozenset({"session-key", "keycloak-service-client-secret",
                               "backup-identity", "smtp-password", "first-admin.json"})


class DataKeyError(LeakhubError):
    """The data key is missing, wrong, or a file does not decrypt; the message names the file."""


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text.encode())


def new_key_text() -> str:
    return KEY_PREFIX + _b64(os.urandom(32))


def generate_key_file(path: Path) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    atomic_write(path, (new_key_text() + "\n").encode(), mode=0o600)


def fingerprint(master: bytes) -> str:
    return hmac.new(master, b"leakhub master key fingerprint", hashlib.sha256).hexdigest()[:16]


def read_master(path: Path, kdf: dict | None) -> bytes:
    """The master key from its file (a generated key, or a passphrase derived with `kdf`)."""
    path = Path(path)
    try:
        st = path.stat()
        text = path.read_text().strip()
    except FileNotFoundError:
        raise DataKeyError(f"the data key file {path} (LEAKHUB_DATA_KEY_FILE) is missing: "
                           "mount it or enter the passphrase, then start again") from None
    except (PermissionError, IsADirectoryError, UnicodeDecodeError) as exc:
        raise DataKeyError(f"the data key file {path} cannot be read: {exc}") from None
    if st.st_mode & 0o007:
        raise DataKeyError(f"the data key file {path} is readable by every user "
                           f"(mode {st.st_mode & 0o777:o}): chmod 600 it")
    if text.startswith(KEY_PREFIX):
        try:
            key = _unb64(text[len(KEY_PREFIX):])
        except ValueError:
            key = b""
        if len(key) != 32:
            raise DataKeyError(f"the data key file {path} is damaged (not 32 bytes of base64)")
        return key
    if len(text) < MIN_PASSPHRASE:
        raise DataKeyError(f"the data key file {path} holds neither a generated key nor a "
                           f"passphrase of at least {MIN_PASSPHRASE} characters")
    if not kdf:
        kdf = {"alg": "scrypt", "salt": _b64(os.urandom(16)), **SCRYPT}
    return hashlib.scrypt(text.encode(), salt=_unb64(kdf["salt"]), n=kdf["n"], r=kdf["r"],
                          p=kdf["p"], maxmem=2**26, dklen=32)


def _kdf_for(path: Path) -> dict | None:
    """A fresh scrypt salt when the key file holds a passphrase, None for a generated key."""
    try:
        text = Path(path).read_text().strip()
    except OSError:
        return None
    if text.startswith(KEY_PREFIX):
        return None
    return {"alg": "scrypt", "salt": _b64(os.urandom(16)), **SCRYPT}


@dataclass
class Keyring:
    """The unwrapped data keys of one installation (in memory only)."""

    path: Path
    key_file: Path
    master: bytes
    kdf: dict | None
    active: str
    keys: dict = field(default_factory=dict)       # id -> 32 bytes
    retiring: list = field(default_factory=list)
    mtime: int = 0

    # -- persistence
    def document(self) -> dict:
        wrapped = {}
        aes = AESGCM(self.master)
        for kid, dek in sorted(self.keys.items()):
            nonce = os.urandom(NONCE)
            wrapped[kid] = _b64(nonce + aes.encrypt(nonce, dek, b"leakhub-dek:" + kid.encode()))
        return {"format": 1, "master": fingerprint(self.master), "kdf": self.kdf,
                "active": self.active, "retiring": list(self.retiring), "keys": wrapped}

    def save(self) -> None:
        atomic_write(self.path, (json.dumps(self.document(), indent=1) + "\n").encode(),
                     mode=0o600)
        self.mtime = self.path.stat().st_mtime_ns

    def new_key(self) -> str:
        kid = _random.token_hex(4)
        while kid in self.keys:
            kid = _random.token_hex(4)
        self.keys[kid] = AESGCM.generate_key(256)
        return kid

    # -- files
    def seal(self, data: bytes, name: str) -> bytes:
        kid = self.active.encode()
        head = MAGIC + bytes([len(kid)]) + kid
        nonce = os.urandom(NONCE)
        return head + nonce + AESGCM(self.keys[self.active]).encrypt(
            nonce, data, head + name.encode())

    def open(self, blob: bytes, name: str, where) -> bytes:
        kid, end = parse_header(blob, where)
        dek = self.keys.get(kid)
        if dek is None:
            raise DataKeyError(f"{where} was encrypted with data key {kid!r}, which is not in "
                               f"the key ring {self.path} (restored without its keys?)")
        try:
            view = memoryview(blob)     # no copies of a large file
            return AESGCM(dek).decrypt(view[end:end + NONCE], view[end + NONCE:],
                                       blob[:end] + name.encode())
        except InvalidTag:
            raise DataKeyError(f"{where} does not decrypt: it was changed or damaged "
                               "(authentication failed)") from None

    # Files too large to hold in memory (exports): the same format as seal/open — one AES-GCM
    # message, the tag at the end — produced and read a chunk at a time.
    def seal_stream(self, src: BinaryIO, dst: BinaryIO, name: str) -> int:
        return self.seal_chunks(iter(lambda: src.read(CHUNK), b""), dst, name)

    def seal_chunks(self, chunks: Iterable[bytes], dst: BinaryIO, name: str) -> int:
        kid = self.active.encode()
        head = MAGIC + bytes([len(kid)]) + kid
        nonce = os.urandom(NONCE)
        enc = Cipher(algorithms.AES(self.keys[self.active]), modes.GCM(nonce)).encryptor()
        enc.authenticate_additional_data(head + name.encode())
        dst.write(head + nonce)
        n = 0
        for chunk in chunks:
            dst.write(enc.update(chunk))
            n += len(chunk)
        dst.write(enc.finalize() + enc.tag)
        return n

    def _decryptor(self, fh: BinaryIO, size: int, name: str, where):
        """(decryptor, first ciphertext byte, end of the ciphertext) of an open sealed file."""
        fh.seek(0)
        prefix = fh.read(len(MAGIC) + 1 + 255 + NONCE + 16)
        kid, end = parse_header(prefix, where)
        dek = self.keys.get(kid)
        if dek is None:
            raise DataKeyError(f"{where} was encrypted with data key {kid!r}, which is not in "
                               f"the key ring {self.path} (restored without its keys?)")
        fh.seek(size - 16)
        tag = fh.read(16)
        dec = Cipher(algorithms.AES(dek), modes.GCM(prefix[end:end + NONCE], tag)).decryptor()
        dec.authenticate_additional_data(prefix[:end] + name.encode())
        return dec, end + NONCE, size - 16

    def open_stream(self, fh: BinaryIO, size: int, name: str, where) -> Iterator[bytes]:
        """The plaintext of an open sealed file, chunk by chunk. The whole file is
        authenticated first (a pass that keeps nothing), so a changed file fails before any
        of it is handed out; the pass that hands it out checks the tag again at its end."""
        for _ in self._chunks(fh, size, name, where):
            pass
        return self._chunks(fh, size, name, where)

    def _chunks(self, fh: BinaryIO, size: int, name: str, where) -> Iterator[bytes]:
        dec, pos, stop = self._decryptor(fh, size, name, where)
        fh.seek(pos)
        try:
            while pos < stop:
                chunk = fh.read(min(CHUNK, stop - pos))
                if not chunk:
                    break
                pos += len(chunk)
                yield dec.update(chunk)
            yield dec.finalize()
        except InvalidTag:
            raise DataKeyError(f"{where} does not decrypt: it was changed or damaged "
                               "(authentication failed)") from None


def parse_header(blob: bytes, where):
    """(key id, end of the header) of a sealed file; the nonce and ciphertext follow."""
    if not blob.startswith(MAGIC) or len(blob) < len(MAGIC) + 2:
        raise DataKeyError(f"{where} is not an encrypted Leakhub file")
    n = blob[len(MAGIC)]
    end = len(MAGIC) + 1 + n
    try:
        kid = blob[len(MAGIC) + 1:end].decode("ascii")
    except UnicodeDecodeError:
        kid = ""
    if not kid or len(blob) < end + NONCE + 16:
        raise DataKeyError(f"{where} does not decrypt: its header is damaged")
    return kid, end


def is_sealed(blob: bytes) -> bool:
    return blob.startswith(MAGIC)


def key_id_of(blob: bytes) -> str | None:
    """The data key id a sealed file names, None for plaintext."""
    if not is_sealed(blob):
        return None
    return parse_header(blob, "file")[0]


# ------------------------------------------------------------------------------ key ring files

def load_keyring(path: Path, key_file: Path) -> Keyring:
    path, key_file = Path(path), Path(key_file)
    try:
        doc = json.loads(path.read_text())
        mtime = path.stat().st_mtime_ns
    except FileNotFoundError:
        raise DataKeyError(f"the key ring {path} is missing") from None
    except (OSError, ValueError) as exc:
        raise DataKeyError(f"the key ring {path} cannot be read: {exc}") from None
    master = read_master(key_file, doc.get("kdf"))
    if not hmac.compare_digest(fingerprint(master), str(doc.get("master", ""))):
        raise DataKeyError(f"the data key file {key_file} is not the key the key ring {path} "
                           "was made with (wrong key or passphrase)")
    aes = AESGCM(master)
    keys = {}
    for kid, wrapped in (doc.get("keys") or {}).items():
        raw = _unb64(wrapped)
        try:
            keys[kid] = aes.decrypt(raw[:NONCE], raw[NONCE:], b"leakhub-dek:" + kid.encode())
        except InvalidTag:
            raise DataKeyError(f"data key {kid!r} in the key ring {path} does not unwrap with "
                               f"{key_file} (the key ring was changed)") from None
    if doc.get("active") not in keys:
        raise DataKeyError(f"the key ring {path} names no usable active data key")
    return Keyring(path=path, key_file=key_file, master=master, kdf=doc.get("kdf"),
                   active=doc["active"], keys=keys, retiring=list(doc.get("retiring") or []),
                   mtime=mtime)


@contextlib.contextmanager
def _ring_lock(path: Path):
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(path.parent / f".{path.name}.lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def ensure_keyring(path: Path, key_file: Path, *, generate: bool = True) -> tuple[Keyring, list]:
    """Load the key ring, creating what is missing on a first start: the key file (when
    `generate` allows and no key ring exists yet) and the key ring. Never replaces a key that
    data may depend on. Returns (keyring, names of what was created)."""
    path, key_file = Path(path), Path(key_file)
    created = []
    if path.exists():               # the usual case; no lock (read-only secrets mounts)
        return load_keyring(path, key_file), created
    with _ring_lock(path):
        if path.exists():
            return load_keyring(path, key_file), created
        if not key_file.exists():
            if not generate:
                raise DataKeyError(f"the data key file {key_file} (LEAKHUB_DATA_KEY_FILE) is "
                                   "missing and LEAKHUB_DATA_KEY_GENERATE is off")
            generate_key_file(key_file)
            created.append(str(key_file))
        kdf = _kdf_for(key_file)
        master = read_master(key_file, kdf)
        ring = Keyring(path=path, key_file=key_file, master=master, kdf=kdf, active="")
        ring.active = ring.new_key()
        ring.save()
        created.append(str(path))
        return ring, created


@contextlib.contextmanager
def operation_lock(config):
    """One `leakctl keys` operation at a time per installation (not blocking: a second one is
    told so)."""
    path = keyring_path(config)
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(path.parent / f".{path.name}.operation", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise DataKeyError("another `leakctl keys` operation is running on "
                               f"{path}; try again when it has finished") from None
        yield
    finally:
        os.close(fd)


# --------------------------------------------------------------------- the installation's ring

_cache: dict = {}
_cache_lock = threading.Lock()


def keyring_path(config) -> Path:
    return Path(config.secrets_dir) / KEYRING_NAME


def enabled(config) -> bool:
    return getattr(config, "data_key_file", None) is not None


def keyring(config, *, refresh: bool = False) -> Keyring | None:
    """This installation's key ring (created on first use when allowed), cached per process
    and re-read when `leakctl keys` changed it. None when encryption is off."""
    if not enabled(config):
        return None
    path = keyring_path(config)
    cache_key = (str(path), str(config.data_key_file))
    with _cache_lock:
        ring = _cache.get(cache_key)
        if ring is not None and not refresh:
            try:
                if path.stat().st_mtime_ns == ring.mtime:
                    return ring
            except FileNotFoundError:
                pass
        ring, _ = ensure_keyring(path, config.data_key_file,
                                 generate=getattr(config, "data_key_generate", True))
        _cache[cache_key] = ring
        return ring


def forget_cached() -> None:
    with _cache_lock:
        _cache.clear()


def check_ready(config) -> None:
    """At start (web, worker): refuse to run without the key when encrypted data exists."""
    if enabled(config):
        keyring(config)


def seal_for(config, data: bytes, name: str) -> bytes:
    ring = keyring(config)
    return data if ring is None else ring.seal(data, name)


def open_for(config, blob: bytes, name: str, where) -> bytes:
    """Plaintext of a stored file: legacy plaintext as it is, sealed ones decrypted."""
    if not is_sealed(blob):
        return blob
    if not enabled(config):
        # Encryption switched off after files were sealed: the key file is the default one.
        raise DataKeyError(f"{where} is encrypted but LEAKHUB_DATA_KEY_FILE is off")
    ring = keyring(config)
    kid = parse_header(blob, where)[0]
    if kid not in ring.keys:
        ring = keyring(config, refresh=True)     # rotated by another process meanwhile
    return ring.open(blob, name, where)


def seal_stream(config, src: BinaryIO, dst: BinaryIO, name: str) -> int:
    """Seal what `src` holds (from its position) into `dst` a chunk at a time, in seal_for's
    format; plaintext when encryption is off. Returns the plaintext's length."""
    ring = keyring(config)
    if ring is not None:
        return ring.seal_stream(src, dst, name)
    n = 0
    while chunk := src.read(CHUNK):
        dst.write(chunk)
        n += len(chunk)
    return n


def open_stream(config, path: Path, name: str, where) -> Iterator[bytes]:
    """open_for for a file too large to hold in memory: its plaintext in chunks (legacy
    plaintext as it is). A sealed file is authenticated as a whole before the first chunk, so
    errors (damaged, unknown key) come from this call, not halfway through a download."""
    fh = open(path, "rb")
    try:
        size = os.fstat(fh.fileno()).st_size
        if not is_sealed(fh.read(len(MAGIC))):
            fh.seek(0)
            return _plain_chunks(fh)
        if not enabled(config):
            raise DataKeyError(f"{where} is encrypted but LEAKHUB_DATA_KEY_FILE is off")
        ring = keyring(config)
        fh.seek(0)
        kid = parse_header(fh.read(len(MAGIC) + 1 + 255 + NONCE + 16), where)[0]
        if kid not in ring.keys:
            ring = keyring(config, refresh=True)     # rotated by another process meanwhile
        return _closing(fh, ring.open_stream(fh, size, name, where))
    except BaseException:
        fh.close()
        raise


def _plain_chunks(fh: BinaryIO) -> Iterator[bytes]:
    with fh:
        while chunk := fh.read(CHUNK):
            yield chunk


def _closing(fh: BinaryIO, chunks: Iterator[bytes]) -> Iterator[bytes]:
    with fh:
        yield from chunks


def armor(blob: bytes) -> str:
    return ARMOR + base64.b64encode(blob).decode()


def unarmor(text: str, where) -> bytes:
    try:
        return base64.b64decode(text[len(ARMOR):].strip(), validate=True)
    except ValueError:
        raise DataKeyError(f"{where} is damaged (its encrypted text is not base64)") from None
