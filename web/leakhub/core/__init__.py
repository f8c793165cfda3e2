"""Cross-cutting plumbing: configuration, database, migrations, secrets, logging, errors."""
