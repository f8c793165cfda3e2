"""The backup archive format: a POSIX tar stream encrypted with age, never held in memory.

File: ``leakhub-backup-<YYYYmmddTHHMMSSZ>-<kind>[-<n>].tar.age`` (age v1 binary format,
X25519 recipients: the appliance key plus LEAKHUB_BACKUP_RECIPIENTS). Decrypt it anywhere with
``age -d -i identity.txt FILE | tar -x`` — no Leakhub needed to get at the data (uploads and
some secrets are sealed with the data keys in keys/data-keys.json: AES-256-GCM, docs/encryption.md).

The tar (pax format) holds, in this order:

    FORMAT                      "leakhub-backup 1"
    db/leakhub.pgdump           pg_dump -Fc of Leakhub's database   (or db/leakhub.sqlite3)
    keycloak/keycloak.pgdump    pg_dump -Fc of Keycloak's database  (or keycloak/h2/<files>)
    uploads/...                 the uploads tree (photos, content-addressed)
    secrets/<name>              the secrets needed to run again (not the PostgreSQL passwords,
                                which belong to the target's database server, nor the key
                                ring: it is wrapped by this host's master key)
    keys/data-keys.json         the data keys the uploads and encrypted secrets are sealed
                                with (core/crypto.py; unwrapped, inside this age encryption)
    config/settings.json        the non-secret configuration, for reference
    manifest.json               versions, kind, organizations, per-file SHA-256 and size, ...
    manifest.mac                HMAC-SHA256 of manifest.json under a key derived from the
                                appliance identity: age proves who can *read* an archive, not
                                who wrote it (anyone with the public key can), so this proves
                                the archive was written by a holder of the appliance key.

The manifest comes last because the checksums are computed while streaming; readers extract
everything into a staging directory first and check it before anything else happens.
"""
from __future__ import annotations

import datetime as dt
import fcntl
import hashlib
import hmac
import json
import os
import re
import tarfile
import threading
from dataclasses import dataclass, field
from pathlib import Path

import pyrage
from pyrage import x25519

from ..core.errors import Invalid
from ..core.secrets import new_identity_text  # noqa: F401 (generated with the secrets)

FORMAT_NAME = "leakhub-backup"
FORMAT_VERSION = 1
SUFFIX = ".tar.age"
CHUNK = 1024 * 1024
MAX_SMALL_MEMBER = 64 * 1024 * 1024   # manifest.json, manifest.mac, FORMAT are read into memory
NAME_RE = re.compile(
    r"^leakhub-backup-(\d{8}T\d{6}Z)-(scheduled|manual|pre-update)(?:-(\d+))?\.tar\.age$")
_MAC_CONTEXT = b"leakhub-backup-manifest-mac-v1\0"


class ArchiveError(Invalid):
    """The archive cannot be used; the message says why, for an operator."""


# ---------------------------------------------------------------------------- names

def archive_name(created_at: dt.datetime, kind: str, n: int = 0) -> str:
    stamp = created_at.strftime("%Y%m%dT%H%M%SZ")
    return f"leakhub-backup-{stamp}-{kind}" + (f"-{n}" if n else "") + SUFFIX


def parse_name(name: str) -> tuple[dt.datetime, str] | None:
    """(created_at UTC naive, kind) from an archive's file name, or None if it is not one."""
    m = NAME_RE.match(name)
    if not m:
        return None
    return dt.datetime.strptime(m.group(1), "%Y%m%dT%H%M%SZ"), m.group(2)


def safe_member_name(name: str) -> bool:
    """Relative, no '..' or empty parts, no control characters or backslashes."""
    if not name or name.startswith("/") or "\\" in name or len(name) > 1000:
        return False
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in name):
        return False
    return all(part not in ("", ".", "..") for part in name.split("/"))


# ---------------------------------------------------------------------------- keys

def parse_identities(text: str) -> list[x25519.Identity]:
    found = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        try:
            found.append(x25519.Identity.from_str(line))
        except Exception:
            raise ArchiveError("an identity file contains a line that is not an age "
                               "identity (a line starting with AGE-SECRET-KEY-)") from None
    return found


def parse_recipient(value: str) -> x25519.Recipient:
    try:
        return x25519.Recipient.from_str(value.strip())
    except Exception:
        raise ArchiveError(f"not an age public key: {value[:12]!r}...") from None


