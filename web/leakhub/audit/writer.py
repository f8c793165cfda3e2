"""The one write path for organization data: create / update / delete / event.

Each call checks permission through `authz.require`, applies the change, and appends an
audit entry (field-level old → new) in the same transaction. Views, the API, imports, the
worker and leakctl all write through here; nothing else calls `.save()` on organization data.
Models with a `version` field get an optimistic-concurrency check on update.

The writer's own parameters are positional-only (`/`): a model's field may be called
`model`, `actor`, `obj` or `action` (Device.model) without clashing with them in `**fields`.

Every write transaction takes its organization's chain head (`begin`) before it changes a
row: writers of one organization queue there and nowhere else first. Without it, a writer
holding a row that database triggers update (the per-day counts of leak_daily) could wait for
the chain head held by another writer that needs that row next: a deadlock.
"""
from __future__ import annotations

import datetime as dt
import decimal
import hashlib
import json

import peewee as pw

from .. import authz
from ..core.db import bulk_insert, database, is_postgres, utcnow
from ..core.errors import Conflict
from .models import AuditChainHead, AuditEntry

GENESIS = "0" * 64


class ConflictError(Conflict):
    """Someone else saved first. Carries the current row so the UI can show both."""

    def __init__(self, current, attempted: dict):
        super().__init__("the record was changed by someone else in the meantime")
        self.current = current
        self.attempted = attempted


def _jsonable(value):
    if isinstance(value, (dt.datetime, dt.date, dt.time)):
        return value.isoformat()
    if isinstance(value, decimal.Decimal):
        # Canonical: PostgreSQL returns NUMERIC(10,2) 6.5 as 6.50, which is no change.
        return format(value.normalize(), "f") if value.is_finite() else str(value)
    if isinstance(value, pw.Model):
        return value.get_id()
    if isinstance(value, bytes):
        return f"<{len(value)} bytes>"
    return value


def _secret_fields(model) -> set:
    return set(getattr(model, "AUDIT_REDACT", ()))


def _skip_fields(model) -> set:
    return {"version"} | set(getattr(model, "AUDIT_SKIP", ()))


def snapshot(obj) -> dict:
    model = type(obj)
    out = {}
    for name in model._meta.fields:
        if name in _skip_fields(model):
            continue
        value = obj.__data__.get(name)
        out[name] = "(redacted)" if name in _secret_fields(model) and value else _jsonable(value)
    return out


def entity_type(model) -> str:
    return getattr(model, "AUDIT_TYPE", model._meta.table_name)


