"""Typed configuration, read once from the environment at start.

Every variable is listed in README.md ("Configuration"). Secrets are never passed through
the environment: they live as files (mode 0600) in LEAKHUB_SECRETS_DIR.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from .errors import LeakhubError


class ConfigError(LeakhubError):
    """A setting is missing or malformed; the message names the variable."""


def _home() -> Path:
    default = Path(__file__).resolve().parents[3] / "var"
    return Path(os.environ.get("LEAKHUB_HOME", default))


def _int(env, name, default):
    raw = env.get(name)
    if raw in (None, ""):
        return default
    try:
        return int(raw)
    except ValueError:
        raise ConfigError(f"{name} must be a whole number, got {raw!r}") from None


def _bool(env, name, default):
    raw = env.get(name)
    if raw in (None, ""):
        return default
    if raw.lower() in ("1", "true", "yes", "on"):
        return True
    if raw.lower() in ("0", "false", "no", "off"):
        return False
    raise ConfigError(f"{name} must be true or false, got {raw!r}")


@dataclass(frozen=True)
class SmtpConfig:
    """Outgoing mail (invitations through Keycloak, the security digest). The password is
    the secret file `smtp-password`, never a variable."""

    host: str
    port: int
    user: str
    sender: str
    sender_name: str
    starttls: bool
    ssl: bool


def smtp_from_env(env, public_url: str) -> SmtpConfig | None:
    """The one reading of LEAKHUB_SMTP_*; None when LEAKHUB_SMTP_HOST is empty."""
    host = (env.get("LEAKHUB_SMTP_HOST") or "").strip()
    if not host:
        return None
    port = _int(env, "LEAKHUB_SMTP_PORT", 587)
    if not 1 <= port <= 65535:
        raise ConfigError(f"LEAKHUB_SMTP_PORT must be a port number, got {port}")
    sender = (env.get("LEAKHUB_SMTP_FROM") or "").strip() or \
        f"leakhub@{urlsplit(public_url).hostname or 'localhost'}"
    if "@" not in sender or sender.startswith("@") or sender.endswith("@"):
        raise ConfigError(f"LEAKHUB_SMTP_FROM must be an e-mail address, got {sender!r}")
    return SmtpConfig(host=host, port=port, user=(env.get("LEAKHUB_SMTP_USER") or "").strip(),
                      sender=sender,
                      sender_name=(env.get("LEAKHUB_SMTP_FROM_NAME") or "Leakhub").strip(),
                      starttls=_bool(env, "LEAKHUB_SMTP_STARTTLS", True),
                      ssl=_bool(env, "LEAKHUB_SMTP_SSL", False))


SLUG_RE = re.compile(r"^[a-z][a-z0-9-]{1,38}[a-z0-9]$")

# Caddy's `private_ranges` shorthand, so that one LEAKHUB_ADMIN_ALLOW value means the same
# thing to Caddy and to the app.
PRIVATE_RANGES = ("192.168.0.0/16", "172.16.0.0/12", "10.0.0.0/8", "127.0.0.1/8", "fd00::/8",
                  "::1/128")


def _path_or_none(value):
    return Path(value) if value else None


def parse_networks(value: str, name: str) -> tuple:
    """Space- or comma-separated CIDR ranges or addresses (and `private_ranges`), as Caddy's
    remote_ip takes them; () for an empty value."""
    import ipaddress

    networks = []
    for token in (value or "").replace(",", " ").split():
        if token == "private_ranges":
            networks += [ipaddress.ip_network(r, strict=False) for r in PRIVATE_RANGES]
            continue
        try:
            networks.append(ipaddress.ip_network(token, strict=False))
        except ValueError:
            raise ConfigError(f"{name}: {token!r} is not an IP address or CIDR range") from None
    return tuple(networks)


def _data_key_file(env, home: Path) -> Path | None:
    raw = (env.get("LEAKHUB_DATA_KEY_FILE") or "").strip()
    if raw.lower() == "off":
        return None
    if raw and not raw.startswith("/"):
        raise ConfigError(f"LEAKHUB_DATA_KEY_FILE must be an absolute path or off, got {raw!r}")
    return Path(raw) if raw else home / "keys" / "data-key"


@dataclass(frozen=True)
class Config:
    public_url: str
    internal_url: str
    database_url: str
    data_dir: Path
    secrets_dir: Path
    backup_dir: Path
    log_dir: Path | None
    keycloak_url: str
    keycloak_service_client_id: str
    keycloak_bootstrap_client_id: str
    realm_template: Path
    first_org_slug: str
    first_org_name: str
    first_admin_email: str
    session_idle_minutes: int
    session_max_hours: int
    max_upload_mb: int
    log_level: str
    tls: str
    caddy_data_dir: Path
    smtp: SmtpConfig | None = None
    testing: bool = False
    extra: dict = field(default_factory=dict)
    # Operations (ops/): the worker's /metrics address ("off": none), the directory where the
    # web's processes leave their request counters, and the networks that may open the admin
    # pages (empty: no app-side restriction; Caddy applies the same variable to Keycloak).
    metrics_bind: str = "127.0.0.1:9464"
    web_metrics_dir: Path | None = None
    admin_allow: tuple = ()
    # Encryption at rest (core/crypto.py, docs/encryption.md): the master key file (None: off)
    # and whether a missing one may be generated on first start.
    data_key_file: Path | None = None
    data_key_generate: bool = True

    @property
    def keycloak_public_url(self) -> str:
        return self.public_url + "/auth"

    def issuer_for(self, slug: str) -> str:
        """The `iss` Keycloak puts into tokens: always the public HTTPS URL."""
        return f"{self.keycloak_public_url}/realms/{slug}"

    def keycloak_internal_realm_url(self, slug: str) -> str:
        return f"{self.keycloak_url}/realms/{slug}"

    @property
    def secure_cookies(self) -> bool:
        return self.public_url.startswith("https://")

    @classmethod
    def from_env(cls, env: dict | None = None) -> Config:
        env = dict(os.environ if env is None else env)
        home = Path(env.get("LEAKHUB_HOME") or _home())
        public_url = env.get("LEAKHUB_PUBLIC_URL", "https://localhost:8443").rstrip("/")
        parts = urlsplit(public_url)
        if (parts.scheme not in ("https", "http") or not parts.hostname
                or parts.path not in ("", "/")):
            raise ConfigError(
                "LEAKHUB_PUBLIC_URL must be an origin like https://leakhub.example.com, "
                f"got {public_url!r}"
            )
        data_dir = Path(env.get("LEAKHUB_DATA_DIR") or home / "data")
        database_url = env.get("DATABASE_URL") or f"sqlite:///{data_dir / 'leakhub.db'}"
        if not database_url.startswith(("sqlite:///", "postgresql://", "postgres://")):
            raise ConfigError("DATABASE_URL must start with sqlite:/// or postgresql://")
        log_dir = env.get("LEAKHUB_LOG_DIR")
        repo_template = Path(__file__).resolve().parents[3] / "compose" / "realm-template.json"
        slug = env.get("LEAKHUB_ORG_SLUG", "main")
        if slug and not SLUG_RE.match(slug):
            raise ConfigError(
                "LEAKHUB_ORG_SLUG must be 3-40 lowercase letters, digits or '-', "
                "starting with a letter"
            )
        return cls(
            public_url=public_url,
            internal_url=(env.get("LEAKHUB_INTERNAL_URL") or public_url).rstrip("/"),
            database_url=database_url,
            data_dir=data_dir,
            secrets_dir=Path(env.get("LEAKHUB_SECRETS_DIR") or home / "secrets"),
            backup_dir=Path(env.get("LEAKHUB_BACKUP_DIR") or home / "backups"),
            log_dir=Path(log_dir) if log_dir else None,
            keycloak_url=env.get("KEYCLOAK_URL", "http://127.0.0.1:8180/auth").rstrip("/"),
            keycloak_service_client_id=env.get("LEAKHUB_KEYCLOAK_CLIENT_ID", "leakhub-service"),
            keycloak_bootstrap_client_id=env.get("KC_BOOTSTRAP_ADMIN_CLIENT_ID",
                                                 "leakhub-bootstrap"),
            realm_template=Path(env.get("LEAKHUB_REALM_TEMPLATE") or repo_template),
            first_org_slug=slug,
            first_org_name=env.get("LEAKHUB_ORG_NAME", "My organization"),
            first_admin_email=env.get("LEAKHUB_ADMIN_EMAIL", "admin@example.com"),
            session_idle_minutes=_int(env, "LEAKHUB_SESSION_IDLE_MINUTES", 30),
            session_max_hours=_int(env, "LEAKHUB_SESSION_MAX_HOURS", 12),
            max_upload_mb=_int(env, "LEAKHUB_MAX_UPLOAD_MB", 20),
            log_level=env.get("LEAKHUB_LOG_LEVEL", "INFO").upper(),
            tls=env.get("LEAKHUB_TLS", "internal").strip() or "internal",
            caddy_data_dir=Path(env.get("LEAKHUB_CADDY_DATA_DIR") or home / "caddy" / "caddy"),
            smtp=smtp_from_env(env, public_url),
            testing=_bool(env, "LEAKHUB_TESTING", False),
            metrics_bind=(env.get("LEAKHUB_METRICS_BIND") or "127.0.0.1:9464").strip(),
            web_metrics_dir=_path_or_none(env.get("LEAKHUB_WEB_METRICS_DIR")
                                          or env.get("PROMETHEUS_MULTIPROC_DIR")),
            admin_allow=parse_networks(env.get("LEAKHUB_ADMIN_ALLOW", ""), "LEAKHUB_ADMIN_ALLOW"),
            data_key_file=_data_key_file(env, home),
            data_key_generate=_bool(env, "LEAKHUB_DATA_KEY_GENERATE", True),
        )


_config: Config | None = None


def get_config() -> Config:
    global _config
    if _config is None:
        _config = Config.from_env()
    return _config


def set_config(config: Config | None) -> None:
    """Tests and the app factory install an explicit config."""
    global _config
    _config = config
