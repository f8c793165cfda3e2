"""Surveys: create/edit with their scope, and the comparison with the previous survey."""
from __future__ import annotations

from dataclasses import dataclass, field

from flask_babel import gettext as _
from werkzeug.exceptions import Forbidden

from .. import authz
from ..audit import writer
from ..core.db import database, utcnow
from ..core.validation import Fields, ValidationError
from ..identity.models import User
from ..leaks import calc
from ..leaks.models import FIXED_STATUSES, OPEN_STATUSES, Leak
from ..locations.models import Location
from ..locations.settings import SettingsResolver
from .models import STATUSES, Survey, SurveyScope


def list_surveys(actor, *, status: str | None = None):
    query = authz.scope(actor, Survey, "view")
    if status:
        query = query.where(Survey.status == status)
    return query.order_by(Survey.period_start.desc(), Survey.id.desc())


def scope_locations(actor, survey: Survey) -> list[Location]:
    return list(authz.scope(actor, Location, "view")
                .join(SurveyScope, on=(SurveyScope.location == Location.id))
                .where(SurveyScope.survey == survey.id).order_by(Location.path))


def scope_ids(survey: Survey) -> frozenset[int]:
    return frozenset(s.location_id for s in
                     SurveyScope.select(SurveyScope.location)
                     .where(SurveyScope.organization == survey.organization_id,
                            SurveyScope.survey == survey.id))


def parse_survey_form(data) -> dict:
    f = Fields(data)
    out = {
        "name": f.text("name", required=True, max_length=200),
        "period_start": f.date("period_start", required=True),
        "period_end": f.date("period_end"),
        "auditor_user": f.integer("auditor_user"),
        "auditor_company": f.text("auditor_company", max_length=200),
        "device": f.text("device", max_length=200),
        "status": f.choice("status", STATUSES, default="planned"),
        "coverage_percent": f.integer("coverage_percent", min_value=0, max_value=100),
        "notes": f.text("notes", max_length=10000),
        "scope": f.ids("scope"),
    }
    if out["period_start"] and out["period_end"] and out["period_end"] < out["period_start"]:
        f.error("period_end", _("The end must not be before the start."))
    f.check()
    return out


def _resolve(actor, values: dict, survey: Survey | None = None) -> dict:
    """Turn ids into rows of this organization (ValidationError naming the field). `scope`
    becomes the locations to add (ids not in `survey`'s scope yet); `scope_ids` all ids
    given. Locations already in the scope are not looked up again: the actor may not see
    them (they are kept, see update_survey)."""
    values = dict(values)
    uid = values.get("auditor_user")
    if uid not in (None, ""):
        if isinstance(uid, User):
            uid = uid.id
        user = (survey.auditor_user if survey is not None and survey.auditor_user_id
                and str(uid) == str(survey.auditor_user_id)  # kept: the actor may not see it
                else authz.scope(actor, User, "view").where(User.id == uid).first())
        if user is None:
            raise ValidationError(_("Choose a user of this organization."), "auditor_user")
        values["auditor_user"] = user
    else:
        values["auditor_user"] = None
    ids = {i.id if isinstance(i, Location) else int(i) for i in values.get("scope") or []}
    new_ids = ids - (scope_ids(survey) if survey is not None else frozenset())
    locs = (list(authz.scope(actor, Location, "view").where(Location.id.in_(new_ids)))
            if new_ids else [])
    if len(locs) != len(new_ids):
        raise ValidationError(_("Choose locations of this organization."), "scope")
    values["scope"] = sorted(locs, key=lambda loc: loc.path)
    values["scope_ids"] = ids
    return values


_FIELDS = ("name", "period_start", "period_end", "auditor_user", "auditor_company", "device",
           "status", "coverage_percent", "notes")


def may_create_survey(actor) -> bool:
    """A new survey is reached by no grant (grants name existing surveys and locations), so
    only a role that may create everywhere in the organization's security mode creates one;
    others record into the surveys their grants reach (issue 18: "New survey" is offered only
    to them, and the form is refused up front instead of ending in a 404)."""
    return authz.role_allows(actor, "create") and authz.unrestricted(actor, "create")


def create_survey(actor, /, **values) -> Survey:
    if not may_create_survey(actor):
        raise Forbidden(description=_("You may record leaks in the surveys shared with you, "
                                      "but not create surveys."))
    values = _resolve(actor, values)
    for loc in values["scope"]:  # where the survey reaches: "create" at each location
        authz.require_target(actor, "create", loc, "scope")
    with database.atomic():
        survey = writer.create(actor, Survey, **{k: values.get(k) for k in _FIELDS
                                                 if values.get(k) is not None})
        for loc in values["scope"]:
            writer.create(actor, SurveyScope, survey=survey, location=loc)
    return survey


