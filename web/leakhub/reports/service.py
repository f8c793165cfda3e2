"""What goes into a leak report (per survey or per location): figures, settings used, leaks,
photos. Reads through authz.scope; the PDF itself is drawn in reports/pdf.py."""
from __future__ import annotations

import datetime as dt
from collections import Counter
from dataclasses import dataclass, field

from flask_babel import get_locale
from flask_babel import gettext as _

from .. import authz
from ..core.db import utcnow
from ..core.validation import utc_to_local
from ..dashboard.service import Figures
from ..exports.service import _Paths
from ..leaks import calc
from ..leaks import service as leaks
from ..leaks.models import FIXED_STATUSES, OPEN_STATUSES, Leak
from ..locations.models import EnergySettings, Location
from ..locations.service import subtree_condition
from ..locations.settings import DEFAULTS, SettingsResolver
from ..photos.service import photos_by_leak
from ..plans.service import plans_for_leaks
from ..surveys.models import Survey
from ..surveys.service import scope_locations

MAX_LEAKS = 20_000
MAX_PHOTOS_PER_LEAK = 4


@dataclass
class LeakRow:
    leak: Leak
    location_path: str
    location_name: str
    figures: calc.LeakFigures


@dataclass
class SettingsRow:
    scope: str
    valid_from: dt.date | None
    valid_to: dt.date | None
    params: dict


@dataclass
class ReportData:
    organization: object
    title: str
    facts: list  # [(label, value)]
    generated_at: dt.datetime  # organization's local time
    rows: list = field(default_factory=list)
    open: Figures = field(default_factory=Figures)
    fixed: Figures = field(default_factory=Figures)
    by_status: Counter = field(default_factory=Counter)
    settings: list = field(default_factory=list)
    photos: dict = field(default_factory=dict)  # leak id → [Photo]
    plans: list = field(default_factory=list)  # [plans.service.PlanPins]
    currency: str = ""
    truncated: bool = False


def _collect(actor, data: ReportData, query) -> ReportData:
    resolver = SettingsResolver(actor)
    paths = _Paths(actor)
    leaks_q = (query.order_by(Leak.tag_number, Leak.tag).limit(MAX_LEAKS + 1))
    currencies = set()
    used_sites: set = set()
    dates = []
    for lk in leaks_q:
        if len(data.rows) == MAX_LEAKS:
            data.truncated = True
            break
        site_id = lk.location.site_id
        params = resolver.at(site_id, lk.found_at)
        f = calc.figures(lk.rate_lpm, params)
        currencies.add(params.currency)
        used_sites.add(site_id)
        dates.append(lk.found_at.date())
        data.rows.append(LeakRow(lk, paths.path(lk.location_id), lk.location.name, f))
        data.by_status[lk.status] += 1
        if lk.status in OPEN_STATUSES:
            data.open.add(1, lk.rate_lpm, f)
        elif lk.status in FIXED_STATUSES:
            # Savings from the measured values when the repair was re-measured (calc.saved_lpm).
            saved = calc.saved_lpm(lk.rate_lpm, lk.after_lpm)
            data.fixed.add(1, saved, f if lk.after_lpm is None else calc.figures(saved, params))
    data.currency = next(iter(currencies)) if len(currencies) == 1 else ""
    data.settings = _settings_used(actor, used_sites, min(dates) if dates else None, paths)
    data.photos = photos_by_leak(actor, [r.leak.id for r in data.rows])
    data.plans = plans_for_leaks(actor, [r.leak for r in data.rows])
    return data


def _params(row) -> dict:
    return {name: getattr(row, name) for name in EnergySettings.VALUE_FIELDS}


def _settings_used(actor, site_ids, earliest: dt.date | None, paths: _Paths) -> list:
    """Organization rows and the rows of the sites in the report, each with its validity."""
    rows = list(authz.scope(actor, EnergySettings, "view")
                .order_by(EnergySettings.site, EnergySettings.valid_from))
    out = []
    org_rows = [r for r in rows if r.site_id is None]
    if earliest is None or not org_rows or earliest < org_rows[0].valid_from:
        out.append(SettingsRow(_("Built-in defaults"), None,
                               org_rows[0].valid_from - dt.timedelta(days=1) if org_rows else None,
                               {name: getattr(DEFAULTS, name)
                                for name in EnergySettings.VALUE_FIELDS}))
    for i, r in enumerate(org_rows):
        nxt = org_rows[i + 1].valid_from - dt.timedelta(days=1) if i + 1 < len(org_rows) else None
        out.append(SettingsRow(_("Organization"), r.valid_from, nxt, _params(r)))
    for site_id in sorted(s for s in site_ids if s is not None):
        site_rows = [r for r in rows if r.site_id == site_id]
        for i, r in enumerate(site_rows):
            nxt = (site_rows[i + 1].valid_from - dt.timedelta(days=1)
                   if i + 1 < len(site_rows) else None)
            out.append(SettingsRow(_("Site %(code)s", code=paths.path(site_id)), r.valid_from,
                                   nxt, _params(r)))
    return out


def report_language(org) -> str:
    """The language a report's numbers and dates are written in: the one its text is in
    (the user's, issue 14), else, outside a request (leakctl), the organization's."""
    current = get_locale()
    return current.language if current else (org.language or "en")


def report_date(value: dt.date | None, org) -> str:
    """German 31.03.2025, English 2025-03-31."""
    if value is None:
        return ""
    return value.strftime("%d.%m.%Y" if report_language(org).startswith("de") else "%Y-%m-%d")


def _now_local(actor) -> dt.datetime:
    return utc_to_local(utcnow(), actor.organization.timezone)


def _base_query(actor):
    return authz.scope(actor, Leak, "view", Leak.select(Leak, Location)
                       .join(Location, on=(Leak.location == Location.id)))


def survey_report(actor, survey: Survey) -> ReportData:
    authz.require(actor, "report", survey)

    def day(value: dt.date) -> str:
        return report_date(value, actor.organization)

    facts = [(_("Period"), f"{day(survey.period_start)} – "
                           f"{day(survey.period_end) if survey.period_end else '…'}")]
    if survey.auditor:
        facts.append((_("Auditor"), survey.auditor))
    if survey.device:
        facts.append((_("Device"), survey.device))
    scope = scope_locations(actor, survey)
    if scope:
        facts.append((_("Scope"), ", ".join(loc.label for loc in scope)))
    if survey.coverage_percent is not None:
        facts.append((_("Coverage"), f"{survey.coverage_percent} %"))
    data = ReportData(organization=actor.organization,
                      title=_("Leak report: %(name)s", name=survey.name), facts=facts,
                      generated_at=_now_local(actor))
    return _collect(actor, data, _base_query(actor).where(Leak.survey == survey.id))


def location_report(actor, location: Location) -> ReportData:
    authz.require(actor, "report", location)
    paths = _Paths(actor)
    facts = [(_("Location"), f"{paths.path(location.id)} · {location.name}")]
    data = ReportData(organization=actor.organization,
                      title=_("Leak report: %(name)s", name=location.name), facts=facts,
                      generated_at=_now_local(actor))
    return _collect(actor, data, _base_query(actor).where(subtree_condition(location)))


STATUS_ORDER = ("to_review", "open", "repair_planned", "deferred", "repaired", "verified",
                "not_a_leak")


def status_label(status: str) -> str:
    return str(leaks.STATUS_LABELS.get(status, status))


def component_label(component: str) -> str:
    return str(leaks.COMPONENT_LABELS.get(component, component))

