"""Data protection for an organization's administrators (issue 15, docs/data-protection.md).

- lock-out mode: temporary (Keycloak's growing wait) or permanent after 3 failed sign-ins;
  `unlock` clears Keycloak's brute-force state (and re-enables a user Keycloak disabled for a
  permanent lock-out, unless Leakhub disabled them);
- the review rules that profile staff, on or off per organization;
- erase a user (GDPR art. 17): the Keycloak user is deleted; in Leakhub the row stays as the
  pseudonym "former user #<id>" and every personal detail of theirs is removed or replaced by
  that pseudonym — the audit chain leaves those details out of its hash (audit.writer,
  hash version 2), so `leakctl audit verify` still passes;
- export a user's data as JSON (GDPR art. 15);
- mask a restored test copy (`leakctl privacy mask`): names, e-mail addresses and IP
  addresses replaced by stable fakes, in Leakhub and in the realm's Keycloak users.

Everything is authorized through authz ("manage", the administrator's permission, inside the
actor's organization only) and recorded through the audit writer.
"""
from __future__ import annotations

import hashlib
import hmac
import ipaddress
import json
import logging
import secrets

import peewee as pw
from flask_babel import gettext as _

from .. import authz
from ..audit import writer
from ..audit.models import AuditEntry
from ..authz.models import Grant, UserGroupMember
from ..backups.models import BackupDownload
from ..core.db import database, iterate, utcnow
from ..core.errors import Invalid
from ..core.times import utc_iso
from ..core.validation import Fields
from ..identity import keycloak
from ..identity.keycloak_admin import KeycloakError, KeycloakNotFound
from ..identity.models import User, WebSession
from ..leaks.models import Leak, LeakStatusChange
from ..orgs.models import Organization
from ..orgs.service import one_time_password
from ..photos.models import Photo
from ..security.keycloak_sync import sync_org
from ..security.models import Finding, SecurityEvent

log = logging.getLogger("leakhub.privacy")

LOCKOUT_MODES = ("temporary", "permanent")
LOCKOUT_FAILURES = 3


class PrivacyError(Invalid):
    """One readable line (CLI, flash message)."""


def pseudonym(user_id: int) -> str:
    """What an erased user is called from then on (stored, so not translated)."""
    return f"former user #{user_id}"


def _require_manage(actor: authz.Actor, obj=None) -> None:
    authz.require(actor, "manage", obj)


def get_user(actor: authz.Actor, user_id) -> User:
    """A user of the actor's organization, for administrators; 404 for another's."""
    return authz.get_or_404(actor, User, user_id, "manage")


def user_by_email(actor: authz.Actor, email: str) -> User:
    email = (email or "").strip().lower()
    user = (authz.scope(actor, User, "manage")
            .where(pw.fn.LOWER(User.email) == email).first())
    if user is None:
        raise PrivacyError(_("No user with e-mail %(email)s in %(org)s.", email=email,
                             org=actor.organization.slug))
    return user


# --------------------------------------------------------------------------- settings

def lockout_mode(org: Organization) -> str:
    return "permanent" if org.permanent_lockout else "temporary"


def set_privacy_settings(config, actor: authz.Actor, form, kc=None) -> Organization:
    """Lock-out mode ("temporary" | "permanent") and the profiling rules (on/off) of the
    actor's organization. Keycloak's realm is changed first; only then Leakhub (audited as
    settings.changed), so the two never disagree after an error."""
    org = actor.organization
    _require_manage(actor, org)
    f = Fields(form)
    mode = f.choice("lockout", LOCKOUT_MODES, required=True)
    raw = str(form.get("profiling_rules", "") or "").strip().lower()
    if raw not in ("", "0", "1", "on", "off", "true", "false", "yes", "no"):
        f.error("profiling_rules", _("Choose on or off."))
    f.check()
    profiling = raw in ("1", "on", "true", "yes")
    org = Organization.get_by_id(org.id)
    permanent = mode == "permanent"
    if org.permanent_lockout != permanent:
        try:
            (kc or keycloak.admin_client(config)).set_brute_force(
                org.slug, permanent=permanent, failures=LOCKOUT_FAILURES)
        except KeycloakError as exc:
            raise PrivacyError(_("The sign-in service was not updated (%(error)s); nothing "
                                 "was changed.", error=str(exc))) from None
    writer.update(actor, org, {"permanent_lockout": permanent, "profiling_rules": profiling},
                  action="settings.changed", permission="manage")
    return org