def update_survey(actor, survey: Survey, /, *, expected_version: int | None, **values) -> Survey:
    """`scope` replaces the locations the actor sees in the scope; locations in the scope
    that the actor does not see stay. Adding or removing a location needs "edit" there."""
    authz.require(actor, "edit", survey)
    values = _resolve(actor, values, survey)
    wanted = values["scope_ids"]
    existing = {s.location_id: s for s in authz.scope(actor, SurveyScope, "view")
                .where(SurveyScope.survey == survey.id)}
    seen = {loc.id: loc for loc in scope_locations(actor, survey)}
    removed = [(seen[loc_id], row) for loc_id, row in existing.items()
               if loc_id not in wanted and loc_id in seen]
    for loc, _row in removed:
        authz.require_target(actor, "edit", loc, "scope", leaving=True)
    for loc in values["scope"]:
        authz.require_target(actor, "edit", loc, "scope")
    with database.atomic():
        changes = {k: values.get(k) for k in _FIELDS}
        for k in ("auditor_company", "device", "notes"):
            changes[k] = changes[k] or ""
        changes["status"] = changes["status"] or survey.status
        changes["updated_at"] = utcnow()
        writer.update(actor, survey, changes, expected_version=expected_version)
        for _loc, row in removed:
            writer.delete(actor, row)
        for loc in values["scope"]:
            writer.create(actor, SurveyScope, survey=survey, location=loc)
    return survey


def delete_survey(actor, survey: Survey) -> None:
    if authz.scope(actor, Leak, "view").where(Leak.survey == survey.id).exists():
        raise ValidationError(_("Leaks are recorded in this survey; it cannot be deleted."))
    writer.delete(actor, survey)


# ---------------------------------------------------------------- comparison

def earlier_surveys(actor, survey: Survey) -> list[Survey]:
    return list(authz.scope(actor, Survey, "view")
                .where(Survey.id != survey.id,
                       (Survey.period_start < survey.period_start)
                       | ((Survey.period_start == survey.period_start) & (Survey.id < survey.id)))
                .order_by(Survey.period_start.desc(), Survey.id.desc()))


def previous_survey(actor, survey: Survey) -> Survey | None:
    """The latest earlier survey with exactly the same scope (set of locations)."""
    mine = scope_ids(survey)
    for other in earlier_surveys(actor, survey):
        if scope_ids(other) == mine:
            return other
    return None


@dataclass
class Comparison:
    current: Survey
    previous: Survey | None
    new: list = field(default_factory=list)
    recurring: list = field(default_factory=list)
    still_open: list = field(default_factory=list)
    repaired: list = field(default_factory=list)
    counts: dict = field(default_factory=dict)
    limit: int = 200
    # What each survey found (leaks not "not a leak"): l/min, energy, cost and CO2 per year,
    # each leak with the settings valid at its site and date; `change` = now − before.
    found_now: calc.Totals = field(default_factory=calc.Totals)
    found_before: calc.Totals = field(default_factory=calc.Totals)

    @property
    def change(self) -> dict:
        now, before = self.found_now, self.found_before
        return {"rate_lpm": now.rate_lpm - before.rate_lpm,
                "kwh_year": now.kwh_year - before.kwh_year,
                "cost_year": now.cost_year - before.cost_year,
                "co2_kg_year": now.co2_kg_year - before.co2_kg_year}

    @property
    def currency(self) -> str:
        cur = (self.found_now.currencies or set()) | (self.found_before.currencies or set())
        return next(iter(cur)) if len(cur) == 1 else ""


def compare(actor, survey: Survey, previous: Survey | None, *, limit: int = 200) -> Comparison:
    """Leaks of `survey` against those of `previous`:
    - new: found in this survey and not a recurrence;
    - recurring: found in this survey where the previous survey had a leak that was repaired —
      linked explicitly (`previous_leak`) or at the same location and component;
    - still open: found in the previous survey and not repaired or verified yet;
    - repaired: found in the previous survey and repaired or verified since.
    Leaks marked "not a leak" are left out. Lists are cut at `limit` rows; counts are complete.
    """
    result = Comparison(current=survey, previous=previous, limit=limit)
    leaks = authz.scope(actor, Leak, "view")
    current = list(leaks.where(Leak.survey == survey.id, Leak.status != "not_a_leak")
                   .order_by(Leak.tag_number, Leak.tag))
    before = []
    if previous is not None:
        before = list(authz.scope(actor, Leak, "view")
                      .where(Leak.survey == previous.id, Leak.status != "not_a_leak")
                      .order_by(Leak.tag_number, Leak.tag))
    fixed_before = {b.id: b for b in before if b.status in FIXED_STATUSES}
    fixed_spots = {(b.location_id, b.component) for b in fixed_before.values()}
    for leak in current:
        if (leak.previous_leak_id and leak.previous_leak_id in fixed_before) or \
                (leak.location_id, leak.component) in fixed_spots:
            result.recurring.append(leak)
        else:
            result.new.append(leak)
    for b in before:
        if b.status in FIXED_STATUSES:
            result.repaired.append(b)
        elif b.status in OPEN_STATUSES or b.status == "to_review":
            result.still_open.append(b)
    resolver = SettingsResolver(actor)
    for rows, totals in ((current, result.found_now), (before, result.found_before)):
        totals.currencies = set()
        for lk in rows:
            totals.add(lk.rate_lpm, calc.figures(lk.rate_lpm, resolver.at(lk.site_id,
                                                                           lk.found_at)))
    for name in ("new", "recurring", "still_open", "repaired"):
        rows = getattr(result, name)
        result.counts[name] = len(rows)
        setattr(result, name, rows[:limit])
    return result
