"""Import stage 5, write: in one transaction, the missing locations are created, new leaks
inserted in bulk (insert in chunks + one audit batch through `audit.writer.append`, so 10,000
rows take seconds, not minutes) and changed leaks updated through the leak service (field-level
audit diff; status moves along the workflow)."""
from __future__ import annotations

from flask_babel import gettext as _
from werkzeug.exceptions import Forbidden

from .. import authz
from ..audit import writer
from ..core.db import bulk_insert, database, utcnow
from ..core.validation import ValidationError
from ..leaks import service as leaks
from ..leaks.models import Leak, LeakStatusChange
from ..locations import service as locations
from ..locations.models import Location
from .classify import Classified, TargetCheck, Update, status_path
from .places import LocationIndex, kind_at


class RowRefused(Exception):
    """A row the write refused inside the transaction (everything is rolled back): its
    spreadsheet row and the field errors, shown like the preview's row errors."""

    def __init__(self, rownum: int, errors: dict):
        super().__init__(rownum, errors)
        self.rownum, self.errors = rownum, errors


def write(actor, classified: Classified, index: LocationIndex, to_create: dict, may: TargetCheck,
          filename: str, details: dict) -> None:
    """All or nothing: locations, new leaks, updates and the import's audit event."""
    with database.atomic():
        writer.begin(actor)
        created_locs = _create_locations(actor, index, to_create)
        _insert_new(actor, classified.new, created_locs, filename, may)
        for update in classified.updates:
            try:
                _update_one(actor, update, created_locs)
            except ValidationError as exc:
                raise RowRefused(update.rownum, exc.errors) from None
        writer.event(actor, "import", details=details)


def _create_locations(actor, index: LocationIndex, to_create: dict) -> dict:
    created: dict[tuple, Location] = {}
    for key, parts in to_create.items():
        parent = None
        if len(parts) > 1:
            parent = created.get(key[:-1]) or index.resolve(list(parts[:-1]))[0]
        existing = index.child(parent.id if parent else 0, parts[-1])
        if existing is not None:
            created[key] = existing
            continue
        depth = len(parts) - 1
        code = parts[-1][:40]
        loc = locations.create_location(actor, kind=kind_at(depth), code=code,
                                        name=parts[-1][:200], parent=parent)
        index.add(loc)
        created[key] = loc
    return created


_LEAK_COLUMNS = ("tag", "tag_number", "location", "survey", "found_at", "found_by_user",
                 "found_by", "device_serial", "method", "estimate_class", "rate_lpm",
                 "rate_low_lpm", "rate_high_lpm", "pressure_bar", "gas", "component", "priority",
                 "description", "recommended_action", "spare_part", "status", "due_date",
                 "repaired_at", "repaired_by", "repair_cost", "verified_at", "verification_note",
                 "previous_leak", "source", "version", "created_at", "updated_at", "assignee",
                 "order_number", "after_lpm", "rate_inputs")


def _snapshotter(model):
    """writer.snapshot for plain row dicts (same output, without building model instances)."""
    skip = writer._skip_fields(model)
    secret = writer._secret_fields(model)
    names = [n for n in model._meta.fields if n not in skip]
    jsonable = writer._jsonable

    def snap(row: dict) -> dict:
        out = {}
        for n in names:
            v = row.get(n)
            out[n] = "(redacted)" if n in secret and v else jsonable(v)
        return out
    return snap


