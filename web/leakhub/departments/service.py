"""Departments (groups) of an organization: create, rename, delete, members, and the
synchronisation of directory-mapped groups at sign-in.

Managed by the organization's administrators (authz "manage"); grants to groups go through
authz.grants (`add_grant(actor, group=...)`). Every change goes through the audit writer:
create/update/delete of the group and of each membership, plus group.member_added /
group.member_removed events naming the user. Authorization reads memberships from the
database on every request (authz `_grant_holder`), so removing a member takes effect at the
member's next request.
"""
from __future__ import annotations

import peewee as pw
from flask_babel import gettext as _

from .. import authz
from ..audit import writer
from ..authz.models import Grant, UserGroup, UserGroupMember
from ..core.db import database
from ..core.validation import Fields, ValidationError
from ..identity.models import User

SYNC_LABEL = "directory sync"


def list_groups(actor: authz.Actor) -> list[UserGroup]:
    authz.require(actor, "manage")
    return list(authz.scope(actor, UserGroup, "manage").order_by(UserGroup.name))


def member_counts(actor: authz.Actor) -> dict[int, int]:
    rows = (authz.scope(actor, UserGroupMember, "manage")
            .select(UserGroupMember.group, pw.fn.COUNT(UserGroupMember.id).alias("n"))
            .group_by(UserGroupMember.group).tuples())
    return {group_id: n for group_id, n in rows}


def get_group(actor: authz.Actor, group_id) -> UserGroup:
    return authz.get_or_404(actor, UserGroup, group_id, "manage")


def group_by_name(actor: authz.Actor, name: str) -> UserGroup:
    group = (authz.scope(actor, UserGroup, "manage")
             .where(pw.fn.LOWER(UserGroup.name) == (name or "").strip().lower()).first())
    if group is None:
        raise ValidationError({"group": _("There is no group named %(name)s.", name=name)})
    return group


def _validate(actor: authz.Actor, name, kc_group, group: UserGroup | None = None):
    f = Fields({"name": name, "kc_group": kc_group})
    name = f.text("name", max_length=100, required=True)
    kc_group = f.text("kc_group", max_length=255) or ""
    if kc_group and not kc_group.startswith("/"):
        f.error("kc_group", _("A directory group is a path that starts with /, "
                              "e.g. /Maintenance."))
    f.check()
    others = authz.scope(actor, UserGroup, "manage").where(
        pw.fn.LOWER(UserGroup.name) == name.lower())
    if group is not None:
        others = others.where(UserGroup.id != group.id)
    if others.exists():
        raise ValidationError({"name": _("A group with this name exists already.")})
    return name, kc_group


def create_group(actor: authz.Actor, *, name: str, kc_group: str = "") -> UserGroup:
    authz.require(actor, "manage")
    name, kc_group = _validate(actor, name, kc_group)
    with database.atomic():
        return writer.create(actor, UserGroup, permission="manage", name=name,
                             kc_group=kc_group)


def update_group(actor: authz.Actor, group: UserGroup, *, name=None, kc_group=None,
                 version: int | None = None) -> UserGroup:
    """Rename, or change the mapped directory group (members from the directory follow at
    their next sign-in)."""
    authz.require(actor, "manage", group)
    name, kc_group = _validate(actor, group.name if name is None else name,
                               group.kc_group if kc_group is None else kc_group, group)
    return writer.update(actor, group, {"name": name, "kc_group": kc_group},
                         expected_version=version, permission="manage")


def delete_group(actor: authz.Actor, group: UserGroup) -> None:
    """Deletes the group with its memberships and grants (each audited)."""
    authz.require(actor, "manage", group)
    with database.atomic():
        for grant in Grant.select().where(Grant.group == group):
            writer.delete(actor, grant, permission="manage")
        for member in UserGroupMember.select().where(UserGroupMember.group == group):
            writer.delete(actor, member, permission="manage")
        writer.delete(actor, group, permission="manage")


