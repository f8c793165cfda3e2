"""The security review (worker job): rules over security events and audit entries that
open or update Findings, and a daily digest e-mail to each organization's administrators.

Incremental and idempotent: each organization keeps a watermark (`reviewed_until`) on the
time events were *stored*, and every run re-reads a safety margin before it (a transaction
may commit a little after its rows got their time). Which event already counted for which
rule is kept in FindingEvent, so re-reading never counts anything twice. Rules that look at
a window (failures per 15 minutes, networks of the last 90 days) read all stored events in
that window, including Keycloak events that arrived late.
"""
from __future__ import annotations

import bisect
import datetime as dt
import json
import logging
import smtplib
import ssl
from dataclasses import dataclass, field
from email.message import EmailMessage
from zoneinfo import ZoneInfo

import peewee as pw
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l

from ..audit.models import AuditEntry
from ..core.config import get_config
from ..core.db import database, iterate, utcnow
from ..core.errors import Unavailable
from ..core.i18n import recipient_locale, speaking
from ..core.secrets import read_secret
from ..identity.models import User
from ..orgs.models import Organization
from . import settings
from .events import network_of
from .models import Finding, FindingEvent, SecurityEvent, SecurityReviewState

log = logging.getLogger("leakhub.security.review")

OVERLAP = dt.timedelta(minutes=10)
NETWORK_HISTORY = dt.timedelta(days=90)
# A sign-in is reported by Leakhub and by Keycloak a moment apart: history for the
# new-network rule ends this long before the sign-in, so the twin is not "history".
SIBLING_TOLERANCE = dt.timedelta(minutes=5)

RULES = {
    "failed_sign_ins_user": (_l("Repeated failed sign-ins for one user"), "medium"),
    "failed_sign_ins_ip": (_l("Repeated failed sign-ins from one address"), "high"),
    "lockout": (_l("Account locked after failed sign-ins"), "medium"),
    "new_network": (_l("Sign-in from a network not seen for this user"), "low"),
    "access_denied_user": (_l("Many refused requests for one user"), "medium"),
    "role_admin": (_l("User made an administrator"), "high"),
    "backup_download": (_l("Backup downloaded"), "low"),
    "unusual_hours": (_l("Activity outside working hours"), "low"),
}


@dataclass(frozen=True)
class WindowRule:
    name: str
    kind: str
    by: str  # "user" | "ip"
    threshold: int
    window: dt.timedelta


WINDOW_RULES = (
    WindowRule("failed_sign_ins_user", "sign_in_failed", "user", 5, dt.timedelta(minutes=15)),
    WindowRule("failed_sign_ins_ip", "sign_in_failed", "ip", 10, dt.timedelta(minutes=15)),
    WindowRule("access_denied_user", "access_denied", "user", 20, dt.timedelta(minutes=10)),
)


def rule_title(rule: str) -> str:
    return str(RULES.get(rule, (rule, ""))[0])


# --------------------------------------------------------------------------- subjects


def user_subject(ev: SecurityEvent):
    """("user:12", label) when the user is known, ("username:bob", "bob") otherwise."""
    if ev.user_id:
        return f"user:{ev.user_id}", ev.username or f"#{ev.user_id}"
    if ev.username:
        name = ev.username.strip().lower()
        return f"username:{name}"[:254], name
    return None


def ip_subject(ev: SecurityEvent):
    return (f"ip:{ev.ip}", ev.ip) if ev.ip else None


def _same_subject(subject: str):
    kind, _, value = subject.partition(":")
    if kind == "user":
        return SecurityEvent.user == int(value)
    if kind == "username":
        return (SecurityEvent.user.is_null()) & (pw.fn.LOWER(SecurityEvent.username) == value)
    return SecurityEvent.ip == value


# --------------------------------------------------------------------------- findings


@dataclass
class Tally:
    opened: int = 0
    updated: int = 0
    by_rule: dict = field(default_factory=dict)


def _merge_details(old: dict, extra: dict) -> dict:
    out = dict(old)
    for key, value in extra.items():
        if isinstance(value, list):
            merged = list(out.get(key) or [])
            merged += [v for v in value if v not in merged]
            out[key] = merged[-20:]
        else:
            out[key] = value
    return out


