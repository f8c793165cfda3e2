"""Retention (worker job, daily): delete what is older than its configured period and
shorten old IP addresses (DESIGN §3.8). Each organization gets one audit event saying what
was removed, so the audit trail itself shows that retention — not tampering — removed data.
Audit entries are pruned through audit.verify.prune_before, which moves the chain anchor so
`leakctl audit verify` keeps passing.
"""
from __future__ import annotations

import datetime as dt
import logging

from ..audit import writer
from ..audit.models import AuditEntry
from ..audit.verify import prune_before
from ..authz import Actor
from ..core.config import get_config
from ..core.db import database, iterate, utcnow
from ..identity.sessions import purge_expired
from ..jobs.models import JobRun
from ..orgs.models import Organization
from . import settings
from .events import truncate_ip
from .models import Finding, SecurityEvent

log = logging.getLogger("leakhub.security.retention")


def _truncate_ips(cutoff: dt.datetime, org_id, model=SecurityEvent) -> int:
    """Shorten the IP addresses of `model` rows (security events, audit entries: both have
    `at`, `ip`, `ip_truncated`) older than `cutoff`. Audit entries of hash version 2 leave the
    IP out of their hash, so the chain still verifies; version-1 entries (a chain that was
    already broken at migration 0013) are left as they are."""
    query = model.select(model.id, model.ip).where(
        (model.at < cutoff) & (model.ip_truncated == False)  # noqa: E712
        & model.ip.is_null(False))
    query = query.where(model.organization.is_null() if org_id is None
                        else model.organization == org_id)
    if model is AuditEntry:
        query = query.where(AuditEntry.hash_version >= 2)
    done = 0
    by_value: dict[str | None, list[int]] = {}
    for row in iterate(query):
        by_value.setdefault(truncate_ip(row.ip), []).append(row.id)
    with database.atomic():
        for value, ids in by_value.items():
            for start in range(0, len(ids), 500):
                chunk = ids[start:start + 500]
                done += (model.update(ip=value, ip_truncated=True)
                         .where(model.id.in_(chunk)).execute())
    return done


def _org_condition(model, org_id):
    return model.organization.is_null() if org_id is None else model.organization == org_id


def apply_retention(*, now: dt.datetime | None = None, config=None, env=None) -> str:
    """Job. `now` (naive UTC) is a parameter so tests and `leakctl --now` can freeze it."""
    config = config or get_config()
    now = now or utcnow()
    periods = settings.Retention.from_env(env)
    events_cutoff = now - dt.timedelta(days=periods.security_events_days)
    findings_cutoff = now - dt.timedelta(days=periods.findings_days)
    audit_cutoff = now - dt.timedelta(days=periods.audit_days)
    ip_cutoff = now - dt.timedelta(days=periods.ip_truncate_days)

    totals = {"security_events": 0, "findings": 0, "audit_entries": 0, "ips_truncated": 0,
              "audit_ips_truncated": 0}
    for org in Organization.select().order_by(Organization.id):
        counts = {
            "security_events": SecurityEvent.delete().where(
                _org_condition(SecurityEvent, org.id) & (SecurityEvent.at < events_cutoff)
            ).execute(),
            "findings": Finding.delete().where(
                (Finding.organization == org.id) & (Finding.last_seen_at < findings_cutoff)
            ).execute(),
            "audit_entries": prune_before(org, audit_cutoff),
            "ips_truncated": _truncate_ips(ip_cutoff, org.id),
            "audit_ips_truncated": _truncate_ips(ip_cutoff, org.id, AuditEntry),
        }
        for key, value in counts.items():
            totals[key] += value
        details = dict(counts, periods_days={
            "security_events": periods.security_events_days,
            "findings": periods.findings_days, "audit": periods.audit_days,
            "ip_truncate": periods.ip_truncate_days})
        writer.event(Actor.system(org, label="retention"), "retention.run", details=details)

    # Installation-wide rows (no organization): events refused before sign-in, job runs,
    # expired sessions.
    totals["security_events"] += SecurityEvent.delete().where(
        SecurityEvent.organization.is_null() & (SecurityEvent.at < events_cutoff)).execute()
    totals["ips_truncated"] += _truncate_ips(ip_cutoff, None)
    # Never the run in progress (this one, say, when `now` is frozen in the future).
    job_runs = JobRun.delete().where(
        (JobRun.started_at < now - dt.timedelta(days=periods.job_runs_days))
        & (JobRun.finished_at.is_null(False)
           | (JobRun.started_at < utcnow() - dt.timedelta(days=1)))
    ).execute()
    sessions = purge_expired(config)
    return ("removed {security_events} security event(s), {findings} finding(s), "
            "{audit_entries} audit entr(ies); truncated {ips_truncated} IP address(es) of "
            "security events and {audit_ips_truncated} of audit entries; "
            .format(**totals)
            + f"removed {job_runs} job run(s) and {sessions} expired session(s)")
