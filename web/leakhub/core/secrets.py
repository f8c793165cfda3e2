"""Secrets live as files (mode 0600) in LEAKHUB_SECRETS_DIR, generated on the customer's machine.

`ensure_all()` creates whatever is missing and never overwrites an existing file.

The secrets only the application reads (crypto.ENCRYPTED_SECRETS: session key, Keycloak
service client secret, backup identity, SMTP password, first admin) are written encrypted with
the installation's data key once its key ring exists (docs/encryption.md); plain files are still
read, so an installation from before encryption keeps working until `leakctl keys
encrypt-existing`.
"""
from __future__ import annotations

import datetime as dt
import os
import secrets as _random
from pathlib import Path
from types import SimpleNamespace

from pyrage import x25519

from . import crypto
from .config import ConfigError, get_config
from .errors import LeakhubError
from .files import atomic_write


def new_identity_text() -> str:
    """An age identity file (the format of age-keygen) for the secret `backup-identity`: the
    appliance's key for backups (leakhub.backups; `leakctl backup export-key`)."""
    ident = x25519.Identity.generate()
    created = dt.datetime.now(dt.UTC).replace(microsecond=0).isoformat()
    return (f"# created: {created}\n# public key: {ident.to_public()}\n{ident}")


# name -> generator. Passwords are URL-safe so they survive DSNs and env files unquoted.
GENERATED = {
    "session-key": lambda: _random.token_urlsafe(48),
    "postgres-superuser-password": lambda: _random.token_urlsafe(32),
    "postgres-leakhub-password": lambda: _random.token_urlsafe(32),
    "postgres-keycloak-password": lambda: _random.token_urlsafe(32),
    "keycloak-bootstrap-client-secret": lambda: _random.token_urlsafe(32),
    "keycloak-service-client-secret": lambda: _random.token_urlsafe(32),
    "backup-identity": new_identity_text,
}


class SecretMissing(LeakhubError):
    pass


def secret_path(secrets_dir: Path, name: str) -> Path:
    return Path(secrets_dir) / name


def crypto_config(secrets_dir: Path):
    """Whose data key protects `secrets_dir`: the running configuration's when it is its
    secrets directory, else the default key file beside it (<home>/keys/data-key)."""
    try:
        config = get_config()
        if Path(config.secrets_dir).resolve() == Path(secrets_dir).resolve():
            return config
    except ConfigError:
        pass
    return SimpleNamespace(secrets_dir=Path(secrets_dir), data_key_generate=True,
                           data_key_file=Path(secrets_dir).resolve().parent / "keys" / "data-key")


def decode_secret(secrets_dir: Path, name: str, text: str) -> str:
    """The plaintext of a secret file's text (legacy plain files as they are)."""
    if not text.startswith(crypto.ARMOR):
        return text.strip()
    where = secret_path(secrets_dir, name)
    blob = crypto.unarmor(text, where)
    return crypto.open_for(crypto_config(secrets_dir), blob, name, where).decode().strip()


def encode_secret(secrets_dir: Path, name: str, value: str) -> str:
    """The text to store for a secret: encrypted when it is one of the application's own and
    the installation has a key ring."""
    cfg = crypto_config(secrets_dir)
    if (name in crypto.ENCRYPTED_SECRETS and crypto.enabled(cfg)
            and crypto.keyring_path(cfg).exists()):
        return crypto.armor(crypto.seal_for(cfg, value.encode(), name))
    return value


def read_secret(secrets_dir: Path, name: str) -> str:
    path = secret_path(secrets_dir, name)
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise SecretMissing(
            f"secret {name!r} is missing in {secrets_dir} "
            "(run `leakctl secrets init` or the setup service)"
        ) from None
    return decode_secret(secrets_dir, name, text)


def write_secret(secrets_dir: Path, name: str, value: str, *, overwrite: bool = False) -> bool:
    """Write one secret (0600). Returns False when it existed and overwrite is off."""
    secrets_dir = Path(secrets_dir)
    secrets_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    path = secret_path(secrets_dir, name)
    if path.exists() and not overwrite:
        return False
    if not value.startswith(crypto.ARMOR):
        value = encode_secret(secrets_dir, name, value)
    atomic_write(path, (value + "\n").encode(), mode=0o600)
    return True


def ensure_all(secrets_dir: Path, extra: dict | None = None, *, config=None) -> list[str]:
    """Generate every missing secret; returns the names created (never the values). With
    `config` (first start: `leakctl secrets init`, setup, restore) the data key and key ring
    are made first when missing and allowed, so that the new secrets are written encrypted."""
    created = []
    if config is not None and crypto.enabled(config):
        Path(secrets_dir).mkdir(parents=True, exist_ok=True, mode=0o700)
        if not crypto.keyring_path(config).exists():
            crypto.keyring(config)
            created.append(crypto.KEYRING_NAME)
    generators = dict(GENERATED)
    generators.update(extra or {})
    for name, make in generators.items():
        if write_secret(secrets_dir, name, make()):
            created.append(name)
    try:
        os.chmod(secrets_dir, 0o700)
    except PermissionError:
        pass
    return created
