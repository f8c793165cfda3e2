"""Token settings per organization (issue 15 part 7), applied to the organization's realm.

- `organization.access_token_minutes`: lifetime of an access token (1–15 min, default 5,
  the realm template's 300 s).
- `organization.session_hours`: longest sign-in session without "keep me signed in"
  (1–24 h, default 12, the template's 43200 s).
- `organization.remember_me`: Keycloak's "Remember me" on the sign-in page (default off).
- `organization.remember_me_days`: longest session with "keep me signed in" (1–30 days,
  default 14).
"""


def up(db):
    db.execute_sql("ALTER TABLE organization ADD COLUMN access_token_minutes INTEGER "
                   "NOT NULL DEFAULT 5")
    db.execute_sql("ALTER TABLE organization ADD COLUMN session_hours INTEGER "
                   "NOT NULL DEFAULT 12")
    db.execute_sql("ALTER TABLE organization ADD COLUMN remember_me BOOLEAN "
                   "NOT NULL DEFAULT FALSE")
    db.execute_sql("ALTER TABLE organization ADD COLUMN remember_me_days INTEGER "
                   "NOT NULL DEFAULT 14")
