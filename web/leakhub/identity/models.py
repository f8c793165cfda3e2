from __future__ import annotations

import peewee as pw
from flask_babel import lazy_gettext as _l

from ..core.db import BaseModel, OrgScoped, utcnow
from ..orgs.models import Organization

ROLES = ("admin", "manager", "editor", "viewer", "external")
ROLE_LABELS = {
    "admin": _l("Administrator"),
    "manager": _l("Manager"),
    "editor": _l("Editor"),
    "viewer": _l("Viewer"),
    "external": _l("External"),
}
ROLE_HINTS = {
    "admin": _l("everything, including users, grants, settings and backups"),
    "manager": _l("all data and the audit log, regardless of the security mode"),
    "editor": _l("reads and writes data as the security mode and grants allow"),
    "viewer": _l("reads data as the security mode and grants allow; never writes"),
    "external": _l("only what grants give (e.g. an external auditor)"),
}


class User(OrgScoped):
    """Mirror of a Keycloak user of one realm. Authorization reads role/enabled from here."""

    organization = pw.ForeignKeyField(Organization, backref="users", on_delete="CASCADE")
    sub = pw.CharField(max_length=64)
    email = pw.CharField(max_length=254)
    name = pw.CharField(max_length=200, default="")
    # None: signed in without an invitation; waits for an administrator.
    role = pw.CharField(max_length=16, null=True)
    enabled = pw.BooleanField(default=True)
    created_at = pw.DateTimeField(default=utcnow)
    last_login_at = pw.DateTimeField(null=True)
    # "en" / "de", or None: the organization's language (migration 0012).
    language = pw.CharField(max_length=8, null=True)
    # Set when the user was erased (GDPR art. 17, migration 0013): the row stays as the
    # pseudonym "former user #<id>" that leaks and the audit trail point at.
    erased_at = pw.DateTimeField(null=True)

    class Meta:
        indexes = ((("organization", "sub"), True),)

    @property
    def display_name(self) -> str:
        return self.name or self.email


class WebSession(BaseModel):
    """Server-side session. The cookie holds a random token; the row is keyed by its SHA-256."""

    id = pw.CharField(max_length=64, primary_key=True)
    organization = pw.ForeignKeyField(Organization, null=True, on_delete="CASCADE")
    user = pw.ForeignKeyField(User, null=True, backref="sessions", on_delete="CASCADE")
    data = pw.TextField(default="{}")
    created_at = pw.DateTimeField(default=utcnow)
    last_seen_at = pw.DateTimeField(default=utcnow, index=True)
    expires_at = pw.DateTimeField(index=True)
    kc_sid = pw.CharField(max_length=64, null=True, index=True)
    id_token = pw.TextField(null=True)
    ip = pw.CharField(max_length=45, null=True)
    user_agent = pw.CharField(max_length=300, null=True)
