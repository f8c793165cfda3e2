"""Offline capture (issue 18 item 1): client-generated ids for idempotent sync.

- `leak.client_id`: the UUID the tablet generated when the leak was recorded offline
  ("" for leaks made on the server). Unique per organization when set, so a repeated POST
  with the same id finds the existing leak instead of creating a duplicate.
- `photo.client_id`: the same for each queued photo (unique per organization when set).
"""


def up(db):
    db.execute_sql("ALTER TABLE leak ADD COLUMN client_id VARCHAR(36) NOT NULL DEFAULT ''")
    db.execute_sql("ALTER TABLE photo ADD COLUMN client_id VARCHAR(36) NOT NULL DEFAULT ''")
    db.execute_sql("CREATE UNIQUE INDEX leak_org_client_id ON leak (organization_id, client_id)"
                   " WHERE client_id <> ''")
    db.execute_sql("CREATE UNIQUE INDEX photo_org_client_id ON photo (organization_id, client_id)"
                   " WHERE client_id <> ''")