def mac_key(identity: x25519.Identity) -> bytes:
    return hashlib.sha256(_MAC_CONTEXT + str(identity).encode()).digest()


def manifest_mac(identity: x25519.Identity, manifest_bytes: bytes) -> dict:
    return {"alg": "hmac-sha256", "key": str(identity.to_public()),
            "mac": hmac.new(mac_key(identity), manifest_bytes, hashlib.sha256).hexdigest()}


def check_mac(identities: list[x25519.Identity], manifest_bytes: bytes, mac: dict) -> bool:
    for ident in identities:
        if str(ident.to_public()) != mac.get("key"):
            continue
        want = hmac.new(mac_key(ident), manifest_bytes, hashlib.sha256).hexdigest()
        if hmac.compare_digest(want, str(mac.get("mac", ""))):
            return True
    return False


# ---------------------------------------------------------------------------- writing

@dataclass
class Entry:
    """One file of the archive: from a path on disk or from bytes."""
    arcname: str
    path: Path | None = None
    data: bytes | None = None
    mode: int = 0o600
    size: int = 0

    def __post_init__(self):
        if not safe_member_name(self.arcname):
            raise ArchiveError(f"unsafe name in archive: {self.arcname!r}")
        if self.data is not None:
            self.size = len(self.data)
        elif self.path is not None and not self.size:
            self.size = self.path.stat().st_size


class _GeneratorReader:
    """A read()-able view of a generator of byte chunks (what pyrage.encrypt_io reads)."""

    def __init__(self, chunks):
        self._chunks = chunks
        self._buf = bytearray()
        self._eof = False
        self.error: BaseException | None = None   # pyrage turns exceptions into strings

    def read(self, n: int = -1) -> bytes:
        while not self._eof and (n < 0 or len(self._buf) < n):
            try:
                self._buf += next(self._chunks)
            except StopIteration:
                self._eof = True
            except BaseException as exc:
                self.error = exc
                raise
        if n < 0 or n > len(self._buf):
            n = len(self._buf)
        out = bytes(self._buf[:n])
        del self._buf[:n]
        return out

    def readable(self):
        return True


class _HashingWriter:
    def __init__(self, fh):
        self.fh = fh
        self.sha = hashlib.sha256()
        self.size = 0
        self.error: BaseException | None = None

    def write(self, data) -> int:
        self.sha.update(data)
        self.size += len(data)
        try:
            return self.fh.write(data)
        except BaseException as exc:
            self.error = exc
            raise

    def flush(self):
        self.fh.flush()

    def writable(self):
        return True


def _tar_header(name: str, size: int, mode: int, mtime: float) -> bytes:
    info = tarfile.TarInfo(name)
    info.size = size
    info.mode = mode
    info.mtime = int(mtime)
    info.type = tarfile.REGTYPE
    info.uname = info.gname = ""
    return info.tobuf(tarfile.PAX_FORMAT, "utf-8", "surrogateescape")


def _member_chunks(entry: Entry, mtime: float, files: dict, progress):
    yield _tar_header(entry.arcname, entry.size, entry.mode, mtime)
    sha = hashlib.sha256()
    written = 0
    if entry.data is not None:
        sha.update(entry.data)
        written = len(entry.data)
        yield entry.data
        if progress:
            progress(written)
    else:
        with open(entry.path, "rb") as fh:
            while written < entry.size:
                chunk = fh.read(min(CHUNK, entry.size - written))
                if not chunk:
                    break
                sha.update(chunk)
                written += len(chunk)
                yield chunk
                if progress:
                    progress(len(chunk))
            if written != entry.size or fh.read(1):
                raise ArchiveError(f"{entry.path} changed size while it was being backed up")
    pad = (-written) % tarfile.BLOCKSIZE
    if pad:
        yield b"\0" * pad
    files[entry.arcname] = {"sha256": sha.hexdigest(), "size": written}


