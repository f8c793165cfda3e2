"""Leak detectors and plant hubs: one Keycloak client (client credentials) per device."""