# --------------------------------------------------------------------------- unlock

def lock_state(config, actor: authz.Actor, user: User, kc=None) -> dict | None:
    """Keycloak's brute-force state of the user ({failures, locked}), None if unknown."""
    _require_manage(actor, user)
    if user.erased_at is not None:
        return None
    try:
        kc = kc or keycloak.admin_client(config)
        state = kc.get_login_failures(actor.organization.slug, user.sub)
        kc_user = kc.get_user(actor.organization.slug, user.sub)
    except KeycloakError:
        return None
    locked = bool(state.get("disabled")) or (user.enabled and not kc_user.get("enabled", True))
    return {"failures": int(state.get("numFailures") or 0), "locked": locked}


def unlock(config, actor: authz.Actor, user: User, *, reset_password: bool = False,
           kc=None) -> str | None:
    """End the user's lock-out: Keycloak's failure count is cleared and, after a permanent
    lock-out (Keycloak disabled the user), the Keycloak user is enabled again — only if
    Leakhub has the user enabled. With `reset_password` the user also gets a one-time password
    (returned once, never stored or audited) that they must change at the next sign-in.
    Audited as user.unlocked."""
    _require_manage(actor, user)
    if user.erased_at is not None:
        raise PrivacyError(_("This user was erased."))
    slug = actor.organization.slug
    kc = kc or keycloak.admin_client(config)
    password = one_time_password() if reset_password else None
    try:
        state = kc.get_login_failures(slug, user.sub)
        kc.clear_login_failures(slug, user.sub)
        kc_user = kc.get_user(slug, user.sub)
        reenabled = bool(user.enabled and not kc_user.get("enabled", True))
        if reenabled:
            kc.set_user_enabled(slug, user.sub, True)
        if password is not None:
            kc.reset_password(slug, user.sub, password, temporary=True)
    except KeycloakError as exc:
        raise PrivacyError(_("The sign-in service could not unlock the user (%(error)s).",
                             error=str(exc))) from None
    writer.event(actor, "user.unlocked", entity=user, details={
        "email": user.email, "failures": int(state.get("numFailures") or 0),
        "reenabled": reenabled, "password_reset": password is not None})
    return password


# --------------------------------------------------------------------------- erase

def _lower_set(*values) -> set[str]:
    return {v.strip().lower() for v in values if v and v.strip()}


def _contains_any(text: str, needles: set[str]) -> bool:
    low = text.lower()
    return any(n in low for n in needles)


def _replace_strings(value, needles: set[str], replacement, keys=None, inside=False):
    """`value` (decoded JSON) with every string that contains one of `needles` replaced by
    `replacement(string)`; with `keys`, only strings under those keys (anywhere in the tree)."""
    if isinstance(value, dict):
        return {k: _replace_strings(v, needles, replacement, keys, inside or (
            keys is not None and k in keys)) for k, v in value.items()}
    if isinstance(value, list):
        return [_replace_strings(v, needles, replacement, keys, inside) for v in value]
    if isinstance(value, str) and (keys is None or inside) and _contains_any(value, needles):
        return replacement(value)
    return value


def _rewrite_json(text: str, fn) -> str:
    try:
        value = json.loads(text or "{}")
    except ValueError:
        return text
    new = fn(value)
    if new == value:
        return text
    return json.dumps(new, sort_keys=True, ensure_ascii=False)


def _removes_last_admin(user: User) -> bool:
    if user.role != "admin" or not user.enabled:
        return False
    others = User.select().where((User.organization == user.organization_id)
                                 & (User.role == "admin") & (User.enabled == True)  # noqa: E712
                                 & (User.id != user.id))
    return not others.exists()


