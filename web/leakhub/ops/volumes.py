"""Does each data directory sit on an encrypted block device (dm-crypt / LUKS)?

For `leakctl status` (docs/encryption.md): the directory's mount is found in
/proc/self/mountinfo (the longest mount point containing it; the last of equal ones, which
covers over-mounts), its device by major:minor in /sys/dev/block, and the device counts as
encrypted when it, or any device below it (its `slaves/`, e.g. LVM on LUKS), is a device-mapper
target whose /sys/class/block/<dev>/dm/uuid starts with "CRYPT-". Informational: the checks
never fail `status` (a development machine has no LUKS), they say what they found.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from ..backups import native
from ..core import keys
from .status import Check

_ESCAPE = re.compile(r"\\([0-7]{3})")


def _unescape(field: str) -> str:
    return _ESCAPE.sub(lambda m: chr(int(m.group(1), 8)), field)


@dataclass
class Mount:
    majmin: str
    mount_point: str
    fstype: str
    source: str


def parse_mountinfo(text: str) -> list[Mount]:
    mounts = []
    for line in text.splitlines():
        fields = line.split()
        if "-" not in fields or len(fields) < 7:
            continue
        sep = fields.index("-")
        if len(fields) < sep + 3:
            continue
        mounts.append(Mount(fields[2], _unescape(fields[4]), fields[sep + 1],
                            _unescape(fields[sep + 2])))
    return mounts


def mount_of(path: Path, mounts: list[Mount]) -> Mount | None:
    target = str(path)
    best = None
    for m in mounts:
        mp = m.mount_point.rstrip("/") or "/"
        inside = target == mp or target.startswith(mp + "/") or mp == "/"
        if inside and (best is None or len(mp) >= len(best.mount_point.rstrip("/") or "/")):
            best = m
    return best


def device_name(majmin: str, sys_root: Path) -> str | None:
    link = sys_root / "dev" / "block" / majmin
    if link.exists():
        return link.resolve().name
    for dev in sorted((sys_root / "class" / "block").glob("*")):
        try:
            if (dev / "dev").read_text().strip() == majmin:
                return dev.name
        except OSError:
            continue
    return None


def crypt_device(name: str, sys_root: Path, _seen: frozenset = frozenset()) -> str | None:
    """The dm-crypt device at or below `name`, or None."""
    if name in _seen:
        return None
    base = sys_root / "class" / "block" / name
    try:
        if (base / "dm" / "uuid").read_text().strip().startswith("CRYPT-"):
            return name
    except OSError:
        pass
    slaves = base / "slaves"
    if slaves.is_dir():
        for slave in sorted(slaves.iterdir()):
            found = crypt_device(slave.name, sys_root, _seen | {name})
            if found:
                return found
    return None


@dataclass
class Placement:
    path: str
    encrypted: bool | None      # None: not on a local block device (tmpfs, network, missing)
    detail: str


def placement(path: Path, *, mountinfo: str | None = None,
              sys_root: Path = Path("/sys")) -> Placement:
    path = Path(path)
    if not path.exists():
        return Placement(str(path), None, f"{path} does not exist")
    resolved = path.resolve()
    if mountinfo is None:
        mountinfo = Path("/proc/self/mountinfo").read_text()
    mount = mount_of(resolved, parse_mountinfo(mountinfo))
    if mount is None:
        return Placement(str(path), None, f"{path}: no mount found")
    where = f"{path} on {mount.source} ({mount.fstype}, mounted at {mount.mount_point})"
    if mount.majmin.startswith("0:"):
        memory = mount.fstype in ("tmpfs", "ramfs")
        return Placement(str(path), None, where + (": in memory, not on disk" if memory else
                                                   ": not a local block device, cannot tell"))
    name = device_name(mount.majmin, sys_root)
    if name is None:
        return Placement(str(path), None, where + f": device {mount.majmin} not in {sys_root}")
    crypt = crypt_device(name, sys_root)
    if crypt:
        return Placement(str(path), True, where + f": encrypted (dm-crypt {crypt})")
    return Placement(str(path), False, where + f": NOT encrypted (block device {name})")


def database_dir(config) -> tuple[Path | None, str]:
    """The database's directory when it is on this machine, else (None, where it is)."""
    url = config.database_url
    if url.startswith("sqlite:///"):
        return Path(url[len("sqlite:///"):]).parent, ""
    home = native.can_start_native_postgres(config)
    if home is not None and (Path(home) / "postgres").is_dir():
        return Path(home) / "postgres", ""
    return None, f"on the database server {urlsplit(url).hostname} (check its volume there)"


def data_directories(config) -> list[tuple[str, Path | None, str]]:
    db_dir, elsewhere = database_dir(config)
    return [("database", db_dir, elsewhere),
            ("uploads", Path(config.data_dir) / "uploads", ""),
            ("backups", Path(config.backup_dir), ""),
            ("secrets", Path(config.secrets_dir), "")]


def check_volumes(config, **kw) -> list[Check]:
    checks = []
    for label, path, elsewhere in data_directories(config):
        name = f"encrypted {label}"
        if path is None:
            checks.append(Check(name, True, elsewhere))
            continue
        try:
            found = placement(path, **kw)
        except OSError as exc:
            checks.append(Check(name, True, f"{path}: cannot tell ({exc.strerror or exc})"))
            continue
        checks.append(Check(name, True, found.detail))
    return checks


def check_encryption(config) -> Check:
    """The data key opens the key ring; no rotation half done; plaintext files counted."""
    info = keys.describe(config)
    if not info["enabled"]:
        return Check("encryption", True, "off (LEAKHUB_DATA_KEY_FILE=off): uploads and secrets "
                                         "are stored as plaintext")
    if "error" in info:
        return Check("encryption", False, info["error"])
    files = dict(info["files"])
    plain = files.pop("plaintext", 0)
    detail = (f"data key {info['active']} (master {info['master']}, {info['key_file']}); "
              f"{sum(files.values())} file(s) encrypted")
    if plain:
        detail += f", {plain} still plaintext (run `leakctl keys encrypt-existing`)"
    if info["retiring"]:
        return Check("encryption", False, detail + "; a rotation is unfinished (run `leakctl "
                                                   "keys rotate` again)")
    return Check("encryption", True, detail)
