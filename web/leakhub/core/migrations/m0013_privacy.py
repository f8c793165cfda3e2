"""Data protection (issue 15 parts 3 and 4).

- `organization.permanent_lockout`: after 3 failed sign-ins the account stays locked until an
  administrator unlocks it (or its password is reset) instead of for a growing wait.
- `organization.profiling_rules`: the review rules that profile staff ("unusual hours", "new
  network"). Existing organizations keep them (TRUE here); new ones start without them (the
  model's default).
- `user.erased_at`: set when a user was erased (GDPR art. 17); the row stays as the pseudonym
  "former user #<id>" that leaks and the audit trail point at.
- `audit_entry.hash_version` / `ip_truncated`: hash version 2 leaves personal details out of
  the chain (actor label, IP address, and the values of personal fields in `changes`), so
  erasure, masking and IP truncation keep `leakctl audit verify` passing. Existing chains are
  re-hashed to version 2 here — but only a chain that verifies under version 1 first, so a
  chain that was tampered with before this migration stays recognisably broken (its entries
  keep version 1). The logic below is frozen: it must keep meaning what it meant.
"""
import datetime as dt
import hashlib
import json

GENESIS = "0" * 64
# Frozen copy of audit.writer.PERSONAL_KEYS / USER_KEYS at the time of this migration.
PERSONAL_KEYS = frozenset({"email", "username", "sub", "found_by", "repaired_by",
                           "actor_label", "user_label", "display_name", "user_agent", "ip"})
USER_KEYS = PERSONAL_KEYS | {"name"}  # in entries about a user (entity_type "user")


def _digest(fields):
    canonical = json.dumps(fields, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


def _at(value):
    if isinstance(value, str):
        try:
            value = dt.datetime.fromisoformat(value)
        except ValueError:
            return value
    return value.isoformat() if isinstance(value, dt.datetime) else value


def _mask(value, keys):
    if isinstance(value, dict):
        return {k: ("~" if k in keys else _mask(v, keys)) for k, v in value.items()}
    if isinstance(value, list):
        return [_mask(v, keys) for v in value]
    return value


def _changes_v2(text, entity_type):
    try:
        value = json.loads(text or "{}")
    except ValueError:
        return text
    return _mask(value, USER_KEYS if entity_type == "user" else PERSONAL_KEYS)


def _v1(org, row, prev):
    (seq, at, kind, actor_id, label, ip, request_id, action, etype, eid, changes) = row
    return _digest({"org": org, "seq": seq, "at": _at(at), "actor_kind": kind,
                    "actor_id": actor_id, "actor_label": label, "ip": ip,
                    "request_id": request_id, "action": action, "entity_type": etype,
                    "entity_id": eid, "changes": changes, "prev_hash": prev})


def _v2(org, row, prev):
    (seq, at, kind, actor_id, _label, _ip, request_id, action, etype, eid, changes) = row
    return _digest({"v": 2, "org": org, "seq": seq, "at": _at(at), "actor_kind": kind,
                    "actor_id": actor_id, "request_id": request_id, "action": action,
                    "entity_type": etype, "entity_id": eid, "changes": _changes_v2(changes, etype),
                    "prev_hash": prev})


def _rehash(db):
    heads = db.execute_sql(
        "SELECT organization_id, seq, hash, anchor_hash FROM audit_chain_head").fetchall()
    for org, head_seq, head_hash, anchor_hash in heads:
        rows = db.execute_sql(
            "SELECT id, hash, prev_hash, seq, at, actor_kind, actor_id, actor_label, ip,"
            " request_id, action, entity_type, entity_id, changes FROM audit_entry"
            f" WHERE organization_id = {db.param} ORDER BY seq", (org,)).fetchall()
        prev, ok = anchor_hash, True
        for row in rows:
            if row[2] != prev or _v1(org, row[3:], prev) != row[1]:
                ok = False
                break
            prev = row[1]
        if not ok or (rows and prev != head_hash) or (rows and rows[-1][3] != head_seq):
            continue  # a broken chain stays version 1: verification keeps reporting it
        prev = anchor_hash
        for row in rows:
            new = _v2(org, row[3:], prev)
            db.execute_sql(f"UPDATE audit_entry SET hash_version = 2, prev_hash = {db.param},"
                           f" hash = {db.param} WHERE id = {db.param}", (prev, new, row[0]))
            prev = new
        if rows:
            db.execute_sql(f"UPDATE audit_chain_head SET hash = {db.param}"
                           f" WHERE organization_id = {db.param}", (prev, org))


def up(db):
    db.execute_sql("ALTER TABLE organization ADD COLUMN permanent_lockout BOOLEAN NOT NULL"
                   " DEFAULT FALSE")
    db.execute_sql("ALTER TABLE organization ADD COLUMN profiling_rules BOOLEAN NOT NULL"
                   " DEFAULT TRUE")
    db.execute_sql('ALTER TABLE "user" ADD COLUMN erased_at TIMESTAMP')
    db.execute_sql("ALTER TABLE audit_entry ADD COLUMN hash_version SMALLINT NOT NULL DEFAULT 1")
    db.execute_sql("ALTER TABLE audit_entry ADD COLUMN ip_truncated BOOLEAN NOT NULL"
                   " DEFAULT FALSE")
    _rehash(db)