def erase_user(config, actor: authz.Actor, user: User, kc=None) -> dict:
    """GDPR art. 17. Returns what was changed (counts). See the module docstring."""
    _require_manage(actor, user)
    if user.erased_at is not None:
        raise PrivacyError(_("This user was erased already."))
    if actor.user is not None and actor.user.id == user.id:
        raise PrivacyError(_("You cannot erase yourself; ask another administrator."))
    if _removes_last_admin(user):
        raise PrivacyError(_("%(email)s is the last enabled administrator of the "
                             "organization; make someone else an administrator first.",
                             email=user.email))
    slug = actor.organization.slug
    kc = kc or keycloak.admin_client(config)
    try:
        # Keycloak's events not yet pulled would arrive later with the user's name: pull them
        # now, so the pseudonymisation below covers them.
        _pull_events(kc, actor.organization)
        kc.delete_user(slug, user.sub)
    except KeycloakNotFound:
        pass  # gone already (an earlier attempt): go on with Leakhub
    except KeycloakError as exc:
        raise PrivacyError(_("The sign-in service could not delete the user (%(error)s); "
                             "nothing was changed.", error=str(exc))) from None
    try:
        _pull_events(kc, actor.organization)  # the deletion's admin event names the user's id
    except KeycloakError as exc:
        log.warning("Keycloak events after an erasure not pulled: %s", exc)
    with database.atomic():
        writer.begin(actor)
        counts = pseudonymise(actor.organization, user)
        writer.append(actor, "user.erased", entity_type=writer.entity_type(User),
                      entity_id=user.id, changes={"pseudonym": pseudonym(user.id), **counts})
    return counts


def _pull_events(kc, org: Organization) -> None:
    for kind in ("login", "admin"):
        sync_org(kc, org, kind)


