"""First start of an installation: `leakctl setup` (the compose `setup` service)."""
