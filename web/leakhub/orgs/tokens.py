"""Token settings of an organization (issue 15 part 7), applied to its Keycloak realm:

- access-token lifetime (1–15 minutes): how long an API token or a leaked token is good for;
- the longest sign-in session (1–24 hours, idle after 30 minutes as the realm template);
- "keep me signed in" (Keycloak's *Remember me*) and how long such a session may last
  (1–30 days; idle after at most 7 days);
- refresh-token rotation, always on: every refresh token is good for one use
  (``revokeRefreshToken``, ``refreshTokenMaxReuse`` 0), so a stolen one that is replayed fails.

Keycloak's realm is changed first, then Leakhub (audited as ``settings.changed``), so the two
never disagree after an error. Used by the organization settings page and `leakctl org set`.
"""
from __future__ import annotations

from flask_babel import gettext as _

from .. import authz
from ..audit import writer
from ..core.errors import Invalid
from ..core.validation import Fields
from ..identity import keycloak
from ..identity.keycloak_admin import KeycloakError
from .models import Organization

# (minimum, maximum) of each setting; the defaults are the model's.
BOUNDS = {
    "access_token_minutes": (1, 15),
    "session_hours": (1, 24),
    "remember_me_days": (1, 30),
}
SESSION_IDLE_SECONDS = 30 * 60          # the realm template's ssoSessionIdleTimeout
REMEMBER_ME_IDLE_MAX_DAYS = 7


class TokenSettingsError(Invalid):
    """The sign-in service could not be updated; one readable line."""


def current(org: Organization) -> dict:
    return {"access_token_minutes": org.access_token_minutes,
            "session_hours": org.session_hours,
            "remember_me": bool(org.remember_me),
            "remember_me_days": org.remember_me_days}


def realm_settings(values: dict) -> dict:
    """The realm attributes (seconds) for validated values."""
    session = values["session_hours"] * 3600
    remember = values["remember_me_days"] * 86400
    return {
        "accessTokenLifespan": values["access_token_minutes"] * 60,
        "ssoSessionIdleTimeout": min(SESSION_IDLE_SECONDS, session),
        "ssoSessionMaxLifespan": session,
        "rememberMe": bool(values["remember_me"]),
        # 0 would mean "as without Remember me" in Keycloak; set them explicitly.
        "ssoSessionIdleTimeoutRememberMe": min(remember, REMEMBER_ME_IDLE_MAX_DAYS * 86400),
        "ssoSessionMaxLifespanRememberMe": remember,
        "revokeRefreshToken": True,
        "refreshTokenMaxReuse": 0,
    }


def validate(form) -> dict:
    f = Fields(form)
    values = {}
    for name, (low, high) in BOUNDS.items():
        values[name] = f.integer(name, required=True, min_value=low, max_value=high)
    raw = str(f.raw("remember_me") or "").strip().lower()
    if raw not in ("", "0", "1", "on", "off", "true", "false", "yes", "no"):
        f.error("remember_me", _("Choose on or off."))
    values["remember_me"] = raw in ("1", "on", "true", "yes")
    f.check()
    return values


def set_token_settings(config, actor: authz.Actor, form, kc=None) -> Organization:
    """Validate, apply to the realm, then store and audit (``settings.changed``)."""
    org = actor.organization
    authz.require(actor, "manage", org)
    values = validate(form)
    org = Organization.get_by_id(org.id)
    try:
        (kc or keycloak.admin_client(config)).set_token_settings(org.slug,
                                                                 realm_settings(values))
    except KeycloakError as exc:
        raise TokenSettingsError(_("The sign-in service was not updated (%(error)s); nothing "
                                   "was changed.", error=str(exc))) from None
    writer.update(actor, org, values, action="settings.changed", permission="manage")
    return org
