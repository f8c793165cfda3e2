"""The JSON API `/api/v1`: Keycloak bearer tokens, the same services and authorization as the UI."""
