"""This installation's age identity (the secret `backup-identity`), identity files given on
the command line, and the recipients every new archive is encrypted to."""
from __future__ import annotations

from pathlib import Path

from ..core import crypto
from ..core.secrets import decode_secret, read_secret
from . import archive
from .service import IDENTITY_SECRET, BackupError
from .settings import get_settings


def local_identity_text(config) -> str:
    return read_secret(config.secrets_dir, IDENTITY_SECRET)


def local_identities(config) -> list:
    try:
        return archive.parse_identities(local_identity_text(config))
    except Exception:
        return []


def load_identity_files(paths) -> list:
    found = []
    for p in paths or ():
        try:
            text = Path(p).read_text()
        except OSError as exc:
            raise BackupError(f"cannot read identity file {p}: {exc.strerror}") from None
        if text.startswith(crypto.ARMOR):
            # Another installation's encrypted `backup-identity` (env-copy passes the source's
            # file): opened with the data key beside its secrets directory (<home>/keys).
            try:
                text = decode_secret(Path(p).parent, Path(p).name, text)
            except crypto.DataKeyError as exc:
                raise BackupError(f"{p} is encrypted with another installation's data key "
                                  f"({exc}); export it there with `leakctl backup export-key`"
                                  ) from None
        idents = archive.parse_identities(text)
        if not idents:
            raise BackupError(
                f"{p} contains no age identity (a line starting with AGE-SECRET-KEY-)")
        found += idents
    return found


def recipients(config) -> list:
    idents = local_identities(config)
    if not idents:
        raise BackupError(f"the secret {IDENTITY_SECRET!r} is missing or invalid in "
                          f"{config.secrets_dir} (run `leakctl secrets init`)")
    keys = [idents[0].to_public()]
    keys += [archive.parse_recipient(r) for r in get_settings(config).recipients]
    return keys


def export_identity(config, *, public: bool = False) -> str:
    idents = local_identities(config)
    if not idents:
        raise BackupError(f"the secret {IDENTITY_SECRET!r} is missing in {config.secrets_dir}")
    if public:
        return "\n".join(str(i.to_public()) for i in idents) + "\n"
    return local_identity_text(config).strip() + "\n"
