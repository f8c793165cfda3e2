"""User administration for an organization's administrators (authz "manage").

- invite: the Keycloak user (required actions UPDATE_PASSWORD, plus VERIFY_EMAIL when the
  realm can send mail) and the User mirror with its role. With SMTP configured Keycloak mails
  the link; otherwise a one-time password is returned to the caller, who shows it once. It is
  never stored by Leakhub, never written to the audit trail or a log.
- role changes, approval of users waiting for access, disable/enable (disabling ends the
  user's Leakhub sessions in the same transaction and the Keycloak sessions right after),
  sign-out of all sessions; the last enabled administrator cannot be removed.
- grants (location subtree or survey, view/edit, optional expiry date).
- effective access: why a user can or cannot see/edit a leak, from authz itself.
- organization settings (security mode, time zone, language).

Every change goes through the audit writer: the field change (create/update/delete) and the
named administrative event (user.invited, user.role_changed {from, to}, user.disabled,
user.enabled, user.signed_out, grant.given, grant.revoked, settings.changed).
"""
from __future__ import annotations

import datetime as dt
import hashlib
import logging
import os
import re
from dataclasses import dataclass, field
from zoneinfo import available_timezones

import peewee as pw
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l

from .. import authz
from ..audit import writer
from ..authz.models import LEVELS, Grant
from ..core.config import smtp_from_env
from ..core.db import database, is_postgres, utcnow
from ..core.errors import Invalid
from ..core.secrets import SecretMissing, read_secret
from ..core.validation import Fields, ValidationError, local_to_utc, utc_to_local
from ..identity import keycloak
from ..identity.keycloak_admin import APP_CLIENT_ID, KeycloakConflict, KeycloakError
from ..identity.models import ROLES, User, WebSession
from ..identity.sessions import end_sessions_of_user
from ..leaks.models import Leak
from ..locations.models import Location
from ..orgs.models import SECURITY_MODES, Organization
from ..surveys.models import Survey

log = logging.getLogger("leakhub.users")

EMAIL_RE = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
INVITE_EMAIL_LIFESPAN = 3 * 24 * 3600  # seconds the e-mailed link stays valid

ROLE_LABELS = {
    "admin": _l("Administrator"),
    "manager": _l("Manager"),
    "editor": _l("Editor"),
    "viewer": _l("Viewer"),
    "external": _l("External"),
}
ROLE_HINTS = {
    "admin": _l("everything, including users, grants, settings and backups"),
    "manager": _l("all data and the audit log, regardless of the security mode"),
    "editor": _l("reads and writes data as the security mode and grants allow"),
    "viewer": _l("reads data as the security mode and grants allow; never writes"),
    "external": _l("only what grants give (e.g. an external auditor)"),
}
# The wording of orgs.models.SECURITY_MODES, translatable.
MODE_LABELS = {
    1: _l("everybody reads and writes all data"),
    2: _l("everybody reads all data, writes only where granted"),
    3: _l("reads and writes only where granted"),
}
MODE_HINTS = {
    1: _l("Editors create and change every leak, viewers read everything. Grants matter only "
          "for external users."),
    2: _l("Editors and viewers read everything; editors change only locations or surveys they "
          "were granted with level “edit”."),
    3: _l("Editors and viewers see only the locations and surveys they were granted. "
          "Administrators and managers always see everything."),
}
LEVEL_LABELS = {"view": _l("view"), "edit": _l("view and edit")}
ACTION_LABELS = {"view": _l("see"), "edit": _l("edit")}
LANGUAGE_LABELS = {"en": "English", "de": "Deutsch"}

assert set(MODE_LABELS) == set(SECURITY_MODES)


class UserError(Invalid):
    """One readable line (CLI, flash message)."""


# --------------------------------------------------------------------------- helpers

def _require_manage(actor: authz.Actor, obj=None) -> None:
    authz.require(actor, "manage", obj)


