"""Leakhub: on-premise management of compressed-air leak surveys."""

__version__ = "0.1.0"