def write_archive(out_path: Path, entries: list[Entry], make_manifest, *,
                  recipients: list, signer: x25519.Identity, progress=None) -> dict:
    """Stream `entries` as tar through age into `out_path` (which must not exist yet).

    `make_manifest(files)` gets {arcname: {sha256, size}} once every entry is written and
    returns the manifest dict, which is added (and MACed with `signer`) at the end.
    Returns {"sha256", "size", "manifest"}. The caller fsyncs and renames.
    """
    mtime = dt.datetime.now(dt.UTC).timestamp()
    files: dict = {}
    result: dict = {}

    def chunks():
        head = Entry("FORMAT", data=f"{FORMAT_NAME} {FORMAT_VERSION}\n".encode(), mode=0o644)
        yield from _member_chunks(head, mtime, {}, None)
        for entry in entries:
            yield from _member_chunks(entry, mtime, files, progress)
        manifest = make_manifest(dict(files))
        manifest_bytes = json.dumps(manifest, indent=1, sort_keys=True).encode()
        result["manifest"] = manifest
        yield from _member_chunks(Entry("manifest.json", data=manifest_bytes), mtime, {}, None)
        mac = json.dumps(manifest_mac(signer, manifest_bytes)).encode()
        yield from _member_chunks(Entry("manifest.mac", data=mac), mtime, {}, None)
        yield b"\0" * (tarfile.BLOCKSIZE * 2)   # end-of-archive marker

    with open(out_path, "xb") as fh:
        os.fchmod(fh.fileno(), 0o600)
        writer = _HashingWriter(fh)
        reader = _GeneratorReader(chunks())
        try:
            pyrage.encrypt_io(reader, writer, recipients)
        except Exception as exc:
            # pyrage reports an exception raised inside read()/write() as a string: re-raise
            # the original (disk full, a file that vanished, ...).
            original = reader.error or writer.error
            if original is not None:
                raise original from None
            raise ArchiveError(f"encryption failed: {exc}") from None
        fh.flush()
        os.fsync(fh.fileno())
    if "manifest" not in result:
        raise ArchiveError("the archive stream ended early")
    result.update(sha256=writer.sha.hexdigest(), size=writer.size)
    return result


# ---------------------------------------------------------------------------- reading

@dataclass
class Extracted:
    staging: Path
    manifest: dict
    manifest_bytes: bytes
    mac: dict
    files: dict = field(default_factory=dict)     # arcname -> {sha256, size} as read
    archive_sha256: str = ""
    archive_size: int = 0
    authentic: bool = False


class _HashingReader:
    def __init__(self, fh, progress=None):
        self.fh = fh
        self.sha = hashlib.sha256()
        self.size = 0
        self.progress = progress

    def read(self, n: int = -1) -> bytes:
        data = self.fh.read(n)
        self.sha.update(data)
        self.size += len(data)
        if self.progress and data:
            self.progress(len(data))
        return data

    def readable(self):
        return True


def _extract_tar(stream, staging: Path, out: dict) -> None:
    files, small = {}, {}
    with tarfile.open(fileobj=stream, mode="r|") as tar:
        for member in tar:
            name = member.name
            if not safe_member_name(name):
                raise ArchiveError(f"the archive contains an unsafe path: {name[:80]!r}")
            if member.isdir():
                continue
            if not member.isreg():
                raise ArchiveError(f"the archive contains a non-regular file: {name[:80]!r}")
            if name in files or name in small:
                raise ArchiveError(f"the archive contains {name!r} twice")
            src = tar.extractfile(member)
            if name in ("FORMAT", "manifest.json", "manifest.mac"):
                if member.size > MAX_SMALL_MEMBER:
                    raise ArchiveError(f"{name} is implausibly large")
                small[name] = src.read()
                continue
            dest = staging / name
            dest.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            sha = hashlib.sha256()
            size = 0
            with open(dest, "xb") as fh:
                os.fchmod(fh.fileno(), 0o600)
                while True:
                    chunk = src.read(CHUNK)
                    if not chunk:
                        break
                    sha.update(chunk)
                    size += len(chunk)
                    fh.write(chunk)
            if size != member.size:
                raise ArchiveError(f"{name} is truncated in the archive")
            files[name] = {"sha256": sha.hexdigest(), "size": size}
    out["files"] = files
    out["small"] = small