def members(actor: authz.Actor, group: UserGroup) -> list[UserGroupMember]:
    authz.require(actor, "manage", group)
    return list(authz.scope(actor, UserGroupMember, "manage")
                .select(UserGroupMember, User).join(User)
                .where(UserGroupMember.group == group).order_by(User.email))


def groups_of(actor: authz.Actor, user: User) -> list[UserGroupMember]:
    """The user's memberships (for the user page)."""
    return list(authz.scope(actor, UserGroupMember, "manage_users")
                .select(UserGroupMember, UserGroup).join(UserGroup)
                .where(UserGroupMember.user == user).order_by(UserGroup.name))


def _member_details(group: UserGroup, user: User, source: str) -> dict:
    return {"group": group.name, "user": user.email, "source": source}


def _add(actor: authz.Actor, group: UserGroup, user: User, source: str) -> UserGroupMember:
    member = writer.create(actor, UserGroupMember, permission="manage", group=group, user=user,
                           source=source)
    writer.event(actor, "group.member_added", entity=group,
                 details=_member_details(group, user, source))
    return member


def _remove(actor: authz.Actor, member: UserGroupMember, group: UserGroup, user: User) -> None:
    writer.delete(actor, member, permission="manage")
    writer.event(actor, "group.member_removed", entity=group,
                 details=_member_details(group, user, member.source))


def add_member(actor: authz.Actor, group: UserGroup, user: User) -> UserGroupMember:
    authz.require(actor, "manage", group)
    authz.require(actor, "manage", user)
    if user.erased_at is not None:
        raise ValidationError({"user": _("This user was erased.")})
    exists = UserGroupMember.select().where((UserGroupMember.group == group)
                                            & (UserGroupMember.user == user)).exists()
    if exists:
        raise ValidationError({"user": _("The user is a member of this group already.")})
    with database.atomic():
        return _add(actor, group, user, "manual")


def remove_member(actor: authz.Actor, group: UserGroup, user: User) -> None:
    """Immediate: the member's next request is authorized without the group's grants."""
    authz.require(actor, "manage", group)
    member = UserGroupMember.get_or_none((UserGroupMember.group == group)
                                         & (UserGroupMember.user == user))
    if member is None:
        raise ValidationError({"user": _("The user is not a member of this group.")})
    with database.atomic():
        _remove(actor, member, group, user)


def sync_directory_groups(user: User, claim_groups) -> tuple[list[str], list[str]]:
    """At sign-in: the user's memberships in directory-mapped groups follow the token's
    `groups` claim (Keycloak group paths; LDAP groups through the realm's group mapper).
    Adds memberships (source "directory") for mapped groups named in the claim and removes
    directory memberships of mapped groups no longer named; memberships added by hand stay.
    Audited as the "directory sync" system actor. Returns (added, removed) group names."""
    if claim_groups is None:
        return [], []
    if isinstance(claim_groups, str):
        claim_groups = [claim_groups]
    names = {str(g).strip() for g in claim_groups if str(g).strip()}
    # Keycloak sends full paths ("/Maintenance") or bare names depending on the mapper.
    names |= {"/" + n for n in names if not n.startswith("/")}
    org = user.organization
    actor = authz.Actor.system(org, label=SYNC_LABEL)
    mapped = list(UserGroup.select().where((UserGroup.organization == org)
                                           & (UserGroup.kc_group != "")))
    current = {m.group_id: m for m in UserGroupMember.select().where(
        (UserGroupMember.organization == org) & (UserGroupMember.user == user))}
    added, removed = [], []
    with database.atomic():
        for group in mapped:
            member = current.get(group.id)
            wanted = group.kc_group in names
            if wanted and member is None:
                _add(actor, group, user, "directory")
                added.append(group.name)
            elif not wanted and member is not None and member.source == "directory":
                _remove(actor, member, group, user)
                removed.append(group.name)
    return added, removed
