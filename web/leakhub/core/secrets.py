"""Secrets live as files (mode 0600) in LEAKHUB_SECRETS_DIR, generated on the customer's machine.

`ensure_all()` creates whatever is missing and never overwrites an existing file.
"""
from __future__ import annotations

import datetime as dt
import os
import secrets as _random
from pathlib import Path

from pyrage import x25519

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


def read_secret(secrets_dir: Path, name: str) -> str:
    path = secret_path(secrets_dir, name)
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        raise SecretMissing(
            f"secret {name!r} is missing in {secrets_dir} "
            "(run `leakctl secrets init` or the setup service)"
        ) from None


def write_secret(secrets_dir: Path, name: str, value: str, *, overwrite: bool = False) -> bool:
    """Write one secret (0600). Returns False when it existed and overwrite is off."""
    secrets_dir = Path(secrets_dir)
    secrets_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    path = secret_path(secrets_dir, name)
    if path.exists() and not overwrite:
        return False
    atomic_write(path, (value + "\n").encode(), mode=0o600)
    return True


def ensure_all(secrets_dir: Path, extra: dict | None = None) -> list[str]:
    """Generate every missing secret; returns the names created (never the values)."""
    created = []
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
