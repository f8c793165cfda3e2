"""Security events (from Leakhub and pulled from Keycloak), review findings, and the
bookkeeping that makes the Keycloak sync and the review incremental (DESIGN §3.7)."""
from __future__ import annotations

import json

import peewee as pw

from ..core.db import BaseModel, OrgScoped, utcnow
from ..identity.models import User
from ..orgs.models import Organization

SOURCES = ("leakhub", "keycloak")
KINDS = (
    "sign_in", "sign_in_failed", "sign_out", "session_expired", "access_denied",
    "csrf_rejected", "token_rejected", "rate_limited", "lockout", "credential_changed",
    "auth_error", "admin_event", "ip_denied",
)
SEVERITIES = ("low", "medium", "high")
SEVERITY_RANK = {"high": 0, "medium": 1, "low": 2}
FINDING_STATUSES = ("open", "acknowledged")


class JsonDetails:
    """`details` is JSON text in the database; `.details_dict` decodes it."""

    @property
    def details_dict(self) -> dict:
        try:
            value = json.loads(self.details or "{}")
        except ValueError:
            return {}
        return value if isinstance(value, dict) else {}


class SecurityEvent(OrgScoped, JsonDetails):
    """Something that matters for security: a sign-in, a failure, a denial, a lock-out,
    an admin action in Keycloak. `at` is when it happened (Keycloak's time for pulled
    events); `recorded_at` when Leakhub stored it (the review's watermark runs on it)."""

    # Nullable: a request may be refused before anyone could tell the organization.
    organization = pw.ForeignKeyField(Organization, null=True, on_delete="CASCADE")
    at = pw.DateTimeField(default=utcnow)
    recorded_at = pw.DateTimeField(default=utcnow, index=True)
    source = pw.CharField(max_length=16, default="leakhub")
    kind = pw.CharField(max_length=32)
    user = pw.ForeignKeyField(User, null=True, on_delete="SET NULL")
    username = pw.CharField(max_length=254, default="")
    ip = pw.CharField(max_length=45, null=True)
    ip_truncated = pw.BooleanField(default=False)
    request_id = pw.CharField(max_length=64, null=True)
    details = pw.TextField(default="{}")
    # Keycloak's event id (or a stable hash when it has none); unique per organization.
    external_id = pw.CharField(max_length=80, null=True)

    class Meta:
        indexes = (
            (("organization", "external_id"), True),
            (("organization", "at"), False),
            (("organization", "kind", "at"), False),
        )


class Finding(OrgScoped, JsonDetails):
    """What the review found: one open finding per (rule, subject), counting the events
    that matched. Acknowledged findings stay; new matches open a new finding."""

    AUDIT_TYPE = "security_finding"
    AUDIT_SKIP = ("details", "updated_at")

    organization = pw.ForeignKeyField(Organization, on_delete="CASCADE")
    rule = pw.CharField(max_length=48)
    severity = pw.CharField(max_length=8)
    subject = pw.CharField(max_length=254)  # "user:12", "username:bob", "ip:10.1.2.3"
    first_seen_at = pw.DateTimeField()
    last_seen_at = pw.DateTimeField(index=True)
    count = pw.IntegerField(default=0)
    details = pw.TextField(default="{}")
    status = pw.CharField(max_length=16, default="open")
    acknowledged_by = pw.ForeignKeyField(User, null=True, on_delete="SET NULL")
    acknowledged_at = pw.DateTimeField(null=True)
    ack_comment = pw.TextField(default="")
    created_at = pw.DateTimeField(default=utcnow)
    updated_at = pw.DateTimeField(default=utcnow)
    version = pw.IntegerField(default=1)

    class Meta:
        indexes = (
            (("organization", "status"), False),
            (("organization", "rule", "subject", "status"), False),
        )


class FindingEvent(BaseModel):
    """Which event (or audit entry) already counted for which rule, so re-reviewing the
    same events — the review re-reads a safety margin — never counts twice."""

    organization = pw.ForeignKeyField(Organization, on_delete="CASCADE")
    finding = pw.ForeignKeyField(Finding, on_delete="CASCADE")
    rule = pw.CharField(max_length=48)
    ref = pw.CharField(max_length=32)  # "e:<security event id>" | "a:<audit entry id>"

    class Meta:
        indexes = ((("organization", "rule", "ref"), True),)


class KeycloakEventCursor(BaseModel):
    """How far the Keycloak sync got per organization and event kind (login/admin):
    the newest event time (epoch ms) and the ids already stored at exactly that time."""

    organization = pw.ForeignKeyField(Organization, on_delete="CASCADE")
    kind = pw.CharField(max_length=8)  # login | admin
    last_time = pw.BigIntegerField(null=True)
    seen_ids = pw.TextField(default="[]")
    updated_at = pw.DateTimeField(default=utcnow)

    class Meta:
        indexes = ((("organization", "kind"), True),)


class SecurityReviewState(BaseModel):
    """The review's watermark and the last digest e-mail, per organization."""

    organization = pw.ForeignKeyField(Organization, primary_key=True, on_delete="CASCADE")
    reviewed_until = pw.DateTimeField(null=True)
    last_digest_at = pw.DateTimeField(null=True)
