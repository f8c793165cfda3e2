"""An entity's audit entries with decoded field changes, for the "Activity" section of
detail pages (template partial `audit/_activity.html`)."""
from __future__ import annotations

import datetime as dt
import json
import re
from dataclasses import dataclass, field

from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l

from .. import authz
from ..core.templating import FILTERS
from .models import AuditEntry
from .writer import entity_type

# What the Activity section shows instead of the stored names (issue 14): actions and the
# fields people edit. Unknown names are shown as stored.
ACTION_LABELS = {
    "create": _l("Created"), "update": _l("Changed"), "delete": _l("Deleted"),
    "status_change": _l("Status changed"), "settings_change": _l("Settings changed"),
    "settings.changed": _l("Settings changed"), "device.enabled": _l("Device enabled"),
    "device.disabled": _l("Device disabled"), "finding.acknowledged": _l("Finding acknowledged"),
    "audit.exported": _l("Audit log exported"), "backup.created": _l("Backup created"),
    "backup.deleted": _l("Backup deleted"), "backup.downloaded": _l("Backup downloaded"),
    "backup.requested": _l("Backup requested"),
    "backup.restored": _l("Backup restored"), "dashboard.recount": _l("Dashboard recounted"),
    "backup.restored_to_time": _l("Databases restored to a point in time"),
    "deployment.recorded": _l("Deployment recorded"), "export": _l("Exported"),
    "import": _l("Imported"), "report": _l("Report created"), "grant.given": _l("Access granted"),
    "grant.revoked": _l("Access revoked"), "organization.created": _l("Organization created"),
    "group.member_added": _l("Added to group"), "group.member_removed": _l("Removed from group"),
    "retention.run": _l("Old security data removed"), "user.enabled": _l("User enabled"),
    "user.disabled": _l("User disabled"), "user.invited": _l("User invited"),
    "user.role_changed": _l("Role changed"), "user.signed_out": _l("User signed out"),
    "user.unlocked": _l("Sign-in unlocked"), "user.erased": _l("User erased"),
    "user.exported": _l("User data exported"), "privacy.masked": _l("Personal data masked"),
    "directory.ldap_created": _l("Directory connected"),
    "directory.ldap_changed": _l("Directory settings changed"),
    "directory.ldap_synced": _l("Directory synchronised"),
    "directory.ldap_removed": _l("Directory removed"),
    "directory.oidc_created": _l("External sign-in added"),
    "directory.oidc_changed": _l("External sign-in changed"),
    "directory.oidc_removed": _l("External sign-in removed"),
    "floor_plan.replaced": _l("Floor plan replaced"),
    "floor_plan.pins_kept": _l("Pins kept on the new floor plan"),
    "floor_plan.pins_cleared": _l("Pins cleared for the new floor plan"),
}
# Record types (audit entity_type: a model's AUDIT_TYPE or table name) on the audit log.
ENTITY_LABELS = {
    "leak": _l("Leak"), "leak_status_change": _l("Status change"), "location": _l("Location"),
    "energy_settings": _l("Energy settings"), "survey": _l("Survey"),
    "survey_scope": _l("Survey scope"), "device": _l("Device (API client)"), "photo": _l("Photo"),
    "grant": _l("Access grant"), "user": _l("User"), "organization": _l("Organization"),
    "security_finding": _l("Security finding"), "backup": _l("Backup"),
    "deployment": _l("Deployment"), "detector_rate_row": _l("Detector table"),
    "floor_plan": _l("Floor plan"), "import_preset": _l("Import preset"),
    "export": _l("Export"), "group": _l("Group (department)"),
    "group_member": _l("Group membership"),
}
FIELD_LABELS = {
    "tag": _l("Tag"), "tag_number": _l("Leak tag number"), "location": _l("Location"),
    "survey": _l("Survey"), "found_at": _l("Found at"), "status": _l("Status"),
    "rate_lpm": _l("Leak rate"), "pressure_bar": _l("Pressure"), "component": _l("Component"),
    "priority": _l("Priority"), "description": _l("Description"), "gas": _l("Gas"),
    "method": _l("Method"), "estimate_class": _l("Estimate class"),
    "recommended_action": _l("Recommended action"), "spare_part": _l("Spare part"),
    "due_date": _l("Due date"), "repaired_at": _l("Repair date"),
    "repaired_by": _l("Repaired by"), "repair_cost": _l("Repair cost"),
    "verified_at": _l("Verified"), "role": _l("Role"), "language": _l("Language"),
    "name": _l("Name"), "timezone": _l("Time zone"), "security_mode": _l("Security mode"),
    "enabled": _l("Enabled"), "email": _l("E-mail"), "code": _l("Code"), "notes": _l("Notes"),
    "valid_from": _l("Valid from"), "ack_comment": _l("Comment"),
    "kc_group": _l("Directory group"), "source": _l("Source"),
    "assignee": _l("Assignee"), "order_number": _l("Maintenance order number"),
    "after_lpm": _l("Leak rate after the repair"),
}
_ISO_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_ISO_DATETIME = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d+)?)?$")
_DECIMAL = re.compile(r"^-?\d+\.\d+$")


def display_value(value):
    """A stored audit value for reading: dates and times (naive UTC) in the user's locale and
    the organization's zone, decimals with the locale's separators, yes/no; else as stored."""
    if value is None:
        return "—"
    if isinstance(value, bool):
        return _("yes") if value else _("no")
    if isinstance(value, str):
        if _ISO_DATE.match(value):
            return FILTERS["date"](dt.date.fromisoformat(value))
        if _ISO_DATETIME.match(value):
            return FILTERS["localdt"](dt.datetime.fromisoformat(value))
        if _DECIMAL.match(value):
            return FILTERS["num"](value, 6)
    if isinstance(value, float):
        return FILTERS["num"](value, 6)
    return value


def action_label(action: str) -> str:
    label = ACTION_LABELS.get(action)
    return str(label) if label is not None else action


def entity_label(name: str) -> str:
    label = ENTITY_LABELS.get(name)
    return str(label) if label is not None else name


def field_label(name: str) -> str:
    label = FIELD_LABELS.get(name)
    return str(label) if label is not None else name


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


# Installed by create_app: the Activity partial's labels and values.
TEMPLATE_GLOBALS = {"audit_action_label": action_label, "audit_field_label": field_label,
                    "audit_entity_label": entity_label, "audit_value": display_value}