def trigger(org, rule: str, subject: str, label: str, refs: list[tuple[str, dt.datetime]],
            *, now: dt.datetime, extra: dict | None = None, tally: Tally | None = None):
    """Count `refs` (event refs with their times) towards the open finding of (rule, subject),
    opening one when there is none. Refs counted before — for any finding — are skipped."""
    refs = {ref: at for ref, at in refs}
    with database.atomic():
        known = set()
        for chunk in pw.chunked(list(refs), 500):
            known.update(r for (r,) in FindingEvent.select(FindingEvent.ref).where(
                (FindingEvent.organization == org.id) & (FindingEvent.rule == rule)
                & (FindingEvent.ref.in_(chunk))).tuples())
        new = {r: at for r, at in refs.items() if r not in known}
        if not new:
            return None
        first, last = min(new.values()), max(new.values())
        finding = (Finding.select().where(
            (Finding.organization == org.id) & (Finding.rule == rule)
            & (Finding.subject == subject) & (Finding.status == "open"))
            .order_by(Finding.id.desc()).first())
        details = _merge_details(finding.details_dict if finding else {},
                                 dict(extra or {}, label=label))
        if finding is None:
            finding = Finding.create(
                organization=org.id, rule=rule, severity=RULES[rule][1], subject=subject[:254],
                first_seen_at=first, last_seen_at=last, count=len(new),
                details=json.dumps(details, sort_keys=True), created_at=now, updated_at=now)
            outcome = "opened"
        else:
            Finding.update(
                count=Finding.count + len(new),
                first_seen_at=min(first, finding.first_seen_at),
                last_seen_at=max(last, finding.last_seen_at),
                details=json.dumps(details, sort_keys=True), updated_at=now,
            ).where(Finding.id == finding.id).execute()
            outcome = "updated"
        rows = [{"organization": org.id, "finding": finding.id, "rule": rule, "ref": r}
                for r in new]
        for chunk in pw.chunked(rows, 500):
            FindingEvent.insert_many(chunk).execute()
    if tally is not None:
        setattr(tally, outcome, getattr(tally, outcome) + 1)
        tally.by_rule[rule] = tally.by_rule.get(rule, 0) + 1
    return outcome


def _ref(ev) -> str:
    return f"e:{ev.id}" if isinstance(ev, SecurityEvent) else f"a:{ev.id}"


# --------------------------------------------------------------------------- rules


