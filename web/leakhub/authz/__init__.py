"""Authorization: the one decision point and the one query filter (DESIGN §3.2–3.3).

Every view, API endpoint, export, report and leakctl command asks here:
- `scope(actor, Model, action)` — the SELECT that limits rows to the actor's organization
  and to what the actor may `action` (filtering in SQL, never in Python);
- `get_or_404(actor, Model, id, action)` — one row, or 404 when it belongs to another
  organization or the actor may not see it (existence is not leaked);
- `require(actor, action, obj)` / `can(...)` — a yes/no on one object or on a model;
- `require_target(...)` / `require_move(...)` — a write that points a reference (a leak's
  location or survey, a survey's scope, a location's parent, an ingested or imported leak's
  location and survey) at a row needs the right there too, not only on the row it changes.
Decided from the database on every request (the Actor is rebuilt per request).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import peewee as pw
from flask_babel import gettext as _
from werkzeug.exceptions import Forbidden, NotFound

from ..core.db import database, is_postgres, utcnow
from ..core.validation import ValidationError
from ..identity.models import User
from ..locations.models import Location
from ..orgs.models import Organization
from .links import link_for
from .models import Grant, UserGroupMember

# The most each role may do on organization data; `unrestricted()` and grants then say on
# which rows. `external` reaches rows only through grants. "manage" covers settings, users,
# grants and backups; "audit" the organization-wide audit log. "manage_users" is the part of
# "manage" that a department administrator (a grant of level "admin" on a location) holds
# within his subtree: users there, and their grants there (see `delegated_admin`).
ROLE_ACTIONS = {
    "admin": {"view", "create", "edit", "delete", "report", "audit", "manage", "manage_users"},
    "manager": {"view", "create", "edit", "delete", "report", "audit"},
    "editor": {"view", "create", "edit", "delete", "report"},
    "viewer": {"view", "report"},
    "external": {"view", "create", "edit", "report"},
    "device": {"create", "ingest"},
    "system": {"view", "create", "edit", "delete", "report", "audit", "manage", "manage_users",
               "ingest"},
}
# Roles whose holder a grant of level "admin" makes a department administrator; the roles
# such an administrator may give (never admin or manager: no escalation).
DELEGABLE_ROLES = ("manager", "editor")
DELEGATED_ROLE_CHOICES = ("editor", "viewer", "external")


@dataclass
class Actor:
    """Who acts: a signed-in user, a device, or the system (CLI, worker). Services take it
    explicitly so the web, the API, the worker and leakctl share the same code paths."""

    organization: Organization
    kind: str = "user"  # user | device | system
    user: User | None = None
    device: object | None = None
    ip: str | None = None
    request_id: str | None = None
    label: str = ""
    extra: dict = field(default_factory=dict)
    # The grant subqueries as compiled SQL (see `_compiled`); not part of who acts.
    subqueries: dict = field(default_factory=dict, repr=False, compare=False)

    @property
    def role(self) -> str | None:
        if self.kind == "user":
            return self.user.role if self.user is not None and self.user.enabled else None
        return self.kind

    @property
    def display(self) -> str:
        if self.label:
            return self.label
        if self.user is not None:
            return self.user.email
        return self.kind

    @classmethod
    def system(cls, organization, label="system", **kw) -> Actor:
        return cls(organization=organization, kind="system", label=label, **kw)


def role_allows(actor: Actor, action: str) -> bool:
    if action in ROLE_ACTIONS.get(actor.role or "", set()):
        return True
    return action == "manage_users" and delegated_admin(actor)


def delegated_admin(actor: Actor) -> bool:
    """A department administrator: role manager or editor and an active grant of level
    "admin" (own or through a group) on some location. Manages users and grants only in the
    granted subtrees (`scope(..., "manage_users")`), never the organization's settings."""
    if actor.kind != "user" or actor.user is None or actor.role not in DELEGABLE_ROLES:
        return False
    return Grant.select().where(_grant_filter(actor, "manage_users")
                                & Grant.location.is_null(False)).exists()


def org_wide_admin(actor: Actor) -> bool:
    """Manages users and grants everywhere (role admin, or the system)."""
    return "manage_users" in ROLE_ACTIONS.get(actor.role or "", set())


UNRESTRICTED_ROLES = {"admin", "manager", "system"}
READ_ACTIONS = {"view", "report"}