def pseudonymise(org: Organization, user: User) -> dict:
    """Replace every personal detail of `user` in Leakhub by the pseudonym (caller's
    transaction). Keycloak is the caller's business."""
    uid, p = user.id, pseudonym(user.id)
    needles = _lower_set(user.email, user.name, user.sub)
    counts = {}

    def same_org(model):
        return model.organization == org.id

    def naming(model, field, condition):
        """Ids of rows whose `field` is one of the user's strings, compared in Python:
        SQLite's LOWER folds ASCII letters only (erasure is rare; a full scan is fine)."""
        query = model.select(model.id, field).where(condition & (field != "")).tuples()
        return [row_id for row_id, value in iterate(query)
                if value and value.strip().lower() in needles]

    def repl(_text):
        return p

    User.update(email=f"erased-{uid}@erased.invalid", name=p, sub=f"erased-{uid}",
                enabled=False, last_login_at=None, language=None,
                erased_at=utcnow()).where(User.id == uid).execute()
    counts["sessions"] = WebSession.delete().where(WebSession.user == uid).execute()
    counts["grants"] = Grant.delete().where(Grant.user == uid).execute()
    counts["group_memberships"] = UserGroupMember.delete().where(
        UserGroupMember.user == uid).execute()
    found = naming(Leak, Leak.found_by, same_org(Leak))
    counts["leaks_found"] = Leak.update(found_by=p).where(
        same_org(Leak) & ((Leak.found_by_user == uid) | Leak.id.in_(found))).execute()
    repaired = naming(Leak, Leak.repaired_by, same_org(Leak))
    counts["leaks_repaired"] = Leak.update(repaired_by=p).where(Leak.id.in_(repaired)).execute()
    labelled = naming(LeakStatusChange, LeakStatusChange.actor_label, same_org(LeakStatusChange))
    counts["status_changes"] = LeakStatusChange.update(actor_label=p).where(
        same_org(LeakStatusChange) & ((LeakStatusChange.user == uid)
                                      | LeakStatusChange.id.in_(labelled))).execute()
    downloads = naming(BackupDownload, BackupDownload.user_label,
                       BackupDownload.organization == org.id)
    counts["backup_downloads"] = BackupDownload.update(user_label=p, ip=None, user_agent="").where(
        (BackupDownload.user == uid) | BackupDownload.id.in_(downloads)).execute()

    n = 0
    named = naming(SecurityEvent, SecurityEvent.username, same_org(SecurityEvent))
    events = SecurityEvent.select().where(
        same_org(SecurityEvent) & ((SecurityEvent.user == uid) | SecurityEvent.id.in_(named)))
    done = set()
    for ev in events:
        details = _rewrite_json(ev.details, lambda v: _replace_strings(v, needles, repl))
        SecurityEvent.update(user=uid, username=p, ip=None, ip_truncated=True,
                             details=details).where(SecurityEvent.id == ev.id).execute()
        done.add(ev.id)
        n += 1
    # Events of others that name the user in their details (an administrator's change of the
    # user in Keycloak: "users/<their Keycloak id>").
    escaped = needles | {json.dumps(x, ensure_ascii=False)[1:-1] for x in needles}
    for ev_id, text in iterate(SecurityEvent.select(SecurityEvent.id, SecurityEvent.details)
                               .where(same_org(SecurityEvent)).tuples()):
        if ev_id in done or not _contains_any(text or "", escaped):
            continue
        details = _rewrite_json(text, lambda v: _replace_strings(v, needles, repl))
        SecurityEvent.update(details=details).where(SecurityEvent.id == ev_id).execute()
        n += 1
    counts["security_events"] = n

    n = 0
    for finding in Finding.select().where(same_org(Finding)):
        subject = finding.subject
        kind, _sep, value = subject.partition(":")
        if kind in ("username", "user") and value.strip().lower() in needles:
            subject = f"user:{uid}"
        details = _rewrite_json(finding.details,
                                lambda v: _replace_strings(v, needles, repl))
        if subject != finding.subject or details != finding.details:
            Finding.update(subject=subject, details=details).where(
                Finding.id == finding.id).execute()
            n += 1
    counts["findings"] = n

    # The audit trail: only what its hash leaves out (writer.PERSONAL_KEYS, actor label, IP)
    # changes, so the chain still verifies.
    n = AuditEntry.update(actor_label=p, ip=None, ip_truncated=True).where(
        same_org(AuditEntry) & (AuditEntry.actor_kind == "user")
        & (AuditEntry.actor_id == uid)).execute()
    # Every entry of the organization is read (erasure is rare): a filter in SQL would miss
    # a name as JSON escapes it (quotes, backslashes).
    escaped = needles | {json.dumps(x, ensure_ascii=False)[1:-1] for x in needles}
    n = 0
    for entry in iterate(AuditEntry.select().where(
            same_org(AuditEntry) & (AuditEntry.hash_version >= 2))):
        about = entry.entity_type == "user" and entry.entity_id == uid
        if not about and not _contains_any(entry.changes or "", escaped):
            continue
        keys = writer.personal_keys(entry.entity_type)
        # In an entry about the user every personal value goes; elsewhere those naming them.
        changes = _rewrite_json(entry.changes, lambda v, keys=keys, about=about: _replace_strings(
            v, {""} if about else needles, repl, keys))
        if changes != entry.changes:
            AuditEntry.update(changes=changes).where(AuditEntry.id == entry.id).execute()
            n += 1
    counts["audit_entries"] = n
    return counts


# --------------------------------------------------------------------------- export

def _may_export(actor: authz.Actor, user: User) -> None:
    if actor.kind == "user" and actor.user is not None and actor.user.id == user.id:
        return  # one's own data (art. 15)
    _require_manage(actor, user)