def _window_rule(org, rule: WindowRule, new_events, *, now, tally):
    subject_of = user_subject if rule.by == "user" else ip_subject
    candidates = [e for e in new_events if e.kind == rule.kind and subject_of(e)]
    if not candidates:
        return
    lo = min(e.at for e in candidates) - rule.window
    hi = max(e.at for e in candidates)
    by_subject: dict[str, list] = {}
    for ev in (SecurityEvent.select().where(
            (SecurityEvent.organization == org.id) & (SecurityEvent.kind == rule.kind)
            & (SecurityEvent.at >= lo) & (SecurityEvent.at <= hi))
            .order_by(SecurityEvent.at, SecurityEvent.id)):
        subj = subject_of(ev)
        if subj:
            by_subject.setdefault(subj[0], []).append(ev)
    # Per subject, the union of all windows (ending at a new event) that reach the threshold:
    # one trigger per subject and run, however large the burst.
    times = {subject: [w.at for w in evs] for subject, evs in by_subject.items()}
    hits: dict[str, tuple[str, list]] = {}
    for ev in candidates:
        subject, label = subject_of(ev)
        lo = bisect.bisect_left(times[subject], ev.at - rule.window)
        hi = bisect.bisect_right(times[subject], ev.at)
        if hi - lo >= rule.threshold:
            hits.setdefault(subject, (label, []))[1].append((lo, hi))
    for subject, (label, ranges) in hits.items():
        refs, covered = {}, -1
        for lo, hi in sorted(ranges):
            for w in by_subject[subject][max(lo, covered):hi]:
                refs[_ref(w)] = w.at
            covered = max(covered, hi)
        trigger(org, rule.name, subject, label, list(refs.items()), now=now, tally=tally,
                extra={"threshold": rule.threshold,
                       "window_minutes": int(rule.window.total_seconds() // 60)})


def _lockouts(org, new_events, *, now, tally):
    for ev in new_events:
        if ev.kind != "lockout":
            continue
        subj = user_subject(ev) or ip_subject(ev)
        if subj:
            trigger(org, "lockout", subj[0], subj[1], [(_ref(ev), ev.at)], now=now, tally=tally)


def _new_networks(org, new_events, *, now, tally):
    for ev in new_events:
        if ev.kind != "sign_in":
            continue
        subj, net = user_subject(ev), network_of(ev.ip)
        if not subj or not net:
            continue
        history = (SecurityEvent.select(SecurityEvent.ip).where(
            (SecurityEvent.organization == org.id) & (SecurityEvent.kind == "sign_in")
            & _same_subject(subj[0]) & (SecurityEvent.id != ev.id)
            & (SecurityEvent.at >= ev.at - NETWORK_HISTORY)
            & (SecurityEvent.at < ev.at - SIBLING_TOLERANCE)))
        nets = {network_of(h.ip) for h in history}
        if not nets:
            continue  # a user's first sign-in (in 90 days) sets the baseline
        if net not in nets:
            trigger(org, "new_network", subj[0], subj[1], [(_ref(ev), ev.at)], now=now,
                    tally=tally, extra={"networks": [net]})


def _new_role(changes: dict):
    for key in ("role", "new_role", "to"):
        value = changes.get(key)
        if isinstance(value, list) and len(value) == 2:
            return value[1]
        if isinstance(value, str):
            return value
    return None


def _actor_subject(entry: AuditEntry):
    if entry.actor_kind == "user" and entry.actor_id:
        return f"user:{entry.actor_id}", entry.actor_label
    return f"{entry.actor_kind}:{entry.actor_label}"[:254], entry.actor_label


def _changes(entry: AuditEntry) -> dict:
    try:
        value = json.loads(entry.changes or "{}")
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


ROLE_CHANGED, BACKUP_DOWNLOADED = "user.role_changed", "backup.downloaded"


def _audit_entries(org, since, now, *, hours):
    """The audit entries some rule may count, in batches from the database: an organization's
    trail holds hundreds of thousands of entries (every leak recorded, imported, changed), of
    which the rules without work hours need two actions only; read whole, 364,000 entries took
    8 s of CPU and +360 MB in the worker at every run within the overlap."""
    relevant = AuditEntry.action.in_([ROLE_CHANGED, BACKUP_DOWNLOADED])
    if hours:
        relevant |= (AuditEntry.actor_kind == "user") & AuditEntry.actor_id.is_null(False)
    query = (AuditEntry.select(
        AuditEntry.id, AuditEntry.at, AuditEntry.action, AuditEntry.actor_kind,
        AuditEntry.actor_id, AuditEntry.actor_label, AuditEntry.entity_type,
        AuditEntry.entity_id,
        pw.Case(None, [(AuditEntry.action == ROLE_CHANGED, AuditEntry.changes)],
                "{}").alias("changes"))
        .where((AuditEntry.organization == org.id) & (AuditEntry.at <= now) & relevant)
        .order_by(AuditEntry.seq).namedtuples())
    if since is not None:
        query = query.where(AuditEntry.at > since)
    return iterate(query)


def _audit_rules(org, entries, *, now, hours, tz, tally):
    for entry in entries:
        changes = _changes(entry)
        if entry.action == ROLE_CHANGED and _new_role(changes) == "admin":
            if entry.entity_type == "user" and entry.entity_id:
                target = User.get_or_none(User.id == entry.entity_id)
                subject = f"user:{entry.entity_id}"
                label = target.email if target else str(changes.get("email") or subject)
            else:
                subject, label = _actor_subject(entry)
            trigger(org, "role_admin", subject, label, [(_ref(entry), entry.at)], now=now,
                    tally=tally, extra={"changed_by": [entry.actor_label]})
        if entry.action == BACKUP_DOWNLOADED:
            subject, label = _actor_subject(entry)
            trigger(org, "backup_download", subject, label, [(_ref(entry), entry.at)], now=now,
                    tally=tally)
        if hours and entry.actor_kind == "user" and entry.actor_id and not _working(entry.at,
                                                                                   hours, tz):
            subject, label = _actor_subject(entry)
            trigger(org, "unusual_hours", subject, label, [(_ref(entry), entry.at)], now=now,
                    tally=tally, extra={"work_hours": "{:02d}-{:02d}".format(*hours)})


def _working(at: dt.datetime, hours, tz) -> bool:
    local = at.replace(tzinfo=dt.UTC).astimezone(tz)
    return settings.in_work_hours(local.hour, hours)


def _unusual_sign_ins(org, new_events, *, now, hours, tz, tally):
    if not hours:
        return
    for ev in new_events:
        # Leakhub's own sign-ins only: Keycloak reports the same sign-in a second time.
        if ev.kind != "sign_in" or ev.source != "leakhub" or _working(ev.at, hours, tz):
            continue
        subj = user_subject(ev)
        if subj:
            trigger(org, "unusual_hours", subj[0], subj[1], [(_ref(ev), ev.at)], now=now,
                    tally=tally, extra={"work_hours": "{:02d}-{:02d}".format(*hours)})


def org_timezone(org) -> dt.tzinfo:
    try:
        return ZoneInfo(org.timezone or "UTC")
    except Exception:
        return dt.UTC


def review_org(org: Organization, *, now: dt.datetime, hours, tally: Tally) -> None:
    state, _ = SecurityReviewState.get_or_create(organization=org.id)
    since = state.reviewed_until - OVERLAP if state.reviewed_until else None
    events = SecurityEvent.select().where(
        (SecurityEvent.organization == org.id) & (SecurityEvent.recorded_at <= now))
    if since is not None:
        events = events.where(SecurityEvent.recorded_at > since)
    new_events = list(events.order_by(SecurityEvent.at, SecurityEvent.id))
    tz = org_timezone(org)
    # The rules that profile staff ("new network", "unusual hours") only where the
    # organization switched them on (off for new organizations: docs/data-protection.md).
    if not org.profiling_rules:
        hours = None
    for rule in WINDOW_RULES:
        _window_rule(org, rule, new_events, now=now, tally=tally)
    _lockouts(org, new_events, now=now, tally=tally)
    if org.profiling_rules:
        _new_networks(org, new_events, now=now, tally=tally)
    _unusual_sign_ins(org, new_events, now=now, hours=hours, tz=tz, tally=tally)
    _audit_rules(org, _audit_entries(org, since, now, hours=hours), now=now, hours=hours,
                 tz=tz, tally=tally)
    (SecurityReviewState.update(reviewed_until=now)
     .where(SecurityReviewState.organization == org.id).execute())


# --------------------------------------------------------------------------- digest


SEVERITY_LABELS = {"high": _l("high"), "medium": _l("medium"), "low": _l("low")}


def _fmt(at: dt.datetime, tz, locale: str = "en") -> str:
    """A time in the organization's zone: 03.12.2026 14:05 CET in German, ISO in English."""
    local = at.replace(tzinfo=dt.UTC).astimezone(tz)
    return local.strftime("%d.%m.%Y %H:%M %Z" if locale == "de" else "%Y-%m-%d %H:%M %Z")


def digest_for(org, findings, config, locale: str = "en") -> tuple[str, str]:
    """(subject, body) of the digest in `locale` (the recipients' language)."""
    with speaking(locale):
        tz = org_timezone(org)
        subject = _("[Leakhub] Security findings for %(org)s", org=org.name)
        lines = [_("Security review of %(org)s: %(n)d finding(s) need attention.",
                   org=org.name, n=len(findings)), ""]
        for f in findings:
            severity = str(SEVERITY_LABELS.get(f.severity, f.severity)).upper()
            lines.append(_("[%(severity)s] %(title)s — %(subject)s: %(count)d event(s), "
                           "%(first)s to %(last)s",
                           severity=severity, title=rule_title(f.rule),
                           subject=f.details_dict.get("label") or f.subject, count=f.count,
                           first=_fmt(f.first_seen_at, tz, locale),
                           last=_fmt(f.last_seen_at, tz, locale)))
        lines += ["", _("Review and acknowledge them at %(url)s",
                        url=f"{config.public_url}/security")]
    return subject, "\n".join(lines) + "\n"


def send_mail(smtp, password: str | None, recipients, subject, body) -> None:
    msg = EmailMessage()
    msg["From"] = smtp.sender
    msg["To"] = ", ".join(recipients)
    msg["Subject"] = subject
    msg.set_content(body)
    with smtplib.SMTP(smtp.host, smtp.port, timeout=30) as conn:
        conn.ehlo()
        if smtp.starttls:
            conn.starttls(context=ssl.create_default_context())
            conn.ehlo()
        if smtp.user:
            conn.login(smtp.user, password or "")
        conn.send_message(msg)


def send_digests(orgs, *, now, config, smtp) -> tuple[int, list[str]]:
    """One e-mail per organization and day at most, listing findings opened or updated since
    the last digest. Returns (mails sent, problems)."""
    sent, problems = 0, []
    password = read_secret(config.secrets_dir, "smtp-password") if smtp.user else None
    for org in orgs:
        state = SecurityReviewState.get_or_none(SecurityReviewState.organization == org.id)
        last = state.last_digest_at if state else None
        if last is not None and now - last < dt.timedelta(hours=24):
            continue
        query = Finding.select().where((Finding.organization == org.id)
                                       & (Finding.status == "open"))
        if last is not None:
            query = query.where(Finding.updated_at > last)
        findings = sorted(query, key=lambda f: ({"high": 0, "medium": 1}.get(f.severity, 2),
                                                -f.last_seen_at.timestamp()))
        if not findings:
            continue
        admins = list(User.select().where(
            (User.organization == org.id) & (User.role == "admin")
            & (User.enabled == True) & (User.email != "")).order_by(User.id))  # noqa: E712
        if not admins:
            problems.append(f"{org.slug}: no administrator with an e-mail address")
            continue
        # One mail per language: each administrator reads it in their own language (their
        # choice, else the organization's).
        by_language: dict[str, list[str]] = {}
        for admin in admins:
            admin.organization = org
            by_language.setdefault(recipient_locale(admin), []).append(admin.email)
        failed = False
        for locale, recipients in sorted(by_language.items()):
            subject, body = digest_for(org, findings, config, locale)
            try:
                send_mail(smtp, password, recipients, subject, body)
            except (OSError, smtplib.SMTPException) as exc:
                problems.append(f"{org.slug}: mail not sent ({type(exc).__name__}: {exc})"[:300])
                failed = True
                break
        if failed:
            continue
        (SecurityReviewState.update(last_digest_at=now)
         .where(SecurityReviewState.organization == org.id).execute())
        sent += 1
    return sent, problems


class ReviewError(Unavailable):
    """The review ran, but the digest could not be delivered everywhere."""


def review_security_events(*, now: dt.datetime | None = None, config=None, env=None) -> str:
    """Job: apply the rules for every organization, then send the daily digests."""
    config = config or get_config()
    now = now or utcnow()
    hours = settings.work_hours(env)
    smtp = settings.smtp(env, config)
    tally = Tally()
    orgs = list(Organization.select().order_by(Organization.id))
    for org in orgs:
        review_org(org, now=now, hours=hours, tally=tally)
    message = (f"{len(orgs)} organization(s) reviewed: {tally.opened} finding(s) opened, "
               f"{tally.updated} updated")
    if smtp is None:
        return message + "; digest: e-mail not configured (LEAKHUB_SMTP_HOST is empty), skipped"
    sent, problems = send_digests(orgs, now=now, config=config, smtp=smtp)
    message += f"; digest: {sent} e-mail(s) sent"
    if problems:
        raise ReviewError(message + "; problems: " + "; ".join(problems))
    return message
