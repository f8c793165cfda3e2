"""Grants: a user or a group × (location subtree or survey) × view/edit/admin, optionally
until a date — given, listed and revoked by the organization's administrators, and within
their subtree by department administrators (authz "manage_users"; grants to groups and
grants of surveys only by the organization's administrators). Every change goes through the
audit writer (create/delete plus grant.given / grant.revoked). Authorization itself reads the
rows (`authz.scope`), at every request."""
from __future__ import annotations

import datetime as dt

import peewee as pw
from flask_babel import gettext as _

from .. import authz
from ..audit import writer
from ..core.db import database, utcnow
from ..core.times import utc_iso
from ..core.validation import Fields, ValidationError, local_to_utc, utc_to_local
from ..identity.models import User
from ..locations.models import Location
from ..surveys.models import Survey
from .models import LEVELS, Grant, UserGroup


def list_grants(actor: authz.Actor, user: User | None = None, group: UserGroup | None = None):
    """The grants the actor manages (a department administrator: the user grants inside his
    subtrees), optionally of one user or one group."""
    authz.require(actor, "manage_users")
    query = (authz.scope(actor, Grant, "manage_users")
             .select(Grant, User, UserGroup, Location, Survey)
             .join(User, pw.JOIN.LEFT_OUTER, on=(Grant.user == User.id))
             .switch(Grant).join(UserGroup, pw.JOIN.LEFT_OUTER, on=(Grant.group == UserGroup.id))
             .switch(Grant).join(Location, pw.JOIN.LEFT_OUTER, on=(Grant.location == Location.id))
             .switch(Grant).join(Survey, pw.JOIN.LEFT_OUTER, on=(Grant.survey == Survey.id)))
    if user is not None:
        query = query.where(Grant.user == user)
    if group is not None:
        query = query.where(Grant.group == group)
    return list(query.order_by(User.email, UserGroup.name, Grant.created_at))


def grant_holder(grant: Grant) -> str:
    """Who holds the grant: the user's e-mail address or "group NAME"."""
    if grant.group_id:
        return _("group %(name)s", name=grant.group.name)
    return grant.user.email


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


def add_grant_from_form(actor: authz.Actor, form: dict, *, user: User | None = None,
                        group: UserGroup | None = None) -> Grant:
    """The grant form of the user and the group pages (target, location or survey, level,
    expiry, note): one reading of it for both holders."""
    target = form.get("target", "location")
    return add_grant(
        actor, user, group=group, level=form.get("level", ""), expires=form.get("expires", ""),
        note=form.get("note", ""),
        location_id=form.get("location") if target == "location" else None,
        survey_id=form.get("survey") if target == "survey" else None)


def add_grant(actor: authz.Actor, user: User | None = None, *, group: UserGroup | None = None,
              location_id=None, survey_id=None, level: str = "view", expires=None,
              note: str = "") -> Grant:
    """To `user` or to `group` (exactly one). `expires`: a date (or "YYYY-MM-DD"/
    "DD.MM.YYYY"); the grant is valid through that day in the organization's time zone.
    A department administrator gives user grants on locations inside his subtrees only."""
    if (user is None) == (group is None):
        raise ValidationError({"user": _("Choose a user or a group.")})
    if group is not None:
        authz.require(actor, "manage", group)
    else:
        authz.require(actor, "manage_users", user)
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
    if level == "admin" and survey_id is not None and "survey" not in f.errors:
        f.error("level", _("A department administrator is appointed on a location, not on "
                           "a survey."))
    location = survey = None
    if loc_id is not None and "location" not in f.errors:
        # A department administrator reaches only the locations of his subtrees here.
        location = (authz.scope(actor, Location, "manage_users")
                    .where(Location.id == loc_id).first())
        if location is None:
            f.error("location", _("Choose one of the offered values."))
    if survey_id is not None and "survey" not in f.errors:
        survey = (authz.scope(actor, Survey, "manage_users")
                  .where(Survey.id == survey_id).first())
        if survey is None:
            f.error("survey", _("Choose one of the offered values."))
    today = utc_to_local(utcnow(), org.timezone).date()
    if until is not None and until < today:
        f.error("expires", _("The expiry date lies in the past."))
    f.check()
    expires_at = (local_to_utc(dt.datetime.combine(until + dt.timedelta(days=1), dt.time()),
                               org.timezone) if until else None)
    holder = (Grant.user == user) if user is not None else (Grant.group == group)
    same = (Grant.select().where((Grant.organization == org) & holder
                                 & (Grant.level == level)
                                 & (Grant.expires_at.is_null() | (Grant.expires_at > utcnow()))))
    same = same.where(Grant.location == location) if location else same.where(
        Grant.survey == survey)
    if same.exists():
        raise ValidationError({"location" if location else "survey": _(
            "The user already has this grant; revoke it first to change its expiry.")})
    with database.atomic():
        grant = writer.create(actor, Grant, permission="manage_users", user=user, group=group,
                              location=location,
                              survey=survey, level=level, expires_at=expires_at, note=note)
        writer.event(actor, "grant.given", entity=grant, details=_grant_details(grant))
    return grant


def _grant_details(grant: Grant) -> dict:
    details = {"level": grant.level, "expires_at": utc_iso(grant.expires_at)}
    if grant.group_id:
        details["group"] = UserGroup.get_by_id(grant.group_id).name
    else:
        details["user"] = User.get_by_id(grant.user_id).email
    if grant.location_id:
        details.update(location=grant.location.code or grant.location.name,
                       location_id=grant.location_id)
    else:
        details.update(survey=grant.survey.name, survey_id=grant.survey_id)
    return details


def revoke_grant(actor: authz.Actor, grant: Grant) -> None:
    """Effective at the holder's next request (authorization reads grants every time)."""
    authz.require(actor, "manage" if grant.group_id else "manage_users", grant)
    details = _grant_details(grant)
    with database.atomic():
        writer.delete(actor, grant, permission="manage" if grant.group_id else "manage_users")
        writer.event(actor, "grant.revoked", entity=grant, details=details)


def get_grant(actor: authz.Actor, grant_id) -> Grant:
    return authz.get_or_404(actor, Grant, grant_id, "manage_users")


def find_grants(actor: authz.Actor, user: User | None = None, *,
                group: UserGroup | None = None, location: Location | None = None,
                survey: Survey | None = None, level: str | None = None) -> list[Grant]:
    query = authz.scope(actor, Grant, "manage_users")
    query = query.where(Grant.user == user) if user is not None else query.where(
        Grant.group == group)
    if location is not None:
        query = query.where(Grant.location == location)
    if survey is not None:
        query = query.where(Grant.survey == survey)
    if level is not None:
        query = query.where(Grant.level == level)
    return list(query)