def extract_archive(path: Path, identities: list[x25519.Identity], staging: Path, *,
                    progress=None) -> Extracted:
    """Decrypt `path` and unpack it into `staging` (an empty directory), then check the
    format, the manifest's MAC (when one of `identities` signed it) and every file's size
    and SHA-256. Raises ArchiveError naming the first problem; nothing outside `staging` is
    touched."""
    if not identities:
        raise ArchiveError("no identity to decrypt with (the secret backup-identity is missing; "
                           "pass --identity FILE)")
    r_fd, w_fd = os.pipe()
    try:   # fewer, larger hand-overs between the decrypting and the unpacking thread
        fcntl.fcntl(w_fd, getattr(fcntl, "F_SETPIPE_SZ", 1031), CHUNK)
    except OSError:
        pass
    out: dict = {}
    errors: list = []

    def reader():
        try:
            with os.fdopen(r_fd, "rb", buffering=CHUNK) as stream:
                _extract_tar(stream, staging, out)
                while stream.read(CHUNK):   # drain trailing padding so the writer finishes
                    pass
        except BaseException as exc:      # reported by the main thread
            errors.append(exc)

    thread = threading.Thread(target=reader, name="backup-untar", daemon=True)
    decrypt_error = None
    try:
        fh = open(path, "rb")
    except FileNotFoundError:
        os.close(r_fd)
        os.close(w_fd)
        raise ArchiveError(f"no such archive: {path}") from None
    thread.start()
    try:
        with fh:
            src = _HashingReader(fh, progress)
            sink = _HashingWriter(os.fdopen(w_fd, "wb"))
            try:
                pyrage.decrypt_io(src, sink, identities)
            except Exception as exc:
                if sink.error is None:    # else the tar reader stopped: its error is the news
                    decrypt_error = exc
            finally:
                try:
                    sink.fh.close()
                except BrokenPipeError:
                    pass
    finally:
        thread.join()
    if decrypt_error is not None:
        text = str(decrypt_error)
        if "no matching keys" in text.lower():
            raise ArchiveError(
                "cannot decrypt: none of the identities opens this archive — it was made for "
                "another key (use --identity with the key exported by `leakctl backup "
                "export-key` on the installation that made it), or its header is damaged")
        raise ArchiveError(f"the archive is damaged, truncated or was tampered with "
                           f"(decryption failed: {text or type(decrypt_error).__name__})")
    if errors:
        exc = errors[0]
        if isinstance(exc, ArchiveError):
            raise exc
        if isinstance(exc, OSError) and not isinstance(exc, BrokenPipeError):
            raise exc
        raise ArchiveError(f"the archive's content is not a valid backup ({type(exc).__name__}: "
                           f"{exc})")
    small = out.get("small", {})
    fmt = small.get("FORMAT", b"").decode("utf-8", "replace").split()
    if len(fmt) != 2 or fmt[0] != FORMAT_NAME:
        raise ArchiveError("this is not a Leakhub backup (no FORMAT member)")
    try:
        version = int(fmt[1])
    except ValueError:
        raise ArchiveError("this is not a Leakhub backup (bad FORMAT member)") from None
    if version > FORMAT_VERSION:
        raise ArchiveError(f"the backup uses archive format {version}, newer than this Leakhub "
                           f"understands ({FORMAT_VERSION}); install the newer Leakhub version")
    if "manifest.json" not in small or "manifest.mac" not in small:
        raise ArchiveError("the archive is incomplete: its manifest is missing")
    manifest_bytes = small["manifest.json"]
    try:
        manifest = json.loads(manifest_bytes)
        mac = json.loads(small["manifest.mac"])
    except ValueError:
        raise ArchiveError("the archive's manifest is not valid JSON") from None
    result = Extracted(staging=staging, manifest=manifest, manifest_bytes=manifest_bytes,
                       mac=mac, files=out.get("files", {}), archive_sha256=src.sha.hexdigest(),
                       archive_size=src.size)
    result.authentic = check_mac(identities, manifest_bytes, mac)
    check_files(result)
    return result


def check_files(extracted: Extracted) -> None:
    want = extracted.manifest.get("files") or {}
    got = extracted.files
    missing = sorted(set(want) - set(got))
    extra = sorted(set(got) - set(want))
    if missing:
        raise ArchiveError(f"{len(missing)} file(s) listed in the manifest are missing from the "
                           f"archive, e.g. {missing[0]}")
    if extra:
        raise ArchiveError(f"the archive contains {len(extra)} file(s) not in its manifest, "
                           f"e.g. {extra[0]}")
    for name, meta in want.items():
        if got[name]["size"] != meta.get("size") or got[name]["sha256"] != meta.get("sha256"):
            raise ArchiveError(f"checksum mismatch for {name}: the archive is damaged")
