"""Ending sessions on purpose: a user signs out everywhere (or an administrator does it for
them), or ends one of their other sessions from the sessions page. Leakhub's sessions end in
the database, Keycloak's through its admin API; both are security events."""
from __future__ import annotations

import logging

from .. import authz
from ..audit import writer
from ..core.db import database
from ..security.events import record
from . import keycloak
from .keycloak_admin import KeycloakError
from .models import User, WebSession
from .sessions import end_sessions_of_user, session_ref

log = logging.getLogger("leakhub.users")


def sign_out_everywhere(config, actor: authz.Actor, user: User) -> tuple[int, str | None]:
    """End all of the user's Leakhub sessions and Keycloak sessions. The user themself or an
    administrator. Returns (Leakhub sessions ended, Keycloak error or None)."""
    own = actor.kind == "user" and actor.user is not None and actor.user.id == user.id \
        and user.organization_id == actor.organization.id
    if not own:
        authz.require(actor, "manage", user)
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