def unrestricted(actor: Actor, action: str) -> bool:
    """True when the actor's role and the organization's security mode allow `action` on
    every row; False when only granted rows are allowed (DESIGN §3.3, issue "access control"):
    mode 1 everybody reads and writes all, mode 2 everybody reads all and writes where
    granted, mode 3 reads and writes only where granted. Roles cap what grants give."""
    role = actor.role
    if action not in ROLE_ACTIONS.get(role or "", set()):
        return False  # given by a grant only (a department administrator's "manage_users")
    if role in UNRESTRICTED_ROLES:
        return True
    if role == "device":
        return action == "create"  # a device files findings anywhere in its organization
    if role == "external" or role is None:
        return False
    mode = actor.organization.security_mode
    if action in READ_ACTIONS:
        return mode in (1, 2)
    return mode == 1


def _tenant_condition(actor: Actor, model):
    if model is Organization:
        return Organization.id == actor.organization.id
    return model.organization == actor.organization


def _false():
    return pw.SQL("1 = 0")


def _grant_levels(action: str) -> tuple:
    if action == "manage_users":
        return ("admin",)
    return ("view", "edit", "admin") if action in READ_ACTIONS else ("edit", "admin")


def _grant_holder(actor: Actor):
    """The actor's own grants and those of every group the actor is a member of (read from
    the database: leaving a group takes effect at the next request)."""
    groups = (UserGroupMember.select(UserGroupMember.group)
              .where((UserGroupMember.organization == actor.organization)
                     & (UserGroupMember.user == actor.user)))
    return (Grant.user == actor.user) | Grant.group.in_(groups)


def _grant_filter(actor: Actor, action: str):
    """The actor's active grants (direct or through a group) of a level that gives `action`.
    The one place grants become rights: scope, can, effective access all use it."""
    return ((Grant.organization == actor.organization) & _grant_holder(actor)
            & Grant.level.in_(_grant_levels(action))
            & (Grant.expires_at.is_null() | (Grant.expires_at > utcnow())))


def _admin_location_ids(actor: Actor):
    return _granted_location_ids(actor, "manage_users")


def _delegated_condition(actor: Actor, model):
    """What a department administrator manages ("manage_users"): users of a delegable role
    holding a grant inside his subtrees or no grant at all yet (whom he invites or assigns),
    and the user grants inside his subtrees.
    Group grants, survey grants and anything of other subtrees stay out of reach."""
    inside = Grant.location.in_(_admin_location_ids(actor))
    if model is Grant:
        return Grant.user.is_null(False) & (Grant.user != actor.user.id) & inside
    if model is User:
        holders = Grant.select(Grant.user).where((Grant.organization == actor.organization)
                                                 & Grant.user.is_null(False) & inside)
        any_grant = Grant.select(Grant.user).where((Grant.organization == actor.organization)
                                                   & Grant.user.is_null(False))
        return (User.role.in_(DELEGATED_ROLE_CHOICES)
                & (User.id.in_(holders) | User.id.not_in(any_grant))
                & (User.id != actor.user.id))
    return None


def _granted_location_ids(actor: Actor, action: str):
    """Ids of every location inside a subtree granted to the actor (SQL subquery). The
    materialized path makes inheritance one LIKE: '/12/34/' LIKE '/12/%' (with a range
    condition on the path in front of it for the index)."""
    granted = Location.alias("granted")
    # A literal LIKE keyword: peewee maps its LIKE operator to GLOB on SQLite.
    inside = pw.NodeList((Location.path, pw.SQL("LIKE"), granted.path.concat("%")))
    # The same subtree as a range of paths (they hold only digits and "/", all below "~"):
    # an index range scan per grant instead of LIKE on every (location, grant) pair. Byte
    # order: PostgreSQL compares in the "C" collation (its own index, migration 0010).
    path = (pw.NodeList((Location.path, pw.SQL('COLLATE "C"'))) if is_postgres()
            else Location.path)
    inside = (path >= granted.path) & (path < granted.path.concat("~")) & inside
    return (Location.select(Location.id)
            .join(granted, on=inside)
            .join(Grant, on=(Grant.location == granted.id))
            .where((Location.organization == actor.organization) & _grant_filter(actor, action)))


def _granted_survey_ids(actor: Actor, action: str):
    return Grant.select(Grant.survey).where(_grant_filter(actor, action)
                                            & Grant.survey.is_null(False))


