"""Dashboard figures, aggregated in SQL.

Cost, energy and CO2 depend on the settings valid at each leak's site and date. Settings are
piecewise constant between the `valid_from` dates of the organization's settings rows, so the
database groups leaks by (site, settings period, status, component) — a few hundred groups even
for 100,000 leaks — and Python applies leaks/calc.py once per group (all figures are linear in
the leak rate, so the figures of a group's summed rate equal the sum of its leaks' figures).
Every query starts from `authz.scope` (so later permission filters apply here too).

At 100,000 leaks on PostgreSQL the aggregate groups by the leak's own `site_id` (no join, no
path parsing; migration 0010), status and component, with one filtered count and sum per
settings period, read in order from an index-only scan of the `leak_dashboard` index.
"""
from __future__ import annotations

import datetime as dt
from collections import defaultdict
from dataclasses import dataclass, field
from decimal import Decimal

import peewee as pw

from .. import authz
from ..core.db import database, utcnow
from ..leaks import calc
from ..leaks.models import FIXED_STATUSES, OPEN_STATUSES, Leak
from ..locations.models import EnergySettings, Location
from ..locations.settings import SettingsResolver

EPOCH = dt.date(1900, 1, 1)
TREND_MONTHS = 24


def period_boundaries(actor) -> list[dt.date]:
    """Every date on which some settings row (organization or site) starts to apply."""
    dates = (authz.scope(actor, EnergySettings, "view",
                         EnergySettings.select(EnergySettings.valid_from).distinct())
             .order_by(EnergySettings.valid_from).tuples())
    return sorted({d for (d,) in dates})


def period_ranges(boundaries: list[dt.date]) -> list[tuple[int, dt.datetime | None,
                                                          dt.datetime | None]]:
    """(period, from, until) for period 0 before the first boundary and i from
    boundaries[i-1] on; None: open end."""
    starts = [None] + [dt.datetime.combine(b, dt.time()) for b in boundaries]
    return [(i, start, starts[i + 1] if i + 1 < len(starts) else None)
            for i, start in enumerate(starts)]


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
    """The one aggregate over all leaks: (site, status, component) → for each settings period
    (see `period_ranges`) count and Σ rate, as FILTERed aggregates. Grouping by plain columns
    in the order of the `leak_dashboard` index lets PostgreSQL aggregate an index-only scan as
    it comes (no hashing or sorting; a CASE over found_at as a group key would be estimated at
    one group per row and sorted)."""
    columns = [Leak.site_id, Leak.status, Leak.component]
    for _period, start, until in period_ranges(boundaries):
        conds = ([Leak.found_at >= start] if start is not None else []) + (
            [Leak.found_at < until] if until is not None else [])
        count, rate = pw.fn.COUNT(pw.SQL("*")), pw.fn.SUM(Leak.rate_lpm)
        if conds:
            cond = conds[0] if len(conds) == 1 else conds[0] & conds[1]
            count, rate = count.filter(cond), rate.filter(cond)
        columns += [count, rate]
    return (authz.scope(actor, Leak, "view", Leak.select(*columns))
            .group_by(Leak.site_id, Leak.status, Leak.component).order_by())


def _klass(status: str) -> str:
    if status in OPEN_STATUSES:
        return "open"
    if status in FIXED_STATUSES:
        return "fixed"
    return "to_review" if status == "to_review" else "other"


def grouped_figures(actor, boundaries) -> dict:
    """(site, period, status class, component of open leaks) → [count, Σ rate]: the SQL
    aggregate folded into status classes (the component only where it is shown)."""
    groups: dict = {}
    for site_id, status, component, *sums in grouped_query(actor, boundaries).tuples():
        klass = _klass(status)
        component = component if klass == "open" else ""
        for period in range(len(sums) // 2):
            n, rate = sums[2 * period], sums[2 * period + 1]
            if not n:
                continue
            key = (site_id, period, klass, component)
            acc = groups.get(key)
            if acc is None:
                groups[key] = [n, _dec(rate)]
            else:
                acc[0] += n
                acc[1] += _dec(rate)
    return groups


def _month_start(month: str) -> dt.date:
    return dt.date(int(month[:4]), int(month[5:7]), 1)


def _next_month(day: dt.date) -> dt.date:
    return dt.date(day.year + day.month // 12, day.month % 12 + 1, 1)


def trend_query(actor, months: list[str]):
    """Leaks found and leaks repaired (repaired or verified now) per month, as one row of
    index range counts: found in month 1 … n, then repaired in month 1 … n. Counting a range
    of the (organization, found_at, id) and (organization, repaired_at, status) indexes costs
    less than a month expression and a hash aggregate over every leak."""
    columns = []
    for kind in ("found", "repaired"):
        for i, month in enumerate(months):
            start = _month_start(month)
            until = _next_month(start)
            count = pw.fn.COUNT(pw.SQL("*"))
            if kind == "found":
                query = authz.scope(actor, Leak, "view", Leak.select(count)).where(
                    Leak.found_at >= dt.datetime.combine(start, dt.time()),
                    Leak.found_at < dt.datetime.combine(until, dt.time()))
            else:
                query = authz.scope(actor, Leak, "view", Leak.select(count)).where(
                    Leak.repaired_at >= start, Leak.repaired_at < until,
                    Leak.status.in_(FIXED_STATUSES))
            columns.append(query.alias(f"{kind[0]}{i}"))
    return pw.Select(columns=columns).bind(database)


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
    for (site_id, period, klass, component), (n, rate) in grouped_figures(
            actor, boundaries).items():
        d.groups += 1
        d.total += n
        if klass == "to_review":
            d.to_review += n
        if klass not in ("open", "fixed"):
            continue
        day = boundaries[int(period) - 1] if period else EPOCH
        params = resolver.at(site_id, day)
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
    counts = list(trend_query(actor, months).tuples()[0])
    d.trend = list(zip(months, counts[:len(months)], counts[len(months):]))
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
