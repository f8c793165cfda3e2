from __future__ import annotations

import peewee as pw
from flask_babel import lazy_gettext as _l

from ..core.db import OrgScoped, utcnow
from ..identity.models import User
from ..locations.models import Location
from ..orgs.models import Organization
from ..surveys.models import Survey

LEVELS = ("view", "edit", "admin")
LEVEL_LABELS = {"view": _l("view"), "edit": _l("view and edit"),
                "admin": _l("department administrator")}
MEMBER_SOURCES = ("manual", "directory")
ACTION_LABELS = {"view": _l("see"), "edit": _l("edit")}


class UserGroup(OrgScoped):
    """A department: users of one organization, given grants together. `kc_group` names a
    Keycloak group path ("/Maintenance"; LDAP groups arrive there through the realm's
    federation): membership then follows the `groups` claim at each sign-in."""

    organization = pw.ForeignKeyField(Organization, on_delete="CASCADE")
    name = pw.CharField(max_length=100)
    kc_group = pw.CharField(max_length=255, default="")
    created_at = pw.DateTimeField(default=utcnow)
    version = pw.IntegerField(default=1)

    AUDIT_TYPE = "group"

    class Meta:
        table_name = "user_group"
        indexes = ((("organization", "name"), True),)

    def __str__(self):
        return self.name


class UserGroupMember(OrgScoped):
    """User × group. `source`: "manual" (an administrator added the user) or "directory"
    (the sign-in's `groups` claim named the group's Keycloak group)."""

    organization = pw.ForeignKeyField(Organization, on_delete="CASCADE")
    group = pw.ForeignKeyField(UserGroup, backref="members", on_delete="CASCADE")
    user = pw.ForeignKeyField(User, backref="memberships", on_delete="CASCADE")
    source = pw.CharField(max_length=16, default="manual")
    created_at = pw.DateTimeField(default=utcnow)

    AUDIT_TYPE = "group_member"

    class Meta:
        table_name = "user_group_member"
        indexes = ((("group", "user"), True), (("organization", "user"), False))


class Grant(OrgScoped):
    """(User or group) × (location subtree or survey) × view/edit/admin, optionally until a
    date. Location grants inherit down the tree (materialized path). Level "admin" (only on
    a location) makes a department administrator: view and edit there, and users and grants
    managed within that subtree ("manage_users" in authz)."""

    organization = pw.ForeignKeyField(Organization, on_delete="CASCADE")
    user = pw.ForeignKeyField(User, null=True, backref="grants", on_delete="CASCADE")
    group = pw.ForeignKeyField(UserGroup, null=True, backref="grants", on_delete="CASCADE")
    location = pw.ForeignKeyField(Location, null=True, backref="grants", on_delete="CASCADE")
    survey = pw.ForeignKeyField(Survey, null=True, backref="grants", on_delete="CASCADE")
    level = pw.CharField(max_length=8, default="view")
    expires_at = pw.DateTimeField(null=True)
    note = pw.CharField(max_length=200, default="")
    created_at = pw.DateTimeField(default=utcnow)

    AUDIT_TYPE = "grant"

    class Meta:
        indexes = ((("organization", "user"), False), (("organization", "group"), False))