def entry_digest(fields: dict) -> str:
    canonical = json.dumps(fields, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


# Personal details stay out of the chain (hash version 2), so erasing a user (GDPR art. 17),
# masking a test copy and truncating old IP addresses never break `leakctl audit verify`:
# the actor's label and IP address, and the values of these keys anywhere in `changes`
# ("name" only in entries about a user: a location's name is not personal). The chain still
# covers who (actor kind and id, a pseudonym once the user is erased), when, what and on which
# record, and every other changed value. See docs/data-protection.md.
PERSONAL_KEYS = frozenset({"email", "username", "sub", "found_by", "repaired_by",
                           "actor_label", "user_label", "display_name", "user_agent", "ip"})
USER_KEYS = PERSONAL_KEYS | {"name"}
HASH_VERSION = 2


def personal_keys(entity_type_name: str | None) -> frozenset:
    return USER_KEYS if entity_type_name == "user" else PERSONAL_KEYS


def _mask(value, keys):
    if isinstance(value, dict):
        return {k: ("~" if k in keys else _mask(v, keys)) for k, v in value.items()}
    if isinstance(value, list):
        return [_mask(v, keys) for v in value]
    return value


def hashed_fields_v2(entry) -> dict:
    """What a version-2 hash covers: `hashed_fields` without the actor's label and IP address,
    with the values of personal keys in `changes` replaced by "~"."""
    fields = hashed_fields(entry)
    del fields["actor_label"], fields["ip"]
    try:
        changes = json.loads(fields["changes"] or "{}")
    except ValueError:
        changes = fields["changes"]
    fields["changes"] = _mask(changes, personal_keys(fields["entity_type"]))
    fields["v"] = 2
    return fields


def entry_hash(entry) -> str:
    """The hash of a stored entry or an `append` row, by its hash version."""
    get = entry.get if isinstance(entry, dict) else (lambda k: getattr(entry, k))
    if (get("hash_version") or 1) >= 2:
        return entry_digest(hashed_fields_v2(entry))
    return entry_digest(hashed_fields(entry))


_HASHED = ("org", "seq", "at", "actor_kind", "actor_id", "actor_label", "ip", "request_id",
           "action", "entity_type", "entity_id", "changes", "prev_hash")


def hashed_fields(entry) -> dict:
    """What the hash covers. Takes a stored AuditEntry or the row dict `append` builds."""
    get = entry.get if isinstance(entry, dict) else (lambda k: getattr(entry, k))
    at = get("at")
    return {
        "org": get("organization_id") if not isinstance(entry, dict) else get("organization"),
        "seq": get("seq"), "at": at.isoformat() if isinstance(at, dt.datetime) else at,
        "actor_kind": get("actor_kind"), "actor_id": get("actor_id"),
        "actor_label": get("actor_label"), "ip": get("ip"), "request_id": get("request_id"),
        "action": get("action"), "entity_type": get("entity_type"),
        "entity_id": get("entity_id"), "changes": get("changes"), "prev_hash": get("prev_hash"),
    }


def _lock_head(org_id: int) -> AuditChainHead:
    def locked():
        query = AuditChainHead.select().where(AuditChainHead.organization == org_id)
        return (query.for_update() if is_postgres() else query).first()

    head = locked()
    if head is None:
        AuditChainHead.insert(organization=org_id).on_conflict_ignore().execute()
        head = locked()
    return head


def begin(actor: authz.Actor, /) -> None:
    """Queue this transaction behind the organization's other writers (see the module
    docstring). Call first inside the caller's transaction; `create`, `update`, `update_many`
    and `delete` do. Taking it again in the same transaction costs one indexed read."""
    _lock_head(actor.organization.id)


def append(actor: authz.Actor, action: str, /, *, entity_type: str | None = None,
           entity_id: int | None = None, changes: dict | None = None,
           batch: list[dict] | None = None) -> None:
    """Append one entry (or a batch of {entity_type, entity_id, changes, action}) to the chain.
    Must run inside the caller's transaction."""
    rows = batch if batch is not None else [
        {"action": action, "entity_type": entity_type, "entity_id": entity_id,
         "changes": changes or {}}]
    org_id = actor.organization.id
    head = _lock_head(org_id)
    seq, prev = head.seq, head.hash
    now = utcnow()
    actor_id = actor.user.id if actor.user is not None else (
        getattr(actor.device, "id", None) if actor.device is not None else None)
    label = actor.display[:254]
    entries = []
    for row in rows:
        seq += 1
        entry = {
            "organization": org_id, "seq": seq, "at": now, "actor_kind": actor.kind,
            "actor_id": actor_id, "actor_label": label, "ip": actor.ip,
            "request_id": actor.request_id, "action": row["action"],
            "entity_type": row.get("entity_type"), "entity_id": row.get("entity_id"),
            "changes": json.dumps(row.get("changes") or {}, sort_keys=True, ensure_ascii=False,
                                  default=str),
            "prev_hash": prev, "hash_version": HASH_VERSION,
        }
        entry["hash"] = prev = entry_hash(entry)
        entries.append(entry)
    bulk_insert(AuditEntry, entries)
    AuditChainHead.update(seq=seq, hash=prev).where(AuditChainHead.organization == org_id).execute()


def create(actor: authz.Actor, model, /, *, permission: str = "create", **fields):
    """`permission`: what the actor needs on the new row ("manage_users" for users and
    grants, which a department administrator creates within his subtree)."""
    authz.require(actor, permission)
    with database.atomic():
        begin(actor)
        fields.setdefault("organization", actor.organization)
        obj = model.create(**fields)
        authz.require(actor, permission, obj)
        after = snapshot(obj)
        append(actor, "create", entity_type=entity_type(model), entity_id=obj.id,
               changes={k: [None, v] for k, v in after.items() if v not in (None, "")})
    return obj


def diff(before: dict, after: dict) -> dict:
    return {k: [before.get(k), v] for k, v in after.items() if before.get(k) != v}


def update(actor: authz.Actor, obj, changes: dict, /, *, expected_version: int | None = None,
           action: str = "update", permission: str = "edit"):
    """Apply `changes` (field -> new value). Returns the object; raises ConflictError when
    `expected_version` no longer matches, PermissionError-like 403/404 via authz."""
    authz.require(actor, permission, obj)
    model = type(obj)
    has_version = "version" in model._meta.fields
    with database.atomic():
        begin(actor)
        before = snapshot(obj)
        for name, value in changes.items():
            setattr(obj, name, value)
        after = snapshot(obj)
        delta = diff(before, after)
        if not delta:
            return obj
        values = {model._meta.fields[k]: getattr(obj, k) for k in changes}
        query = model.update(values).where(model.id == obj.id)
        if has_version:
            values[model._meta.fields["version"]] = model.version + 1
            query = model.update(values).where(model.id == obj.id)
            if expected_version is not None:
                query = query.where(model.version == expected_version)
        if query.execute() != 1:
            current = model.get_or_none(model.id == obj.id)
            raise ConflictError(current, changes)
        if has_version:
            obj.version = (expected_version if expected_version is not None else obj.version) + 1
        append(actor, action, entity_type=entity_type(model), entity_id=obj.id, changes=delta)
    return obj


def update_many(actor: authz.Actor, objs: list, changes: dict, /, *,
                action: str = "update", permission: str = "edit") -> int:
    """The same change on many rows (bulk edits, imports): permission and version checked per
    row as in `update`, one audit batch for all. All or nothing; ConflictError names the first
    row someone else changed meanwhile (compared with the version each object was read at)."""
    if not objs:
        return 0
    model = type(objs[0])
    has_version = "version" in model._meta.fields
    batch = []
    with database.atomic():
        begin(actor)
        for obj in objs:
            authz.require(actor, permission, obj)
            before = snapshot(obj)
            for name, value in changes.items():
                setattr(obj, name, value)
            delta = diff(before, snapshot(obj))
            if not delta:
                continue
            values = {model._meta.fields[k]: v for k, v in changes.items()}
            query = model.update(values).where(model.id == obj.id)
            if has_version:
                values[model._meta.fields["version"]] = model.version + 1
                query = model.update(values).where((model.id == obj.id)
                                                   & (model.version == obj.version))
            if query.execute() != 1:
                raise ConflictError(model.get_or_none(model.id == obj.id), changes)
            if has_version:
                obj.version += 1
            batch.append({"action": action, "entity_type": entity_type(model),
                          "entity_id": obj.id, "changes": delta})
        if batch:
            append(actor, action, batch=batch)
    return len(batch)


def delete(actor: authz.Actor, obj, /, *, permission: str = "delete") -> None:
    authz.require(actor, permission, obj)
    with database.atomic():
        begin(actor)
        before = snapshot(obj)
        obj.delete_instance()
        append(actor, "delete", entity_type=entity_type(type(obj)), entity_id=obj.id,
               changes={k: [v, None] for k, v in before.items() if v not in (None, "")})


def event(actor: authz.Actor, action: str, /, *, entity=None, details: dict | None = None) -> None:
    """An administrative event (user invited, backup downloaded, ...), in its own or the
    caller's transaction."""
    with database.atomic():
        append(actor, action,
               entity_type=entity_type(type(entity)) if entity is not None else None,
               entity_id=entity.get_id() if entity is not None else None,
               changes=details or {})
