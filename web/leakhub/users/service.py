"""User administration for an organization's administrators (authz "manage").

- invite: the Keycloak user (required actions UPDATE_PASSWORD, plus VERIFY_EMAIL when the
  realm can send mail) and the User mirror with its role. With SMTP configured Keycloak mails
  the link; otherwise a one-time password is returned to the caller, who shows it once. It is
  never stored by Leakhub, never written to the audit trail or a log.
- role changes, approval of users waiting for access, disable/enable (disabling ends the
  user's Leakhub sessions in the same transaction and the Keycloak sessions right after);
  the last enabled administrator cannot be removed.

Elsewhere: grants and effective access in authz.grants / authz.access, sessions and
sign-out in identity.sessions / identity.signout, organization settings in orgs.settings.

Every change goes through the audit writer: the field change (create/update/delete) and the
named administrative event (user.invited, user.role_changed {from, to}, user.disabled,
user.enabled).
"""
from __future__ import annotations

import logging
import os
from dataclasses import dataclass

import peewee as pw
from flask_babel import gettext as _

from .. import authz
from ..audit import writer
from ..authz.grants import add_grant
from ..authz.models import LEVELS
from ..core.config import smtp_from_env
from ..core.db import database, is_postgres
from ..core.errors import Invalid
from ..core.secrets import SecretMissing, read_secret
from ..core.validation import Fields, ValidationError, validate_email
from ..identity import keycloak
from ..identity.keycloak_admin import APP_CLIENT_ID, KeycloakConflict, KeycloakError
from ..identity.models import ROLES, User
from ..identity.sessions import end_sessions_of_user
from ..locations.models import Location
from ..orgs.models import LANGUAGES, Organization
from ..orgs.service import one_time_password

log = logging.getLogger("leakhub.users")

INVITE_EMAIL_LIFESPAN = 3 * 24 * 3600  # seconds the e-mailed link stays valid


class UserError(Invalid):
    """One readable line (CLI, flash message)."""


# --------------------------------------------------------------------------- helpers

def _require_manage(actor: authz.Actor, obj=None) -> None:
    authz.require(actor, "manage", obj)


def users_query(actor: authz.Actor):
    """The organization's users, for administrators (tenant-scoped through authz); for a
    department administrator the users of his subtrees (authz "manage_users")."""
    return authz.scope(actor, User, "manage_users")


def get_user(actor: authz.Actor, user_id) -> User:
    return authz.get_or_404(actor, User, user_id, "manage_users")


def invite_roles(actor: authz.Actor) -> tuple:
    """The roles the actor may give when inviting: all for the organization's administrators,
    never admin or manager for a department administrator (no escalation)."""
    return ROLES if authz.org_wide_admin(actor) else authz.DELEGATED_ROLE_CHOICES


def user_by_email(actor: authz.Actor, email: str) -> User:
    email = (email or "").strip().lower()
    user = users_query(actor).where(pw.fn.LOWER(User.email) == email).first()
    if user is None:
        raise UserError(f"no user with e-mail {email!r} in {actor.organization.slug}")
    return user


def list_users(actor: authz.Actor) -> list[User]:
    """Users with a role (pending ones are listed by `pending_users`)."""
    authz.require(actor, "manage_users")
    return list(users_query(actor).where(User.role.is_null(False) & User.erased_at.is_null())
                .order_by(User.enabled.desc(), User.email))


def pending_users(actor: authz.Actor) -> list[User]:
    """Signed in without an invitation: they see the "waiting for access" page."""
    return list(users_query(actor).where(User.role.is_null() & User.erased_at.is_null())
                .order_by(User.created_at.desc()))


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


# --------------------------------------------------------------------------- language

def set_language(config, actor: authz.Actor, language: str, kc=None) -> tuple[User, str | None]:
    """The signed-in user's own interface language ("en", "de", or "" for the organization's),
    stored in Leakhub (audited as user.language_changed) and copied to the Keycloak user's
    `locale` attribute, so the sign-in, password and e-mail pages of Keycloak match (the
    effective language: the user's, else the organization's). Returns the user and a warning
    when Keycloak could not be updated (Leakhub keeps the choice; saving again retries)."""
    user = actor.user
    if user is None:
        raise UserError(_("Only a signed-in user has a language of their own."))
    f = Fields({"language": language})
    choice = f.choice("language", LANGUAGES, default="")  # blank: the organization's
    f.check()
    new = choice or None
    with database.atomic():
        user = _fresh(user)
        if user.language != new:
            writer.begin(actor)
            User.update(language=new).where(User.id == user.id).execute()
            writer.append(actor, "user.language_changed", entity_type=writer.entity_type(User),
                          entity_id=user.id,
                          changes={"language": [user.language, new]})
            user.language = new
    effective = new or actor.organization.language
    try:
        (kc or keycloak.admin_client(config)).set_user_locale(
            actor.organization.slug, user.sub, effective)
    except KeycloakError as exc:
        log.warning("could not set the Keycloak locale of user %s: %s", user.id, exc)
        return user, _("Saved in Leakhub, but the sign-in service was not updated "
                       "(%(error)s); its pages keep their language until you save again.",
                       error=str(exc))
    return user, None


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


def invite(config, actor: authz.Actor, *, email: str, role: str, name: str = "",
           location_id=None, level: str = "view") -> Invitation:
    """A department administrator invites into his subtree: `location_id` (inside it) is
    required and the new user gets a grant of `level` there in the same transaction."""
    authz.require(actor, "manage_users")
    delegated = not authz.org_wide_admin(actor)
    f = Fields({"email": email, "role": role, "name": name, "location": location_id,
                "level": level})
    email = validate_email(f)
    role = f.choice("role", invite_roles(actor), required=True)
    name = f.text("name", max_length=200)
    loc_id = f.integer("location", min_value=1, required=delegated)
    level = f.choice("level", LEVELS, default="view")
    f.check()
    if loc_id is not None and not authz.scope(actor, Location, "manage_users").where(
            Location.id == loc_id).exists():
        raise ValidationError({"location": _("Choose one of the offered values.")})
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
            user = writer.create(actor, User, permission="manage_users", sub=sub, email=email,
                                 name=name, role=role)
            writer.event(actor, "user.invited", entity=user,
                         details={"email": email, "role": role, "delivery": delivery})
            if loc_id is not None:
                add_grant(actor, user, location_id=loc_id, level=level)
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


