"""Who is signed in: Keycloak login (OIDC), server-side sessions, the user mirror."""
