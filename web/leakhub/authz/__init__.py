"""Authorization: the one decision point and the one query filter (DESIGN §3.2–3.3).

Every view, API endpoint, export, report and leakctl command asks here:
- `scope(actor, Model, action)` — the SELECT that limits rows to the actor's organization
  and to what the actor may `action` (filtering in SQL, never in Python);
- `get_or_404(actor, Model, id, action)` — one row, or 404 when it belongs to another
  organization or the actor may not see it (existence is not leaked);
- `require(actor, action, obj)` / `can(...)` — a yes/no on one object or on a model.
Decided from the database on every request (the Actor is rebuilt per request).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import peewee as pw
from werkzeug.exceptions import Forbidden, NotFound

from ..identity.models import User
from ..orgs.models import Organization

# What each role may do on organization data. `external` gets nothing by role; grants
# (access control issue) add to it. "manage" covers settings, users, grants and backups.
ROLE_ACTIONS = {
    "admin": {"view", "create", "edit", "delete", "report", "audit", "manage"},
    "manager": {"view", "create", "edit", "delete", "report", "audit"},
    "editor": {"view", "create", "edit", "delete", "report"},
    "viewer": {"view", "report"},
    "external": set(),
    "device": {"ingest"},
    "system": {"view", "create", "edit", "delete", "report", "audit", "manage", "ingest"},
}


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
    def system(cls, organization, label="system", **kw) -> "Actor":
        return cls(organization=organization, kind="system", label=label, **kw)


def role_allows(actor: Actor, action: str) -> bool:
    return action in ROLE_ACTIONS.get(actor.role or "", set())


def _tenant_condition(actor: Actor, model):
    if model is Organization:
        return Organization.id == actor.organization.id
    return model.organization == actor.organization


def scope(actor: Actor, model, action: str = "view", query=None) -> pw.ModelSelect:
    """The single query filter. `query` may be a prepared select on `model` (joins, fields)."""
    query = query if query is not None else model.select()
    query = query.where(_tenant_condition(actor, model))
    if not role_allows(actor, action):
        query = query.where(pw.SQL("1 = 0"))
    return query


def can(actor: Actor, action: str, obj=None) -> bool:
    if obj is not None:
        org_id = obj.id if isinstance(obj, Organization) else getattr(obj, "organization_id", None)
        if org_id != actor.organization.id:
            return False
    return role_allows(actor, action)


def require(actor: Actor, action: str, obj=None) -> None:
    if obj is not None:
        org_id = obj.id if isinstance(obj, Organization) else getattr(obj, "organization_id", None)
        if org_id != actor.organization.id:
            raise NotFound()
        if not can(actor, "view", obj):
            raise NotFound()
    if not can(actor, action, obj):
        raise Forbidden(description="You do not have permission to do this.")


def get_or_404(actor: Actor, model, obj_id, action: str = "view"):
    try:
        obj_id = int(obj_id)
    except (TypeError, ValueError):
        raise NotFound() from None
    obj = scope(actor, model, "view").where(model.id == obj_id).first()
    if obj is None:
        raise NotFound()
    if action != "view":
        require(actor, action, obj)
    return obj