def users_query(actor: authz.Actor):
    """The organization's users, for administrators (tenant-scoped through authz)."""
    return authz.scope(actor, User, "manage")


def get_user(actor: authz.Actor, user_id) -> User:
    return authz.get_or_404(actor, User, user_id, "manage")


def user_by_email(actor: authz.Actor, email: str) -> User:
    email = (email or "").strip().lower()
    user = users_query(actor).where(pw.fn.LOWER(User.email) == email).first()
    if user is None:
        raise UserError(f"no user with e-mail {email!r} in {actor.organization.slug}")
    return user


def list_users(actor: authz.Actor) -> list[User]:
    """Users with a role (pending ones are listed by `pending_users`)."""
    return list(users_query(actor).where(User.role.is_null(False))
                .order_by(User.enabled.desc(), User.email))


def pending_users(actor: authz.Actor) -> list[User]:
    """Signed in without an invitation: they see the "waiting for access" page."""
    return list(users_query(actor).where(User.role.is_null()).order_by(User.created_at.desc()))


def _split_name(name: str) -> tuple[str, str]:
    first, _sep, last = (name or "").strip().rpartition(" ")
    return (first, last) if first else (last, "")


def _lock_admins(org: Organization) -> int:
    """Number of enabled administrators, with their rows locked until the transaction ends
    (PostgreSQL), so two administrators cannot demote each other at the same moment."""
    query = User.select(User.id).where((User.organization == org) & (User.role == "admin")
                                       & (User.enabled == True))  # noqa: E712
    if is_postgres():
        query = query.for_update()
    return len(list(query))


def _removes_last_admin(user: User, *, role: str | None, enabled: bool) -> bool:
    if user.role != "admin" or not user.enabled:
        return False
    if role == "admin" and enabled:
        return False
    return _lock_admins(user.organization) <= 1


def _fresh(user: User) -> User:
    return User.get_by_id(user.id)


# --------------------------------------------------------------------------- SMTP

def keycloak_smtp(smtp, password: str | None) -> dict:
    """Keycloak's realm `smtpServer` representation of the mail settings."""
    rep = {"host": smtp.host, "port": str(smtp.port), "from": smtp.sender,
           "fromDisplayName": smtp.sender_name, "starttls": smtp.starttls, "ssl": smtp.ssl,
           "auth": bool(smtp.user)}
    if smtp.user:
        rep["user"] = smtp.user
        if password:
            rep["password"] = password
    return rep


def smtp_settings(config, env: dict | None = None):
    """Outgoing mail for invitations, or None (LEAKHUB_SMTP_HOST unset). Read at call time
    through the one parser in core.config, so a changed environment needs no new Config."""
    return smtp_from_env(os.environ if env is None else env, config.public_url)


def configure_realm_smtp(config, slug: str, smtp, kc=None) -> None:
    """Give the organization's realm the mail server, so Keycloak can send the invitation
    (execute-actions e-mail). Idempotent; called on every invitation."""
    password = None
    if smtp.user:
        try:
            password = read_secret(config.secrets_dir, "smtp-password")
        except SecretMissing:
            password = None
    (kc or keycloak.admin_client(config)).set_smtp_server(
        slug, keycloak_smtp(smtp, password))


# --------------------------------------------------------------------------- invite

@dataclass
class Invitation:
    user: User
    one_time_password: str | None   # shown once by the caller, never stored
    delivery: str                    # "email" | "one_time_password"
    warning: str | None = None


def validate_email(f: Fields, name: str = "email") -> str:
    email = (f.text(name, required=True, max_length=254) or "").lower()
    if email and not EMAIL_RE.match(email):
        f.error(name, _("Enter a valid e-mail address, e.g. anna.berg@example.com."))
    return email