def export_user(actor: authz.Actor, user: User) -> dict:
    """Everything Leakhub holds about `user` (GDPR art. 15), as JSON-ready data. Audited as
    user.exported."""
    _may_export(actor, user)
    org = actor.organization
    data = {
        "format": "leakhub-user-export/1",
        "exported_at": utc_iso(utcnow()),
        "organization": {"slug": org.slug, "name": org.name},
        "user": {"id": user.id, "email": user.email, "name": user.name, "role": user.role,
                 "enabled": user.enabled, "language": user.language,
                 "keycloak_id": user.sub, "created_at": utc_iso(user.created_at),
                 "last_login_at": utc_iso(user.last_login_at),
                 "erased_at": utc_iso(user.erased_at)},
        "grants": [{"location": g.location_id, "survey": g.survey_id, "level": g.level,
                    "expires_at": utc_iso(g.expires_at), "note": g.note,
                    "created_at": utc_iso(g.created_at)}
                   for g in Grant.select().where(Grant.user == user.id).order_by(Grant.id)],
        "groups": [{"group": m.group.name, "source": m.source,
                    "created_at": utc_iso(m.created_at)}
                   for m in UserGroupMember.select().where(UserGroupMember.user == user.id)
                   .order_by(UserGroupMember.id)],
        "sessions": [{"created_at": utc_iso(s.created_at), "last_seen_at": utc_iso(s.last_seen_at),
                      "expires_at": utc_iso(s.expires_at), "ip": s.ip, "user_agent": s.user_agent}
                     for s in WebSession.select().where(WebSession.user == user.id)],
        "security_events": [
            {"at": utc_iso(e.at), "kind": e.kind, "source": e.source, "username": e.username,
             "ip": e.ip, "details": e.details_dict}
            for e in SecurityEvent.select().where(
                (SecurityEvent.organization == org.id) & (SecurityEvent.user == user.id))
            .order_by(SecurityEvent.at)],
        "audit_entries_by_user": [
            _audit_json(e) for e in AuditEntry.select().where(
                (AuditEntry.organization == org.id) & (AuditEntry.actor_kind == "user")
                & (AuditEntry.actor_id == user.id)).order_by(AuditEntry.seq)],
        "audit_entries_about_user": [
            _audit_json(e) for e in AuditEntry.select().where(
                (AuditEntry.organization == org.id) & (AuditEntry.entity_type == "user")
                & (AuditEntry.entity_id == user.id)).order_by(AuditEntry.seq)],
        "leaks_found": [
            {"tag": lk.tag, "found_at": utc_iso(lk.found_at), "found_by": lk.found_by,
             "status": lk.status}
            for lk in Leak.select().where((Leak.organization == org.id)
                                          & (Leak.found_by_user == user.id)).order_by(Leak.id)],
        "leak_status_changes": [
            {"leak": c.leak_id, "at": utc_iso(c.at), "from": c.from_status, "to": c.to_status,
             "note": c.note}
            for c in LeakStatusChange.select().where(
                (LeakStatusChange.organization == org.id) & (LeakStatusChange.user == user.id))
            .order_by(LeakStatusChange.at)],
        "photos_uploaded": [
            {"id": ph.id, "leak": ph.leak_id, "file_name": ph.original_filename,
             "uploaded_at": utc_iso(ph.uploaded_at)}
            for ph in Photo.select().where((Photo.organization == org.id)
                                           & (Photo.uploaded_by == user.id))],
        "backup_downloads": [
            {"file": d.file_name, "at": utc_iso(d.at), "ip": d.ip, "user_agent": d.user_agent}
            for d in BackupDownload.select().where(BackupDownload.user == user.id)],
    }
    writer.event(actor, "user.exported", entity=user,
                 details={"own": actor.user is not None and actor.user.id == user.id})
    return data


def _audit_json(e: AuditEntry) -> dict:
    try:
        changes = json.loads(e.changes or "{}")
    except ValueError:
        changes = e.changes
    return {"seq": e.seq, "at": utc_iso(e.at), "action": e.action,
            "entity_type": e.entity_type, "entity_id": e.entity_id, "ip": e.ip,
            "changes": changes}


# --------------------------------------------------------------------------- mask

class Faker:
    """Stable fakes within one masking run: the same original always gives the same fake
    (so references stay consistent), and without the run's random key nobody can tell the
    original from the fake."""

    def __init__(self, key: bytes | None = None):
        self.key = key or secrets.token_bytes(32)

    def _h(self, value: str) -> bytes:
        return hmac.new(self.key, value.strip().lower().encode(), hashlib.sha256).digest()

    def person(self, value: str) -> str:
        return f"Person {self._h(value).hex()[:8]}"

    def email(self, value: str) -> str:
        return f"person-{self._h(value).hex()[:10]}@example.invalid"

    def ip(self, value: str | None) -> str | None:
        if not value:
            return value
        h = self._h(value)
        try:
            version = ipaddress.ip_address(value.split("/")[0]).version
        except ValueError:
            version = 4
        if version == 6:
            return str(ipaddress.IPv6Address("2001:db8::") + int.from_bytes(h[:8], "big"))
        # TEST-NET-1/2/3 (RFC 5737): never a real address.
        net = ("192.0.2.", "198.51.100.", "203.0.113.")[h[0] % 3]
        return net + str(1 + h[1] % 254)

    def text(self, value: str) -> str:
        return self.email(value) if "@" in value else self.person(value)


