from __future__ import annotations

import peewee as pw
from flask_babel import lazy_gettext as _l

from ..core.db import BaseModel, utcnow

SECURITY_MODES = {
    1: "everybody reads and writes all data",
    2: "everybody reads all data, writes only where granted",
    3: "reads and writes only where granted",
}
# The wording of SECURITY_MODES, translatable.
MODE_LABELS = {
    1: _l("everybody reads and writes all data"),
    2: _l("everybody reads all data, writes only where granted"),
    3: _l("reads and writes only where granted"),
}
MODE_HINTS = {
    1: _l("Editors create and change every leak, viewers read everything. Grants matter only "
          "for external users."),
    2: _l("Editors and viewers read everything; editors change only locations or surveys they "
          "were granted with level “edit”."),
    3: _l("Editors and viewers see only the locations and surveys they were granted. "
          "Administrators and managers always see everything."),
}

assert set(MODE_LABELS) == set(SECURITY_MODES)

# The languages of the user interface (an organization chooses one).
LANGUAGES = ("en", "de")
LANGUAGE_LABELS = {"en": "English", "de": "Deutsch"}

# The organization a browser last signed in to (set by the sign-in page, read by the security
# events when a session expired).
ORG_COOKIE = "leakhub_org"


class Organization(BaseModel):
    slug = pw.CharField(max_length=40, unique=True)
    name = pw.CharField(max_length=200)
    timezone = pw.CharField(max_length=64, default="Europe/Berlin")
    language = pw.CharField(max_length=8, default="en")
    security_mode = pw.SmallIntegerField(default=1)
    # The confidential OIDC client's secret for this realm. Kept in the database (not the
    # secrets volume) so every web replica and a restored backup have it; never logged.
    oidc_client_secret = pw.CharField(max_length=128)
    created_at = pw.DateTimeField(default=utcnow)
    # After 3 failed sign-ins: False = locked for a growing wait (Keycloak's temporary
    # lock-out), True = locked until an administrator unlocks it or the password is reset.
    permanent_lockout = pw.BooleanField(default=False)
    # The review rules that profile staff ("unusual hours", "new network"): off for new
    # organizations (works councils); organizations older than migration 0013 keep them on.
    profiling_rules = pw.BooleanField(default=False)
    # Token settings (migration 0020), applied to the realm by orgs.tokens: access-token
    # lifetime, longest session, "keep me signed in" and its longest session.
    access_token_minutes = pw.IntegerField(default=5)
    session_hours = pw.IntegerField(default=12)
    remember_me = pw.BooleanField(default=False)
    remember_me_days = pw.IntegerField(default=14)

    def __str__(self):
        return self.slug
