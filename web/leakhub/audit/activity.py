"""An entity's audit entries with decoded field changes, for the "Activity" section of
detail pages (template partial `audit/_activity.html`)."""
from __future__ import annotations

import json
from dataclasses import dataclass, field

from .. import authz
from .models import AuditEntry
from .writer import entity_type


@dataclass
class Change:
    field: str
    old: object
    new: object


@dataclass
class ActivityItem:
    id: int
    seq: int
    at: object
    actor: str
    actor_kind: str
    action: str
    changes: list[Change] = field(default_factory=list)
    details: list[tuple[str, object]] = field(default_factory=list)


def decode_changes(raw: str) -> tuple[list[Change], list[tuple[str, object]]]:
    """Entries of create/update/delete hold {field: [old, new]}; events hold free details.
    Returns (field changes, other details), each sorted by name."""
    try:
        data = json.loads(raw or "{}")
    except ValueError:
        return [], [("changes", raw)]
    if not isinstance(data, dict):
        return [], [("changes", data)]
    changes, details = [], []
    for key in sorted(data):
        value = data[key]
        if isinstance(value, list) and len(value) == 2:
            changes.append(Change(key, value[0], value[1]))
        else:
            details.append((key, value))
    return changes, details


def audit_for(actor: authz.Actor, entity, *, limit: int = 100) -> list[ActivityItem]:
    """Newest first. Empty when the actor may not see the entity (or its organization)."""
    if entity is None or not authz.can(actor, "view", entity):
        return []
    query = authz.scope(actor, AuditEntry, "view").where(
        (AuditEntry.entity_type == entity_type(type(entity)))
        & (AuditEntry.entity_id == entity.get_id())
    ).order_by(AuditEntry.seq.desc()).limit(limit)
    items = []
    for entry in query:
        changes, details = decode_changes(entry.changes)
        items.append(ActivityItem(entry.id, entry.seq, entry.at, entry.actor_label,
                                  entry.actor_kind, entry.action, changes, details))
    return items
