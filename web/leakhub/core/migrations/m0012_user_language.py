"""A language per user (issue 14): `user.language` is "en", "de" or NULL (follow the
organization's language, then the browser's). Kept in Leakhub and copied to the Keycloak
user's `locale` attribute, so Keycloak's own pages match."""


def up(db):
    db.execute_sql('ALTER TABLE "user" ADD COLUMN language VARCHAR(8)')