def invite(config, actor: authz.Actor, *, email: str, role: str, name: str = "") -> Invitation:
    from ..orgs.service import one_time_password

    _require_manage(actor)
    f = Fields({"email": email, "role": role, "name": name})
    email = validate_email(f)
    role = f.choice("role", ROLES, required=True)
    name = f.text("name", max_length=200)
    f.check()
    if users_query(actor).where(pw.fn.LOWER(User.email) == email).exists():
        raise ValidationError({"email": _("A user with this e-mail address exists already.")})
    slug = actor.organization.slug
    kc = keycloak.admin_client(config)
    smtp = smtp_settings(config)
    actions = ["UPDATE_PASSWORD"] + (["VERIFY_EMAIL"] if smtp else [])
    password = None if smtp else one_time_password()
    first, last = _split_name(name)
    try:
        if smtp:
            configure_realm_smtp(config, slug, smtp, kc)
        sub = kc.create_user(slug, email=email, first_name=first, last_name=last,
                             temporary_password=password, required_actions=actions)
    except KeycloakConflict:
        raise ValidationError({"email": _(
            "The sign-in service already has a user with this e-mail address.")}) from None
    except KeycloakError as exc:
        raise UserError(str(exc)) from None
    delivery, warning = "one_time_password", None
    try:
        if smtp:
            try:
                kc.execute_actions_email(slug, sub, actions, client_id=APP_CLIENT_ID,
                                         lifespan=INVITE_EMAIL_LIFESPAN)
                delivery = "email"
            except KeycloakError as exc:
                log.warning("invitation e-mail failed, falling back to a one-time password: %s",
                            exc, extra={"org": slug})
                password = one_time_password()
                kc.reset_password(slug, sub, password, temporary=True)
                warning = _("The invitation e-mail could not be sent; pass on the one-time "
                            "password instead.")
        with database.atomic():
            user = writer.create(actor, User, sub=sub, email=email, name=name, role=role)
            writer.event(actor, "user.invited", entity=user,
                         details={"email": email, "role": role, "delivery": delivery})
    except BaseException as exc:
        try:
            kc.delete_user(slug, sub)
        except KeycloakError:
            log.warning("could not remove the half-invited user from Keycloak",
                        extra={"org": slug})
        if isinstance(exc, KeycloakError):
            raise UserError(str(exc)) from None
        raise
    return Invitation(user, None if delivery == "email" else password, delivery, warning)


# --------------------------------------------------------------------------- role, enabled

def set_role(config, actor: authz.Actor, user: User, role: str) -> User:
    """Change the role (or approve a user waiting for access). Effective at the user's next
    request: authorization reads the role from the database every time."""
    _require_manage(actor, user)
    f = Fields({"role": role})
    role = f.choice("role", ROLES, required=True)
    f.check()
    with database.atomic():
        user = _fresh(user)
        old = user.role
        if old == role:
            return user
        if _removes_last_admin(user, role=role, enabled=user.enabled):
            raise ValidationError({"role": _(
                "%(email)s is the last enabled administrator of the organization; make "
                "someone else an administrator first.", email=user.email)})
        writer.update(actor, user, {"role": role}, permission="manage")
        details = {"email": user.email, "from": old, "to": role}
        if old is None:
            details["approved"] = True
        writer.event(actor, "user.role_changed", entity=user, details=details)
    return user


def set_enabled(config, actor: authz.Actor, user: User, enabled: bool) -> User:
    """Disable: at once in Leakhub (sessions deleted in the same transaction, authorization
    refuses the user from the next request), then in Keycloak (which ends its sessions)."""
    _require_manage(actor, user)
    with database.atomic():
        user = _fresh(user)
        if user.enabled == enabled:
            return user
        if not enabled and _removes_last_admin(user, role=user.role, enabled=False):
            raise UserError(_("%(email)s is the last enabled administrator of the organization "
                              "and cannot be disabled.", email=user.email))
        writer.update(actor, user, {"enabled": enabled}, permission="manage")
        ended = 0 if enabled else end_sessions_of_user(user)
        details = {"email": user.email}
        if not enabled:
            details["sessions_ended"] = ended
        writer.event(actor, "user.enabled" if enabled else "user.disabled", entity=user,
                     details=details)
    try:
        keycloak.admin_client(config).set_user_enabled(actor.organization.slug, user.sub, enabled)
    except KeycloakError as exc:
        if enabled:
            raise UserError(_("Enabled in Leakhub, but the sign-in service was not updated "
                              "(%(error)s); try again.", error=str(exc))) from None
        raise UserError(_("Disabled in Leakhub and the user's sessions ended, but the sign-in "
                          "service was not updated (%(error)s); try again.",
                          error=str(exc))) from None
    return user