def user_fakes(user: User) -> tuple[str, str]:
    """A user's fake e-mail and name in a masked copy."""
    return f"user{user.id}@example.invalid", f"User {user.id}"


def mask_org(config, org: Organization, *, faker: Faker | None = None, kc=None,
             keycloak_too: bool = True) -> dict:
    """Replace names, e-mail addresses and IP addresses of one organization with fakes, in
    Leakhub and (`keycloak_too`) its realm's users. For a restored test copy only; the caller
    asks for confirmation. Audited as privacy.masked."""
    faker = faker or Faker()
    actor = authz.Actor.system(org, label="privacy mask")
    users = list(User.select().where(User.organization == org.id))
    known: dict[str, str] = {}  # lower-case original -> fake
    for u in users:
        email, name = user_fakes(u)
        if u.email:
            known[u.email.strip().lower()] = email
        if u.name and u.name.strip():
            known[u.name.strip().lower()] = name

    def fake_text(value):
        if not isinstance(value, str) or not value.strip():
            return value
        return known.get(value.strip().lower()) or faker.text(value)

    def mask_value(value, keys, inside=False):
        if isinstance(value, dict):
            return {k: mask_value(v, keys, inside or k in keys) for k, v in value.items()}
        if isinstance(value, list):
            return [mask_value(v, keys, inside) for v in value]
        if inside and isinstance(value, str) and value:
            return faker.ip(value) if _is_ip(value) else fake_text(value)
        return value

    def mask_json(text, keys):
        return _rewrite_json(text, lambda v: mask_value(v, keys))

    originals = sorted(known, key=len, reverse=True)

    def mask_free(value, inside=False, keys=writer.PERSONAL_KEYS):
        """Details outside the audit chain: every IP address, every string naming a user,
        every value under a personal key."""
        if isinstance(value, dict):
            return {k: mask_free(v, inside or k in keys) for k, v in value.items()}
        if isinstance(value, list):
            return [mask_free(v, inside) for v in value]
        if not isinstance(value, str) or not value:
            return value
        if _is_ip(value):
            return faker.ip(value)
        low = value.lower()
        hits = [o for o in originals if o in low]
        if hits:
            for o in hits:
                start = value.lower().find(o)
                while start >= 0:
                    value = value[:start] + known[o] + value[start + len(o):]
                    start = value.lower().find(o, start + len(known[o]))
            return value
        return fake_text(value) if inside else value

    def mask_details(text):
        return _rewrite_json(text, mask_free)

    counts = {"users": 0, "keycloak_users": 0, "leaks": 0, "audit_entries": 0,
              "security_events": 0, "findings": 0, "status_changes": 0,
              "backup_downloads": 0, "sessions": 0}
    if keycloak_too:
        counts["keycloak_users"] = _mask_keycloak(config, org, users, kc)
    with database.atomic():
        writer.begin(actor)
        for u in users:
            if u.erased_at is not None:
                continue
            email, name = user_fakes(u)
            User.update(email=email, name=name if u.name else "").where(User.id == u.id).execute()
            counts["users"] += 1
        counts["sessions"] = WebSession.delete().where(
            WebSession.organization == org.id).execute()
        for lk in Leak.select(Leak.id, Leak.found_by, Leak.repaired_by).where(
                (Leak.organization == org.id) & ((Leak.found_by != "") | (Leak.repaired_by != ""))):
            Leak.update(found_by=fake_text(lk.found_by), repaired_by=fake_text(lk.repaired_by)
                        ).where(Leak.id == lk.id).execute()
            counts["leaks"] += 1
        for c in LeakStatusChange.select(LeakStatusChange.id, LeakStatusChange.actor_label).where(
                LeakStatusChange.organization == org.id):
            LeakStatusChange.update(actor_label=fake_text(c.actor_label)).where(
                LeakStatusChange.id == c.id).execute()
            counts["status_changes"] += 1
        for d in BackupDownload.select().where(BackupDownload.organization == org.id):
            BackupDownload.update(user_label=fake_text(d.user_label), ip=faker.ip(d.ip),
                                  user_agent="").where(BackupDownload.id == d.id).execute()
            counts["backup_downloads"] += 1
        for ev in SecurityEvent.select().where(SecurityEvent.organization == org.id):
            SecurityEvent.update(
                username=fake_text(ev.username), ip=faker.ip(ev.ip),
                details=mask_details(ev.details),
            ).where(SecurityEvent.id == ev.id).execute()
            counts["security_events"] += 1
        for f in Finding.select().where(Finding.organization == org.id):
            kind, _sep, value = f.subject.partition(":")
            subject = (f"ip:{faker.ip(value)}" if kind == "ip"
                       else f"username:{fake_text(value)}" if kind == "username" else f.subject)
            Finding.update(subject=subject, details=mask_details(f.details)).where(
                Finding.id == f.id).execute()
            counts["findings"] += 1
        # The audit trail: labels and IPs by distinct value (few), `changes` only where a
        # personal key is in them. Version-1 entries (a chain broken before 0013) stay.
        audit = (AuditEntry.organization == org.id) & (AuditEntry.hash_version >= 2)
        for (label,) in (AuditEntry.select(AuditEntry.actor_label).distinct()
                         .where(audit & (AuditEntry.actor_kind == "user")).tuples()):
            fake = fake_text(label)
            if fake != label:
                counts["audit_entries"] += AuditEntry.update(actor_label=fake).where(
                    audit & (AuditEntry.actor_kind == "user")
                    & (AuditEntry.actor_label == label)).execute()
        for (ip,) in (AuditEntry.select(AuditEntry.ip).distinct()
                      .where(audit & AuditEntry.ip.is_null(False)).tuples()):
            AuditEntry.update(ip=faker.ip(ip)).where(audit & (AuditEntry.ip == ip)).execute()
        for entry_id, etype, text in iterate(AuditEntry.select(
                AuditEntry.id, AuditEntry.entity_type, AuditEntry.changes).where(audit).tuples()):
            masked = mask_json(text, writer.personal_keys(etype))
            if masked != text:
                AuditEntry.update(changes=masked).where(AuditEntry.id == entry_id).execute()
                counts["audit_entries"] += 1
        writer.append(actor, "privacy.masked", changes=counts)
    return counts


