from __future__ import annotations

import peewee as pw

from ..core.db import BaseModel, OrgScoped, utcnow
from ..orgs.models import Organization

ROLES = ("admin", "manager", "editor", "viewer", "external")


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
