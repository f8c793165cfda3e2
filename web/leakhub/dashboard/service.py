"""Dashboard figures, aggregated in SQL.

Cost, energy and CO2 depend on the settings valid at each leak's site and date. Settings are
piecewise constant between the `valid_from` dates of the organization's settings rows, so the
database groups leaks by (site, settings period, status, component) — a few hundred groups even
for 100,000 leaks — and Python applies leaks/calc.py once per group (all figures are linear in
the leak rate, so the figures of a group's summed rate equal the sum of its leaks' figures).
Every query starts from `authz.scope` (so later permission filters apply here too).
"""
from __future__ import annotations

import datetime as dt
from collections import defaultdict
from dataclasses import dataclass, field
from decimal import Decimal

import peewee as pw

from .. import authz
from ..core.db import is_postgres, utcnow
from ..leaks import calc
from ..leaks.models import FIXED_STATUSES, OPEN_STATUSES, Leak
from ..locations.models import EnergySettings, Location
from ..locations.settings import SettingsResolver

EPOCH = dt.date(1900, 1, 1)
TREND_MONTHS = 24


def site_id_expr():
    """The site id from the location's materialized path "/site/building/area/"."""
    if is_postgres():
        return pw.Cast(pw.fn.split_part(Location.path, "/", 2), "INTEGER")
    rest = pw.fn.substr(Location.path, 2)
    return pw.Cast(pw.fn.substr(Location.path, 2, pw.fn.instr(rest, "/") - 1), "INTEGER")


def month_expr(column):
    if is_postgres():
        return pw.fn.to_char(column, "YYYY-MM")
    return pw.fn.strftime("%Y-%m", column)


def period_boundaries(actor) -> list[dt.date]:
    """Every date on which some settings row (organization or site) starts to apply."""
    dates = (authz.scope(actor, EnergySettings, "view",
                         EnergySettings.select(EnergySettings.valid_from).distinct())
             .order_by(EnergySettings.valid_from).tuples())
    return sorted({d for (d,) in dates})


def period_expr(boundaries: list[dt.date]):
    """0 before the first boundary, i after boundaries[i-1]."""
    if not boundaries:
        return pw.Value(0, converter=False)
    whens = [(Leak.found_at >= dt.datetime.combine(b, dt.time()), i)
             for i, b in reversed(list(enumerate(boundaries, start=1)))]
    return pw.Case(None, whens, 0)


@dataclass
class Figures:
    count: int = 0
    rate_lpm: Decimal = Decimal(0)
    kwh_year: Decimal = Decimal(0)
    cost_year: Decimal = Decimal(0)
    co2_kg_year: Decimal = Decimal(0)
    expected_kwh_year: Decimal = Decimal(0)
    expected_cost_year: Decimal = Decimal(0)
    expected_co2_kg_year: Decimal = Decimal(0)

    def add(self, count: int, rate: Decimal, f: calc.LeakFigures) -> None:
        self.count += count
        self.rate_lpm += rate
        self.kwh_year += f.kwh_year
        self.cost_year += f.cost_year
        self.co2_kg_year += f.co2_kg_year
        self.expected_kwh_year += f.expected_kwh_year
        self.expected_cost_year += f.expected_cost_year
        self.expected_co2_kg_year += f.expected_co2_kg_year


@dataclass
class SiteRow:
    site_id: int | None
    label: str
    open: Figures = field(default_factory=Figures)
    fixed: Figures = field(default_factory=Figures)


@dataclass
class Dashboard:
    open: Figures = field(default_factory=Figures)
    fixed: Figures = field(default_factory=Figures)  # repaired + verified: realised savings
    to_review: int = 0
    total: int = 0
    by_site: list = field(default_factory=list)
    by_component: list = field(default_factory=list)  # (component, Figures of open leaks)
    trend: list = field(default_factory=list)  # (YYYY-MM, found, repaired)
    currencies: set = field(default_factory=set)
    groups: int = 0

    @property
    def currency(self) -> str:
        return next(iter(self.currencies)) if len(self.currencies) == 1 else ""


def _dec(value) -> Decimal:
    if value is None:
        return Decimal(0)
    if isinstance(value, Decimal):
        return value
    return Decimal(str(value))


