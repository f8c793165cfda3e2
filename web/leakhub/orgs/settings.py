"""An organization's settings, changed by its administrators: security mode, time zone,
language (audited as settings.changed)."""
from __future__ import annotations

from zoneinfo import available_timezones

from flask_babel import gettext as _

from .. import authz
from ..audit import writer
from ..core.validation import Fields
from .models import LANGUAGES, SECURITY_MODES, Organization


def timezones() -> list[str]:
    return sorted(available_timezones())


def update_settings(actor: authz.Actor, form) -> Organization:
    """Security mode, time zone, language of the actor's organization."""
    org = actor.organization
    authz.require(actor, "manage", org)
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