def _is_ip(value: str) -> bool:
    value = value.strip()
    if "." not in value and ":" not in value:
        return False
    try:
        ipaddress.ip_network(value, strict=False)
    except ValueError:
        return False
    return True


def _mask_keycloak(config, org: Organization, users: list[User], kc=None) -> int:
    """The realm's users get the same fakes (username = fake e-mail). Keycloak lets an
    administrator change usernames only while the realm allows editing them: allowed for the
    run, then switched off again."""
    kc = kc or keycloak.admin_client(config)
    by_sub = {u.sub: u for u in users}
    done = 0
    try:
        kc_users = kc.list_users(org.slug)
        if not kc_users:
            return 0
        kc.set_edit_username_allowed(org.slug, True)
        try:
            for i, rep in enumerate(kc_users, 1):
                u = by_sub.get(rep.get("id"))
                if u is not None:
                    email, name = user_fakes(u)
                else:
                    email, name = f"kc-user{i}@example.invalid", f"KC user {i}"
                first, _sep, last = name.rpartition(" ")
                kc.update_user(org.slug, rep["id"], {
                    "username": email, "email": email, "firstName": first, "lastName": last})
                done += 1
        finally:
            kc.set_edit_username_allowed(org.slug, False)
    except KeycloakError as exc:
        raise PrivacyError(_("The sign-in service could not be masked (%(error)s); Leakhub "
                             "was not changed.", error=str(exc))) from None
    return done
