"""The one place that builds Leakhub's Keycloak admin client from configuration."""
from __future__ import annotations

from ..core.secrets import read_secret
from .keycloak_admin import KeycloakAdmin


def admin_client(config) -> KeycloakAdmin:
    return KeycloakAdmin(
        config.keycloak_url,
        config.keycloak_service_client_id,
        read_secret(config.secrets_dir, "keycloak-service-client-secret"),
    )


def bootstrap(config) -> str:
    """First start: turn Keycloak's temporary bootstrap admin into Leakhub's service client."""
    return KeycloakAdmin.bootstrap_service_client(
        config.keycloak_url,
        bootstrap_client_id=config.keycloak_bootstrap_client_id,
        bootstrap_client_secret=read_secret(config.secrets_dir, "keycloak-bootstrap-client-secret"),
        service_client_id=config.keycloak_service_client_id,
        service_client_secret=read_secret(config.secrets_dir, "keycloak-service-client-secret"),
    )
