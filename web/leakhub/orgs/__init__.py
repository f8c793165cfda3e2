"""Organizations (tenants). Each one is a Keycloak realm of the same slug."""
