"""Leakhub's host tooling: what runs on the machine around the application, never inside it.

- the native stack (`scripts/stack.py`): supervisor, with process control for PostgreSQL,
  Keycloak and Caddy, the home's layout and state files;
- the updater (`scripts/leakctl update`) and env-copy (`scripts/leakctl env-copy`).

Standard library only, and never imports the application (`leakhub`): it runs with the host's
python3 on a Docker host, drives releases other than its own, and the app imports it (never
the other way round). tests/unit/test_host_package.py holds it to that.
"""