# --------------------------------------------------------------------------- sessions

def session_ref(row: WebSession) -> str:
    """A handle for a session in forms and links; not the database key."""
    return hashlib.sha256(("ref:" + row.id).encode()).hexdigest()[:24]


def live_sessions(config, user: User) -> list[WebSession]:
    now = utcnow()
    idle = dt.timedelta(minutes=config.session_idle_minutes)
    return list(WebSession.select().where(
        (WebSession.user == user) & (WebSession.organization == user.organization_id)
        & (WebSession.expires_at > now) & (WebSession.last_seen_at > now - idle))
        .order_by(WebSession.last_seen_at.desc()))


def describe_agent(ua: str | None) -> str:
    """"Firefox on Linux" from a User-Agent header (for people, not for decisions)."""
    ua = ua or ""
    browser = next((name for key, name in (
        ("Edg/", "Edge"), ("OPR/", "Opera"), ("Firefox/", "Firefox"), ("Chromium/", "Chromium"),
        ("Chrome/", "Chrome"), ("Safari/", "Safari"), ("curl/", "curl"),
        ("python-requests", "Python requests")) if key in ua), "")
    system = next((name for key, name in (
        ("Android", "Android"), ("iPhone", "iOS"), ("iPad", "iPadOS"), ("Windows", "Windows"),
        ("Mac OS X", "macOS"), ("CrOS", "ChromeOS"), ("Linux", "Linux")) if key in ua), "")
    if browser and system:
        return _("%(browser)s on %(system)s", browser=browser, system=system)
    return browser or system or (ua[:60] if ua else _("unknown browser"))


def sign_out_everywhere(config, actor: authz.Actor, user: User) -> tuple[int, str | None]:
    """End all of the user's Leakhub sessions and Keycloak sessions. The user themself or an
    administrator. Returns (Leakhub sessions ended, Keycloak error or None)."""
    from ..security.events import record

    own = actor.kind == "user" and actor.user is not None and actor.user.id == user.id \
        and user.organization_id == actor.organization.id
    if not own:
        _require_manage(actor, user)
    with database.atomic():
        ended = end_sessions_of_user(user)
        if not own:
            writer.event(actor, "user.signed_out", entity=user,
                         details={"email": user.email, "sessions_ended": ended})
    kc_error = None
    try:
        keycloak.admin_client(config).logout_user(actor.organization.slug, user.sub)
    except KeycloakError as exc:
        kc_error = str(exc)
        log.warning("could not end the Keycloak sessions: %s", exc,
                    extra={"org": actor.organization.slug})
    record("sign_out", organization=actor.organization, user=user,
           details={"via": "everywhere" if own else "administrator", "sessions_ended": ended,
                    "by": actor.display, "keycloak": "failed" if kc_error else "ok"})
    return ended, kc_error


def end_session(config, actor: authz.Actor, ref: str, *, current_sid: str | None = None) -> bool:
    """The signed-in user ends one of their other sessions (and its Keycloak session)."""
    from ..security.events import record

    user = actor.user
    row = next((s for s in WebSession.select().where(WebSession.user == user)
                if session_ref(s) == ref), None)
    if row is None:
        return False
    row.delete_instance()
    if row.kc_sid and row.kc_sid != current_sid:
        try:
            keycloak.admin_client(config).logout_session(actor.organization.slug, row.kc_sid)
        except KeycloakError as exc:
            log.warning("could not end the Keycloak session: %s", exc,
                        extra={"org": actor.organization.slug})
    record("sign_out", organization=actor.organization, user=user,
           details={"via": "sessions page"})
    return True


