"""Backups: lock, keys, inventory, create, verify, restore, rotation (see docs/architecture.md)."""