def _covered_by_grants(actor: Actor, link, action: str):
    """Ids of rows whose scope (link.covers) holds a location inside a granted subtree or
    above a granted location: a survey of the site an auditor has a grant on."""
    scope_model, row_field, location_field = link.covers
    loc_field = getattr(scope_model, location_field)
    # The scope location is a granted location or one of its ancestors: the parent chain up
    # from each granted location (a recursive query along the parent index). Comparing every
    # location's path with every granted path instead ('/12/34/' LIKE '/12/%') was 900,000
    # pairs for 1,000 grants: 290 ms on PostgreSQL for the survey filter of the leak list.
    up = Location.alias("up")
    chain = (Location.select(Location.id, Location.parent)
             .join(Grant, on=(Grant.location == Location.id))
             .where((Location.organization == actor.organization)
                    & _grant_filter(actor, action))
             .cte("granted_and_above", recursive=True, columns=("id", "parent_id")))
    chain = chain.union(up.select(up.id, up.parent)
                        .join(chain, on=(up.id == chain.c.parent_id)))
    containing = chain.select_from(chain.c.id)
    return (scope_model.select(getattr(scope_model, row_field))
            .where((scope_model.organization == actor.organization)
                   & (loc_field.in_(_granted_location_ids(actor, action))
                      | loc_field.in_(containing))))


def _compiled(actor: Actor, key: tuple, build) -> pw.Node:
    """The grant subquery `build()` (one that depends only on the organization, the user,
    the action's grant levels and the time) as SQL text in parentheses, compiled once per
    actor and second.
    A grant-limited request names the same grant subqueries in most of its statements
    (every leak statement of a dashboard or list, their locations, surveys and sites), and
    peewee compiled each anew: ~2.5 of the 3.4 ms it took to compile `scope(actor, Leak)`
    (issue 19). Only the text is kept: the database evaluates it at every statement, so a
    revoked grant or a left group still takes effect at once; the time a grant expires is
    compared with the `now` of the compilation, at most a second old."""
    full = (key, actor.organization.id, actor.user.id if actor.user is not None else None,
            id(database.obj), utcnow().replace(microsecond=0))
    hit = actor.subqueries.get(full)
    if hit is None:
        if len(actor.subqueries) >= 64:  # a long-lived actor (a job): only the current second
            actor.subqueries.clear()
        hit = actor.subqueries[full] = build().sql()
    sql, params = hit
    return pw.NodeList((pw.SQL("("), pw.SQL(sql, list(params)), pw.SQL(")")), glue="")


def grant_condition(actor: Actor, model, action: str):
    """Which rows of `model` the actor's grants reach, as an SQL condition."""
    if actor.kind != "user" or actor.user is None:
        return _false()
    if action == "manage_users":
        delegated = _delegated_condition(actor, model)
        if delegated is not None:
            return delegated
    link = link_for(model)
    if link is None:
        return _false()
    if link.via is not None:
        parent_model = getattr(model, link.via).rel_model
        allowed = scope(actor, parent_model, action).select(parent_model.id)
        return getattr(model, link.via).in_(allowed)
    if link.members_read and action in READ_ACTIONS:
        return pw.SQL("1 = 1")
    conditions = []
    if link.location is not None:
        field = model.id if link.location == "id" else getattr(model, link.location)
        conditions.append(field.in_(_compiled(
            actor, ("locations", action), lambda: _granted_location_ids(actor, action))))
    if link.survey is not None:
        field = model.id if link.survey == "id" else getattr(model, link.survey)
        conditions.append(field.in_(_compiled(
            actor, ("surveys", action), lambda: _granted_survey_ids(actor, action))))
    if link.covers is not None and (action in READ_ACTIONS or action == "create"):
        conditions.append(model.id.in_(_compiled(
            actor, ("covers", link.covers, action),
            lambda: _covered_by_grants(actor, link, action))))
    if not conditions:
        return _false()
    out = conditions[0]
    for cond in conditions[1:]:
        out = out | cond
    return out


def reaches_part_of_a_site(actor: Actor, action: str = "view") -> bool:
    """True when the actor sees rows through a grant narrower than a whole site (a location
    below a site, or a survey); False when everything the actor sees is whole sites (or
    everything, or nothing). Lets site-level summaries skip the row-by-row part."""
    if unrestricted(actor, action) or not role_allows(actor, action):
        return False
    if actor.kind != "user" or actor.user is None:
        return False
    narrower = Grant.survey.is_null(False) | Grant.location.in_(
        Location.select(Location.id).where((Location.organization == actor.organization)
                                           & Location.parent.is_null(False)))
    return Grant.select().where(_grant_filter(actor, action) & narrower).exists()


def scope(actor: Actor, model, action: str = "view", query=None) -> pw.ModelSelect:
    """The single query filter. `query` may be a prepared select on `model` (joins, fields)."""
    query = query if query is not None else model.select()
    query = query.where(_tenant_condition(actor, model))
    if not role_allows(actor, action):
        return query.where(_false())
    if unrestricted(actor, action):
        return query
    return query.where(grant_condition(actor, model, action))


def _same_org(actor: Actor, obj) -> bool:
    org_id = obj.id if isinstance(obj, Organization) else getattr(obj, "organization_id", None)
    return org_id == actor.organization.id