# --------------------------------------------------------------------------- grants

def list_grants(actor: authz.Actor, user: User | None = None):
    _require_manage(actor)
    query = (authz.scope(actor, Grant, "manage")
             .select(Grant, User, Location, Survey)
             .join(User, on=(Grant.user == User.id))
             .switch(Grant).join(Location, pw.JOIN.LEFT_OUTER, on=(Grant.location == Location.id))
             .switch(Grant).join(Survey, pw.JOIN.LEFT_OUTER, on=(Grant.survey == Survey.id)))
    if user is not None:
        query = query.where(Grant.user == user)
    return list(query.order_by(User.email, Grant.created_at))


def grant_active(grant: Grant, now: dt.datetime | None = None) -> bool:
    return grant.expires_at is None or grant.expires_at > (now or utcnow())


def grant_valid_through(grant: Grant, tzname: str | None) -> dt.date | None:
    """The last day a grant is valid (it ends at the following local midnight)."""
    if grant.expires_at is None:
        return None
    return (utc_to_local(grant.expires_at, tzname) - dt.timedelta(seconds=1)).date()


def grant_target(grant: Grant) -> str:
    if grant.location_id:
        return _("location %(loc)s (with everything below)", loc=grant.location.label)
    return _("survey %(name)s", name=grant.survey.name)


def location_by_code(actor: authz.Actor, code: str) -> Location:
    rows = list(authz.scope(actor, Location, "view").where(Location.code == (code or "").strip())
                .limit(2))
    if not rows:
        raise ValidationError({"location": _("There is no location with code %(code)s.",
                                             code=code)})
    if len(rows) > 1:
        raise ValidationError({"location": _("Several locations have code %(code)s; use the "
                                             "web page to choose one.", code=code)})
    return rows[0]


def add_grant(actor: authz.Actor, user: User, *, location_id=None, survey_id=None,
              level: str = "view", expires=None, note: str = "") -> Grant:
    """`expires`: a date (or "YYYY-MM-DD"/"DD.MM.YYYY"); the grant is valid through that day
    in the organization's time zone."""
    _require_manage(actor, user)
    org = actor.organization
    f = Fields({"location": location_id, "survey": survey_id, "level": level,
                "expires": expires, "note": note})
    loc_id = f.integer("location", min_value=1)
    survey_id = f.integer("survey", min_value=1)
    level = f.choice("level", LEVELS, required=True)
    until = f.date("expires")
    note = f.text("note", max_length=200)
    if loc_id is None and survey_id is None and "location" not in f.errors \
            and "survey" not in f.errors:
        f.error("location", _("Choose a location or a survey."))
    if loc_id is not None and survey_id is not None:
        f.error("survey", _("Choose either a location or a survey, not both."))
    location = survey = None
    if loc_id is not None and "location" not in f.errors:
        location = authz.scope(actor, Location, "view").where(Location.id == loc_id).first()
        if location is None:
            f.error("location", _("Choose one of the offered values."))
    if survey_id is not None and "survey" not in f.errors:
        survey = authz.scope(actor, Survey, "view").where(Survey.id == survey_id).first()
        if survey is None:
            f.error("survey", _("Choose one of the offered values."))
    today = utc_to_local(utcnow(), org.timezone).date()
    if until is not None and until < today:
        f.error("expires", _("The expiry date lies in the past."))
    f.check()
    expires_at = (local_to_utc(dt.datetime.combine(until + dt.timedelta(days=1), dt.time()),
                               org.timezone) if until else None)
    same = (Grant.select().where((Grant.organization == org) & (Grant.user == user)
                                 & (Grant.level == level)
                                 & (Grant.expires_at.is_null() | (Grant.expires_at > utcnow()))))
    same = same.where(Grant.location == location) if location else same.where(
        Grant.survey == survey)
    if same.exists():
        raise ValidationError({"location" if location else "survey": _(
            "The user already has this grant; revoke it first to change its expiry.")})
    with database.atomic():
        grant = writer.create(actor, Grant, user=user, location=location, survey=survey,
                              level=level, expires_at=expires_at, note=note)
        writer.event(actor, "grant.given", entity=grant, details=_grant_details(grant, user))
    return grant