def grouped_query(actor, boundaries):
    """The one aggregate over all leaks: (site, period, status class, component of open
    leaks) → count, Σ rate."""
    site = site_id_expr()
    period = period_expr(boundaries)
    # Status classes, and the component only where it is shown (open leaks): fewer groups.
    klass = pw.Case(None, [(Leak.status.in_(OPEN_STATUSES), "open"),
                           (Leak.status.in_(FIXED_STATUSES), "fixed"),
                           (Leak.status == "to_review", "to_review")], "other")
    component = pw.Case(None, [(Leak.status.in_(OPEN_STATUSES), Leak.component)], "")
    query = (Leak.select(site.alias("site_id"), period.alias("period"), klass.alias("klass"),
                         component.alias("component"), pw.fn.COUNT(Leak.id).alias("n"),
                         pw.fn.SUM(Leak.rate_lpm).alias("rate"))
             .join(Location, on=(Leak.location == Location.id)))
    # Ordinal GROUP BY: PostgreSQL does not match parameterised expressions by text.
    return (authz.scope(actor, Leak, "view", query)
            .group_by(pw.SQL("1"), pw.SQL("2"), pw.SQL("3"), pw.SQL("4")).order_by())


def trend_queries(actor, since: dt.datetime):
    m_found = month_expr(Leak.found_at)
    found = (authz.scope(actor, Leak, "view",
                         Leak.select(m_found.alias("m"), pw.fn.COUNT(Leak.id)))
             .where(Leak.found_at >= since).group_by(pw.SQL("1")).order_by())
    m_rep = month_expr(Leak.repaired_at)
    repaired = (authz.scope(actor, Leak, "view",
                            Leak.select(m_rep.alias("m"), pw.fn.COUNT(Leak.id)))
                .where(Leak.repaired_at >= since.date(), Leak.status.in_(FIXED_STATUSES))
                .group_by(pw.SQL("1")).order_by())
    return found, repaired


def _months(today: dt.date, n: int) -> list[str]:
    y, m = today.year, today.month
    out = []
    for _ in range(n):
        out.append(f"{y:04d}-{m:02d}")
        m -= 1
        if m == 0:
            y, m = y - 1, 12
    return list(reversed(out))


def compute(actor, *, today: dt.date | None = None) -> Dashboard:
    today = today or utcnow().date()
    resolver = SettingsResolver(actor)
    boundaries = period_boundaries(actor)
    d = Dashboard()
    sites = {loc.id: loc for loc in authz.scope(actor, Location, "view")
             .where(Location.kind == "site")}
    by_site: dict = {}
    by_component: dict = defaultdict(Figures)
    for site_id, period, klass, component, n, rate in grouped_query(actor, boundaries).tuples():
        d.groups += 1
        site_id = int(site_id) if site_id not in (None, "") else None  # peewee coerces to str
        d.total += n
        if klass == "to_review":
            d.to_review += n
        if klass not in ("open", "fixed"):
            continue
        day = boundaries[int(period) - 1] if period else EPOCH
        params = resolver.at(site_id, day)
        rate = _dec(rate)
        f = calc.figures(rate, params)
        d.currencies.add(params.currency)
        if site_id not in by_site:
            loc = sites.get(site_id)
            by_site[site_id] = SiteRow(site_id, loc.label if loc else "?")
        row = by_site[site_id]
        if klass == "open":
            d.open.add(n, rate, f)
            row.open.add(n, rate, f)
            by_component[component].add(n, rate, f)
        else:
            d.fixed.add(n, rate, f)
            row.fixed.add(n, rate, f)
    d.by_site = sorted(by_site.values(), key=lambda r: (-r.open.cost_year, r.label))
    d.by_component = sorted(by_component.items(), key=lambda kv: (-kv[1].cost_year, kv[0]))
    months = _months(today, TREND_MONTHS)
    since = dt.datetime.strptime(months[0] + "-01", "%Y-%m-%d")
    found_q, rep_q = trend_queries(actor, since)
    found = dict(found_q.tuples())
    repaired = dict(rep_q.tuples())
    d.trend = [(m, found.get(m, 0), repaired.get(m, 0)) for m in months]
    return d


def chart_data(d: Dashboard, *, component_labels: dict, labels: dict) -> dict:
    """What static/js/dashboard.js draws (JSON in the page; no inline script)."""
    return {
        "labels": labels,
        "currency": d.currency,
        "trend": {"months": [m for m, _f, _r in d.trend], "found": [f for _m, f, _r in d.trend],
                  "repaired": [r for _m, _f, r in d.trend]},
        "sites": {"labels": [s.label for s in d.by_site[:15]],
                  "open_cost": [round(float(s.open.cost_year), 2) for s in d.by_site[:15]],
                  "saved_cost": [round(float(s.fixed.expected_cost_year), 2)
                                 for s in d.by_site[:15]]},
        "components": {"labels": [str(component_labels.get(c, c)) for c, _f in d.by_component],
                       "open_cost": [round(float(f.cost_year), 2) for _c, f in d.by_component],
                       "open_count": [f.count for _c, f in d.by_component]},
    }
