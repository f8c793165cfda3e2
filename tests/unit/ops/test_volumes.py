"""`leakctl status`: is each data directory on a dm-crypt (LUKS) device? Detection against a
fake /proc/self/mountinfo and /sys tree."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from leakhub.core.config import Config
from leakhub.ops import volumes


def mkdev(sys_root: Path, name: str, majmin: str, uuid: str | None = None, slaves=()):
    base = sys_root / "class" / "block" / name
    base.mkdir(parents=True)
    (base / "dev").write_text(majmin + "\n")
    if uuid is not None:
        (base / "dm").mkdir()
        (base / "dm" / "uuid").write_text(uuid + "\n")
    if slaves:
        (base / "slaves").mkdir()
        for s in slaves:
            os.symlink(f"../../{s}", base / "slaves" / s)
    link_dir = sys_root / "dev" / "block"
    link_dir.mkdir(parents=True, exist_ok=True)
    os.symlink(f"../../class/block/{name}", link_dir / majmin)


@pytest.fixture
def fake(tmp_path):
    sys_root = tmp_path / "sys"
    mkdev(sys_root, "vda", "254:0")
    mkdev(sys_root, "vda2", "254:2")
    # /srv/luks: LUKS directly; /srv/lvm: LVM on LUKS (dm-2 → dm-1 → vda2); /: plain vda1
    mkdev(sys_root, "dm-1", "253:1", "CRYPT-LUKS2-0123456789abcdef-luks-data", slaves=["vda2"])
    mkdev(sys_root, "dm-2", "253:2", "LVM-abcdefgh", slaves=["dm-1"])
    mkdev(sys_root, "dm-3", "253:3", "LVM-plain", slaves=["vda"])
    mkdev(sys_root, "vda1", "254:1")
    dirs = {}
    for name in ("root", "luks", "lvm", "plain lv", "tmp"):
        dirs[name] = tmp_path / name
        dirs[name].mkdir()
    esc = str(dirs["plain lv"]).replace(" ", "\\040")
    mountinfo = "\n".join([
        "1 0 254:1 / / rw,relatime - ext4 /dev/vda1 rw",
        f"2 1 254:1 / {dirs['luks']} rw - ext4 /dev/vda1 rw",
        f"3 1 253:1 / {dirs['luks']} rw shared:5 - ext4 /dev/mapper/luks-data rw",  # over-mount
        f"4 1 253:2 /sub {dirs['lvm']} rw - xfs /dev/mapper/vg-data rw",
        f"5 1 253:3 / {esc} rw - ext4 /dev/mapper/vg-plain rw",
        f"6 1 0:40 / {dirs['tmp']} rw - tmpfs tmpfs rw",
    ]) + "\n"
    return sys_root, mountinfo, dirs


def where(fake, key, sub=""):
    sys_root, mountinfo, dirs = fake
    path = dirs[key] / sub if sub else dirs[key]
    path.mkdir(parents=True, exist_ok=True)
    return volumes.placement(path, mountinfo=mountinfo, sys_root=sys_root)


def test_luks_device_is_encrypted_and_the_over_mount_wins(fake):
    found = where(fake, "luks", "uploads/photos")
    assert found.encrypted is True and "dm-crypt dm-1" in found.detail


def test_lvm_on_luks_is_found_through_the_slaves(fake):
    found = where(fake, "lvm")
    assert found.encrypted is True and "dm-1" in found.detail


def test_plain_disk_and_plain_lvm_are_not_encrypted(fake):
    assert where(fake, "root").encrypted is False
    found = where(fake, "plain lv")
    assert found.encrypted is False and "NOT encrypted" in found.detail
    assert "mounted at" in found.detail and " lv" in found.detail   # \040 unescaped


def test_tmpfs_and_missing_dirs_are_not_judged(fake, tmp_path):
    tmp = where(fake, "tmp")
    assert tmp.encrypted is None and "in memory" in tmp.detail
    gone = volumes.placement(tmp_path / "nope", mountinfo=fake[1], sys_root=fake[0])
    assert gone.encrypted is None and "does not exist" in gone.detail


def test_device_found_by_dev_file_without_dev_block_link(fake):
    sys_root, mountinfo, dirs = fake
    os.unlink(sys_root / "dev" / "block" / "253:2")
    assert volumes.placement(dirs["lvm"], mountinfo=mountinfo,
                             sys_root=sys_root).encrypted is True


def test_slave_cycles_do_not_loop(tmp_path):
    sys_root = tmp_path / "sys"
    mkdev(sys_root, "dm-7", "253:7", "LVM-x", slaves=["dm-8"])
    mkdev(sys_root, "dm-8", "253:8", "LVM-y", slaves=["dm-7"])
    assert volumes.crypt_device("dm-7", sys_root) is None


def test_check_volumes_names_every_data_directory(fake, tmp_path):
    sys_root, mountinfo, dirs = fake
    cfg = Config.from_env({"LEAKHUB_HOME": str(dirs["luks"]), "LEAKHUB_TESTING": "1",
                           "LEAKHUB_BACKUP_DIR": str(dirs["root"] / "b"),
                           "LEAKHUB_SECRETS_DIR": str(dirs["tmp"] / "s"),
                           "DATABASE_URL": f"sqlite:///{dirs['lvm']}/db/leakhub.db"})
    for d in (cfg.data_dir / "uploads", cfg.backup_dir, cfg.secrets_dir, dirs["lvm"] / "db"):
        Path(d).mkdir(parents=True, exist_ok=True)
    checks = {c.name: c for c in volumes.check_volumes(cfg, mountinfo=mountinfo,
                                                       sys_root=sys_root)}
    assert set(checks) == {"encrypted database", "encrypted uploads", "encrypted backups",
                           "encrypted secrets"}
    assert "encrypted (dm-crypt" in checks["encrypted database"].detail
    assert "encrypted (dm-crypt" in checks["encrypted uploads"].detail
    assert "NOT encrypted" in checks["encrypted backups"].detail
    assert "in memory" in checks["encrypted secrets"].detail
    assert all(c.ok for c in checks.values())     # informational


def test_remote_postgres_is_reported_as_elsewhere(tmp_path):
    cfg = Config.from_env({"LEAKHUB_HOME": str(tmp_path), "LEAKHUB_TESTING": "1",
                           "DATABASE_URL": "postgresql://leakhub@db.internal:5432/leakhub"})
    path, elsewhere = volumes.database_dir(cfg)
    assert path is None and "db.internal" in elsewhere


def test_real_machine_does_not_crash(tmp_path):
    found = volumes.placement(tmp_path)
    assert found.encrypted in (True, False, None) and str(tmp_path) in found.detail