def _grant_details(grant: Grant, user: User) -> dict:
    details = {"user": user.email, "level": grant.level,
               "expires_at": grant.expires_at.isoformat() + "Z" if grant.expires_at else None}
    if grant.location_id:
        details.update(location=grant.location.code or grant.location.name,
                       location_id=grant.location_id)
    else:
        details.update(survey=grant.survey.name, survey_id=grant.survey_id)
    return details


def revoke_grant(actor: authz.Actor, grant: Grant) -> None:
    """Effective at the user's next request (authorization reads grants every time)."""
    _require_manage(actor, grant)
    user = User.get_by_id(grant.user_id)
    details = _grant_details(grant, user)
    with database.atomic():
        writer.delete(actor, grant)
        writer.event(actor, "grant.revoked", entity=grant, details=details)


def get_grant(actor: authz.Actor, grant_id) -> Grant:
    return authz.get_or_404(actor, Grant, grant_id, "manage")


def find_grants(actor: authz.Actor, user: User, *, location: Location | None = None,
                survey: Survey | None = None, level: str | None = None) -> list[Grant]:
    query = authz.scope(actor, Grant, "manage").where(Grant.user == user)
    if location is not None:
        query = query.where(Grant.location == location)
    if survey is not None:
        query = query.where(Grant.survey == survey)
    if level is not None:
        query = query.where(Grant.level == level)
    return list(query)


# --------------------------------------------------------------------------- effective access

@dataclass
class Decision:
    action: str
    allowed: bool
    reason: str
    grant: Grant | None = None
    consistent: bool = True   # the explanation agrees with authz.can (always, by construction)


@dataclass
class GrantLine:
    grant: Grant
    target: str
    active: bool
    valid_through: dt.date | None
    gives: list[str] = field(default_factory=list)  # actions this grant gives on the leak


@dataclass
class Access:
    user: User
    leak: Leak
    mode: int
    decisions: list[Decision]
    grants: list[GrantLine]


def find_leak(actor: authz.Actor, *, tag: str | None = None, leak_id=None) -> Leak:
    from ..leaks.service import leak_by_tag

    if leak_id not in (None, ""):
        leak = authz.scope(actor, Leak, "view").where(
            Leak.id == _int_or_zero(leak_id)).first()
        if leak is None:
            raise ValidationError({"leak": _("There is no leak with id %(id)s.", id=leak_id)})
        return leak
    tag = (tag or "").strip()
    if not tag:
        raise ValidationError({"leak": _("Enter a tag number.")})
    leak = leak_by_tag(actor, tag[:32])
    if leak is None:
        raise ValidationError({"leak": _("There is no leak with tag %(tag)s.", tag=tag)})
    return leak


def _int_or_zero(value) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return 0


