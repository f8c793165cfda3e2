"""The start page and the health endpoints."""
