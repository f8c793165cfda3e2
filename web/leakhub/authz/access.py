"""Effective access: why a user can or cannot see / edit a leak, for administrators. The
yes/no is `authz.can` itself; the explanation follows the steps authz takes."""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

import peewee as pw
from flask_babel import gettext as _

from .. import authz
from ..core.db import utcnow
from ..core.validation import ValidationError
from ..identity.models import ROLE_LABELS, User
from ..leaks.models import Leak
from ..locations.models import Location
from ..orgs.models import MODE_LABELS
from ..surveys.models import Survey
from .grants import grant_active, grant_holder, grant_target, grant_valid_through
from .models import ACTION_LABELS, LEVEL_LABELS, Grant


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
    holder: str = ""   # the user's e-mail address, or "group NAME" (via which group)


@dataclass
class Access:
    user: User
    leak: Leak
    mode: int
    decisions: list[Decision]
    grants: list[GrantLine]


def find_leak(actor: authz.Actor, *, tag: str | None = None, leak_id=None) -> Leak:
    if leak_id not in (None, ""):
        leak = authz.scope(actor, Leak, "view").where(
            Leak.id == _int_or_zero(leak_id)).first()
        if leak is None:
            raise ValidationError({"leak": _("There is no leak with id %(id)s.", id=leak_id)})
        return leak
    tag = (tag or "").strip()
    if not tag:
        raise ValidationError({"leak": _("Enter a tag number.")})
    leak = authz.scope(actor, Leak, "view").where(Leak.tag == tag[:32]).first()
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
    authz.require(actor, "manage_users", user)
    authz.require(actor, "manage_users", leak)
    org = actor.organization
    subject = authz.Actor(organization=org, kind="user", user=user)
    location = Location.get_by_id(leak.location_id)
    reach = Grant.location.in_(location.ancestor_ids)
    if leak.survey_id:
        reach = reach | (Grant.survey == leak.survey_id)
    candidates = (Grant.select(Grant, Location, Survey)
                  .join(Location, pw.JOIN.LEFT_OUTER, on=(Grant.location == Location.id))
                  .switch(Grant).join(Survey, pw.JOIN.LEFT_OUTER, on=(Grant.survey == Survey.id))
                  .where((Grant.organization == org) & authz._grant_holder(subject) & reach))
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
                if grant.group_id:
                    reason = why + " " + _(
                        "The grant of group %(group)s on %(target)s (level %(level)s) reaches "
                        "this leak.", group=grant.group.name, target=grant_target(grant),
                        level=LEVEL_LABELS[grant.level])
                else:
                    reason = why + " " + _(
                        "The grant on %(target)s (level %(level)s) reaches this leak.",
                        target=grant_target(grant), level=LEVEL_LABELS[grant.level])
            else:
                need = LEVEL_LABELS["edit"] if action == "edit" else _("view or edit")
                reason = why + " " + _("No active grant with level %(need)s covers this leak's "
                                       "location (or a location above it) or its survey.",
                                       need=need)
        decisions.append(Decision(action, allowed, reason, grant, consistent=allowed == expected))
    now = utcnow()
    lines = [GrantLine(g, grant_target(g), grant_active(g, now),
                       grant_valid_through(g, org.timezone), sorted(applying.get(g.id, ())),
                       grant_holder(g))
             for g in candidates.order_by(Grant.id)]
    return Access(user, leak, mode, decisions, lines)
