from __future__ import annotations

import peewee as pw

from ..core.db import BaseModel, utcnow
from ..orgs.models import Organization


class AuditEntry(BaseModel):
    """One change or administrative event. Hash-chained per organization: `hash` covers
    the entry's content and `prev_hash`, so a changed, deleted or reordered entry breaks
    the chain (`leakctl audit verify`)."""

    organization = pw.ForeignKeyField(Organization, on_delete="CASCADE", backref="audit_entries")
    seq = pw.BigIntegerField()
    at = pw.DateTimeField(default=utcnow, index=True)
    actor_kind = pw.CharField(max_length=16)
    actor_id = pw.IntegerField(null=True)
    actor_label = pw.CharField(max_length=254, default="")
    ip = pw.CharField(max_length=45, null=True)
    request_id = pw.CharField(max_length=64, null=True)
    action = pw.CharField(max_length=48, index=True)
    entity_type = pw.CharField(max_length=48, null=True)
    entity_id = pw.IntegerField(null=True)
    changes = pw.TextField(default="{}")
    prev_hash = pw.CharField(max_length=64)
    hash = pw.CharField(max_length=64)
    # 2: the hash leaves personal details out (see writer.hashed_fields_v2); 1: entries of a
    # chain that did not verify when migration 0013 re-hashed the others.
    hash_version = pw.SmallIntegerField(default=2)
    ip_truncated = pw.BooleanField(default=False)

    class Meta:
        indexes = ((("organization", "seq"), True),
                   (("organization", "entity_type", "entity_id"), False))


class AuditChainHead(BaseModel):
    """Last seq/hash per organization; its row is locked while appending, which orders
    concurrent writers. `anchor_*` is where verification starts after retention pruning."""

    organization = pw.ForeignKeyField(Organization, primary_key=True, on_delete="CASCADE")
    seq = pw.BigIntegerField(default=0)
    hash = pw.CharField(max_length=64, default="0" * 64)
    anchor_seq = pw.BigIntegerField(default=0)
    anchor_hash = pw.CharField(max_length=64, default="0" * 64)