def can(actor: Actor, action: str, obj=None) -> bool:
    """Yes/no for one stored object (same SQL as scope) or, without obj, for the role."""
    if not role_allows(actor, action):
        return False
    if obj is None:
        return True
    if not _same_org(actor, obj):
        return False
    if unrestricted(actor, action):
        return True
    model = type(obj)
    return scope(actor, model, action).where(model.id == obj.id).exists()


def can_create_somewhere(actor: Actor) -> bool:
    """The actor may record data at some location: the role allows "create" and either
    everywhere or through at least one grant. Offer "Record a leak" or "New survey" only
    then — a form the actor cannot submit is not offered."""
    if not role_allows(actor, "create"):
        return False
    if unrestricted(actor, "create"):
        return True
    return scope(actor, Location, "create").exists()


def require(actor: Actor, action: str, obj=None) -> None:
    """404 for rows of another organization or rows the actor may not see; 403 when the
    actor sees the row (or, without obj, has the role) but may not do `action`."""
    visible = obj is not None and _same_org(actor, obj) and (
        can(actor, "view", obj) or (action == "manage_users" and can(actor, action, obj)))
    if obj is not None and not visible:
        if not (action == "create" and actor.role == "device" and _same_org(actor, obj)):
            raise NotFound()
    if not can(actor, action, obj):
        raise Forbidden(description="You do not have permission to do this.")


def get_or_404(actor: Actor, model, obj_id, action: str = "view"):
    try:
        obj_id = int(obj_id)
    except (TypeError, ValueError):
        raise NotFound() from None
    # "manage_users": a department administrator finds the users and grants of his subtree
    # (which "view" does not reach in security mode 3), and nothing else.
    lookup = "manage_users" if action == "manage_users" else "view"
    obj = scope(actor, model, lookup).where(model.id == obj_id).first()
    if obj is None:
        raise NotFound()
    if action != "view":
        require(actor, action, obj)
    return obj


# ------------------------------------------------------------------ where writes land

class TargetForbidden(Forbidden):
    """403 for a write that would put a row into (or take it out of) a location, survey or
    other referenced row that the actor may see but not write there. `field` names the input
    (the web form shows the message at it, the API lists it under `errors`)."""

    def __init__(self, field: str, message: str):
        super().__init__(description=message)
        self.field = field
        self.message = message


def _visible_target(actor: Actor, target, action: str) -> bool:
    if not _same_org(actor, target):
        return False
    if action == "create" and actor.role == "device":
        return True  # a device files findings anywhere in its organization, sees nothing
    return can(actor, "view", target)


def _refusal(target, leaving: bool) -> str:
    name = str(target)
    kind = getattr(type(target), "AUDIT_TYPE", "")
    if kind == "survey":
        return (_("You may not take anything out of the survey %(name)s: you may see it, but "
                  "not change it.", name=name) if leaving else
                _("You may not add anything to the survey %(name)s: you may see it, but not "
                  "change it.", name=name))
    if kind == "location":
        return (_("You may not take anything out of %(name)s: you may see it, but not change "
                  "data there.", name=name) if leaving else
                _("You may not put anything into %(name)s: you may see it, but not change data "
                  "there.", name=name))
    return _("You may see this, but not change data there.")


def require_target(actor: Actor, action: str, target, field: str, *,
                   leaving: bool = False) -> None:
    """The write sets `field` to `target` (or, `leaving`, takes it away from `target`): the
    actor needs `action` on the target. A target the actor cannot see is answered like an id
    that does not exist (ValidationError on `field`: existence is not leaked); one the actor
    sees without the right is TargetForbidden (403) naming the field. Leaving a row the actor
    cannot see (a leak's survey not shared with them) is refused the same way: such a
    reference is kept, never changed."""
    if target is None:
        return
    if not _visible_target(actor, target, action):
        if leaving:
            raise TargetForbidden(field, _("The current value is not shared with you; it "
                                           "cannot be changed here."))
        raise ValidationError(_("Choose one of the offered values."), field)
    if not can(actor, action, target):
        raise TargetForbidden(field, _refusal(target, leaving))


def require_move(actor: Actor, action: str, old, new, field: str) -> None:
    """A reference changes from `old` to `new` (stored rows or None): "edit" on the row it
    leaves and `action` on the row it lands on. Unchanged: nothing to decide (the row being
    written was authorized by `require`)."""
    old_id = getattr(old, "id", None)
    new_id = getattr(new, "id", None)
    if old_id == new_id:
        return
    if old is not None:
        require_target(actor, "edit", old, field, leaving=True)
    if new is not None:
        require_target(actor, action, new, field)