def effective_access(actor: authz.Actor, user: User, leak: Leak) -> Access:
    """Why `user` can or cannot see / edit `leak`. The yes/no is `authz.can` for an Actor
    of that user; the explanation follows the same steps authz takes (role, security mode
    through `unrestricted`, then the grant filter authz uses) on the same grant rows."""
    _require_manage(actor, user)
    _require_manage(actor, leak)
    org = actor.organization
    subject = authz.Actor(organization=org, kind="user", user=user)
    location = Location.get_by_id(leak.location_id)
    reach = Grant.location.in_(location.ancestor_ids)
    if leak.survey_id:
        reach = reach | (Grant.survey == leak.survey_id)
    candidates = (Grant.select(Grant, Location, Survey)
                  .join(Location, pw.JOIN.LEFT_OUTER, on=(Grant.location == Location.id))
                  .switch(Grant).join(Survey, pw.JOIN.LEFT_OUTER, on=(Grant.survey == Survey.id))
                  .where((Grant.organization == org) & (Grant.user == user) & reach))
    mode = org.security_mode
    role = user.role
    role_label = str(ROLE_LABELS.get(role, role or ""))
    decisions = []
    applying: dict[str, set] = {}
    for action in ("view", "edit"):
        allowed = authz.can(subject, action, leak)
        what = str(ACTION_LABELS[action])
        grant = None
        if not user.enabled:
            expected, reason = False, _("The user is disabled: no access at all.")
        elif role is None:
            expected, reason = False, _("The user is waiting for access (no role yet): no "
                                        "access at all.")
        elif not authz.role_allows(subject, action):
            expected, reason = False, _(
                "The role %(role)s never allows to %(action)s leaks, whatever grants say.",
                role=role_label, action=what)
        elif authz.unrestricted(subject, action):
            expected = True
            if role in authz.UNRESTRICTED_ROLES:
                reason = _("Role %(role)s: may %(action)s every leak of the organization, "
                           "in every security mode.", role=role_label, action=what)
            else:
                reason = _("Security mode %(mode)d (%(text)s): role %(role)s may %(action)s "
                           "every leak.", mode=mode, text=MODE_LABELS[mode], role=role_label,
                           action=what)
        else:
            # authz's own grant filter: the user's grants of a sufficient level, not expired.
            found = list(candidates.where(authz._grant_filter(subject, action))
                         .order_by(Location.depth.desc(nulls="LAST"), Grant.id))
            for g in found:
                applying.setdefault(g.id, set()).add(action)
            grant = found[0] if found else None
            expected = grant is not None
            if role == "external":
                why = _("Role %(role)s reaches leaks only through grants.", role=role_label)
            else:
                why = _("Security mode %(mode)d (%(text)s): role %(role)s needs a grant to "
                        "%(action)s.", mode=mode, text=MODE_LABELS[mode], role=role_label,
                        action=what)
            if grant is not None:
                reason = why + " " + _("The grant on %(target)s (level %(level)s) reaches this "
                                       "leak.", target=grant_target(grant),
                                       level=LEVEL_LABELS[grant.level])
            else:
                need = LEVEL_LABELS["edit"] if action == "edit" else _("view or edit")
                reason = why + " " + _("No active grant with level %(need)s covers this leak's "
                                       "location (or a location above it) or its survey.",
                                       need=need)
        decisions.append(Decision(action, allowed, reason, grant, consistent=allowed == expected))
    now = utcnow()
    lines = [GrantLine(g, grant_target(g), grant_active(g, now),
                       grant_valid_through(g, org.timezone), sorted(applying.get(g.id, ())))
             for g in candidates.order_by(Grant.id)]
    return Access(user, leak, mode, decisions, lines)


# --------------------------------------------------------------------------- settings

def timezones() -> list[str]:
    return sorted(available_timezones())


def update_settings(actor: authz.Actor, form) -> Organization:
    """Security mode, time zone, language of the actor's organization."""
    from ..app import LANGUAGES

    org = actor.organization
    _require_manage(actor, org)
    f = Fields(form)
    mode = f.choice("security_mode", tuple(SECURITY_MODES), required=True)
    tz = f.text("timezone", required=True, max_length=64)
    if tz and tz not in available_timezones():
        f.error("timezone", _("Unknown time zone; use a name like Europe/Berlin."))
    language = f.choice("language", LANGUAGES, required=True)
    f.check()
    org = Organization.get_by_id(org.id)
    writer.update(actor, org, {"security_mode": mode, "timezone": tz, "language": language},
                  action="settings.changed", permission="manage")
    return org