def _insert_new(actor, new_rows: list, created_locs, filename, may: TargetCheck) -> None:
    """Bulk insert + one audit batch (the writer's chain, same transaction)."""
    if not new_rows:
        return
    org = actor.organization
    now = utcnow()
    checked_locations = set()
    rows = []
    for parsed in new_rows:
        v, status = parsed.values, parsed.status
        loc = v["location"]
        if isinstance(loc, tuple):
            loc = created_locs[loc]
        if loc.id not in checked_locations:
            # The preview refused rows outside the actor's grants (TargetCheck); this is the
            # same decision once more inside the transaction, on the created locations too.
            refusal = may.create({**v, "location": loc, "tag": None})
            if refusal:
                raise Forbidden(description=refusal[1])
            checked_locations.add(loc.id)
        row = {k: v.get(k) for k in _LEAK_COLUMNS}
        row.update(
            organization=org.id, tag=v["tag"], tag_number=leaks.tag_number_of(v["tag"]),
            location=loc.id, survey=v["survey"].id if v.get("survey") else None,
            found_by_user=None, previous_leak=None, status=status, source="import",
            assignee=v["assignee"].id if v.get("assignee") else None,
            version=1, created_at=now, updated_at=now,
            verified_at=now.date() if status == "verified" else None)
        if status in ("repaired", "verified") and not row.get("repaired_at"):
            row["repaired_at"] = now.date()
        for k in ("found_by", "device_serial", "description", "recommended_action",
                  "spare_part", "repaired_by", "verification_note", "order_number",
                  "rate_inputs"):
            row[k] = row.get(k) or ""
        rows.append(row)
    bulk_insert(Leak, rows)
    new_tags = {r["tag"] for r in rows}
    ids: dict[str, int] = {tag: lid for lid, tag in authz.scope(
        actor, Leak, "create", Leak.select(Leak.id, Leak.tag)).tuples() if tag in new_tags}
    _check_assignees(new_rows, ids)
    label = actor.display[:254]
    user = actor.user if actor.kind == "user" else None
    reasons = {p.values["tag"]: p.values.get("deferral_reason") or "" for p in new_rows}
    imported = _("imported from %(f)s", f=filename[:150])
    history = [{"organization": org.id, "leak": ids[r["tag"]], "at": now, "from_status": None,
                "to_status": r["status"], "actor_label": label,
                "user": user.id if user else None,
                "note": (_("%(imported)s: %(reason)s", imported=imported,
                           reason=reasons[r["tag"]])
                         if r["status"] == "deferred" else imported)}
               for r in rows]
    bulk_insert(LeakStatusChange, history)
    batch = []
    snap_leak = _snapshotter(Leak)
    snap_hist = _snapshotter(LeakStatusChange)
    for r in rows:
        snap = snap_leak({**r, "id": ids[r["tag"]]})
        batch.append({"action": "create", "entity_type": writer.entity_type(Leak),
                      "entity_id": ids[r["tag"]],
                      "changes": {k: [None, val] for k, val in snap.items()
                                  if val not in (None, "")}})
    new_ids = set(ids.values())
    hist_ids: dict[int, int] = {
        leak_id: hid for leak_id, hid in authz.scope(
            actor, LeakStatusChange, "view",
            LeakStatusChange.select(LeakStatusChange.leak, LeakStatusChange.id))
        .where(LeakStatusChange.at == now).tuples() if leak_id in new_ids}
    for h in history:
        snap = snap_hist({**h, "id": hist_ids.get(h["leak"])})
        batch.append({"action": "create", "entity_type": writer.entity_type(LeakStatusChange),
                      "entity_id": hist_ids.get(h["leak"]),
                      "changes": {k: [None, val] for k, val in snap.items()
                                  if val not in (None, "")}})
    writer.append(actor, "create", batch=batch)


def _check_assignees(new_rows: list, ids: dict) -> None:
    """The form's rule on the stored leaks, inside the transaction: each assignee may edit
    the leak where it now is (a created location included)."""
    for parsed in new_rows:
        if parsed.values.get("assignee") is None:
            continue
        try:
            leaks.check_assignee(Leak.get_by_id(ids[parsed.values["tag"]]))
        except ValidationError as exc:
            raise RowRefused(parsed.rownum, exc.errors) from None


def _update_one(actor, update: Update, created_locs) -> None:
    leak, values, diffs = update.leak, update.values, update.diffs
    changes = {k: v for k, v in diffs.items() if k != "status"}
    if "location" in changes and isinstance(changes["location"], tuple):
        changes["location"] = created_locs[changes["location"]]
    if changes:
        leaks.update_leak(actor, leak, expected_version=leak.version, **changes)
    if "status" in diffs:
        for step in status_path(leak.status, diffs["status"]):
            note = _("import")
            if step == "deferred":
                note = f"{note}: {values.get('deferral_reason') or ''}".rstrip(": ")
            leaks.change_status(actor, leak, step, note=note,
                                repaired_at=values.get("repaired_at"),
                                repair_cost=values.get("repair_cost"))
