"""Checking the hash chain of an organization's audit trail, and pruning it safely.

Verification starts at the chain head's anchor (0/genesis, or the last entry removed by
retention), so pruning old entries never reads as tampering, while a changed, deleted or
reordered entry — or a removed newest entry — does.
"""
from __future__ import annotations

from dataclasses import dataclass

from ..core.db import database, iterate
from ..orgs.models import Organization
from .models import AuditChainHead, AuditEntry
from .writer import GENESIS, entry_hash


@dataclass
class ChainReport:
    organization: str
    entries: int
    ok: bool
    problem: str = ""
    entry_id: int | None = None
    seq: int | None = None


def verify_org(org: Organization) -> ChainReport:
    head = AuditChainHead.get_or_none(AuditChainHead.organization == org.id)
    expected_seq = (head.anchor_seq if head else 0) + 1
    prev = head.anchor_hash if head else GENESIS
    count = 0
    last_seq = 0
    query = (AuditEntry.select().where(AuditEntry.organization == org.id)
             .order_by(AuditEntry.seq))
    for entry in iterate(query):
        count += 1

        def broken(problem, count=count, entry=entry):
            return ChainReport(org.slug, count, False, problem, entry.id, entry.seq)

        if entry.seq != expected_seq:
            if entry.seq > expected_seq:
                return broken(f"entry seq {expected_seq} is missing before entry seq {entry.seq} "
                              f"(id {entry.id})")
            return broken(f"entry id {entry.id} has seq {entry.seq}, expected {expected_seq}: "
                          "entries were reordered or duplicated")
        if entry.prev_hash != prev:
            return broken(f"entry seq {entry.seq} (id {entry.id}) does not link to the entry "
                          "before it: an entry before it was changed, removed or swapped")
        if entry_hash(entry) != entry.hash:
            return broken(f"entry seq {entry.seq} (id {entry.id}) was changed after it was written")
        prev = entry.hash
        last_seq = entry.seq
        expected_seq += 1
    if head is not None and (last_seq or head.anchor_seq) != head.seq:
        return ChainReport(org.slug, count, False,
                           f"the newest entries after seq {last_seq} are missing "
                           f"(the chain head says {head.seq})", None, head.seq)
    if head is not None and head.seq and prev != head.hash:
        return ChainReport(org.slug, count, False, "the chain head does not match the newest entry",
                           None, head.seq)
    return ChainReport(org.slug, count, True)


def prune_before(org: Organization, before_at) -> int:
    """Delete entries older than `before_at`, moving the anchor so verification still holds.
    Returns the number removed. Caller records the retention run as an audit event."""
    with database.atomic():
        last = (AuditEntry.select().where((AuditEntry.organization == org.id)
                                          & (AuditEntry.at < before_at))
                .order_by(AuditEntry.seq.desc()).first())
        if last is None:
            return 0
        removed = AuditEntry.delete().where((AuditEntry.organization == org.id)
                                            & (AuditEntry.seq <= last.seq)).execute()
        AuditChainHead.update(anchor_seq=last.seq, anchor_hash=last.hash).where(
            AuditChainHead.organization == org.id).execute()
    return removed
