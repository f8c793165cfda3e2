"""Dashboard figures, aggregated in SQL.

Cost, energy and CO2 depend on the settings valid at each leak's site and date. Settings are
piecewise constant between the `valid_from` dates of the organization's settings rows, so the
database groups leaks by (site, settings period, status, component) — a few hundred groups even
for 100,000 leaks — and Python applies leaks/calc.py once per group (all figures are linear in
the leak rate, so the figures of a group's summed rate equal the sum of its leaks' figures).
Every query starts from `authz.scope` (so permission filters apply here too).

The counts come from `leak_daily` (models.LeakDaily): leaks already counted per site,
status, component and day by database triggers, so the aggregate reads a few thousand rows
instead of 100,000 leaks. Readers who see every leak (admins, managers, everybody in the open
security modes) read all of it; readers limited by grants read the rows of the sites granted
as a whole, and the other leaks their grants reach (part of a site, a survey) are counted one
by one, with the same groups. Both give the same figures (tests/unit/test_dashboard.py).
"""
from __future__ import annotations

import bisect
import contextlib
import datetime as dt
from collections import defaultdict
from dataclasses import dataclass, field
from decimal import Decimal

import peewee as pw

from .. import authz
from ..core.db import database, is_postgres, parallel_scans, utcnow
from ..leaks import calc
from ..leaks.models import FIXED_STATUSES, OPEN_STATUSES, Leak
from ..locations.models import EnergySettings, Location
from ..locations.settings import SettingsResolver
from .models import LeakDaily, LeakRepairedDaily

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


def counts_every_leak(actor) -> bool:
    """True when the actor's dashboard counts every leak of the organization, so the
    per-day counts kept by the database (LeakDaily) answer it alone."""
    return authz.unrestricted(actor, "view")


def counts_leaks_one_by_one(actor) -> bool:
    """True when the per-day counts the actor may read miss some leaks the actor sees: a
    grant below a whole site or on a survey (authz/links.py: a per-day row is readable
    where its whole site is)."""
    return not counts_every_leak(actor) and authz.reaches_part_of_a_site(actor, "view")


def _sees_a_whole_site(actor) -> bool:
    """The actor may read some per-day counts: a site (a location without parent) is
    granted as a whole (authz/links.py: per-day rows are readable where their site is)."""
    return authz.scope(actor, Location, "view", Location.select(Location.id)).where(
        Location.parent.is_null()).exists()


def _outside_daily(actor):
    """Leaks outside the sites the actor sees as a whole (and leaks without a site): the part
    of a grant-limited reader's leaks that the per-day counts do not hold."""
    covered = authz.scope(actor, Location, "view", Location.select(Location.id)).where(
        Location.parent.is_null())
    return pw.fn.COALESCE(Leak.site_id, 0).not_in(covered)


def _period_condition(column, start, until, as_date: bool):
    conds = []
    if start is not None:
        conds.append(column >= (start.date() if as_date else start))
    if until is not None:
        conds.append(column < (until.date() if as_date else until))
    if not conds:
        return None
    return conds[0] if len(conds) == 1 else conds[0] & conds[1]


def _grouped(actor, model, boundaries):
    """(site, status, component) → for each settings period (see `period_ranges`) count and
    Σ rate as FILTERed aggregates. Grouping by plain columns in the order of an index lets the
    database aggregate the rows as they come (leak_dashboard: an index-only scan, the
    permission filter's columns included)."""
    daily = model is LeakDaily
    day = LeakDaily.found_day if daily else Leak.found_at
    count = pw.fn.SUM(LeakDaily.n) if daily else pw.fn.COUNT(pw.SQL("*"))
    rate = pw.fn.SUM(LeakDaily.rate_mlpm) if daily else pw.fn.SUM(Leak.rate_lpm)
    columns = [model.site_id, model.status, model.component]
    for _period, start, until in period_ranges(boundaries):
        cond = _period_condition(day, start, until, as_date=daily)
        columns += [count, rate] if cond is None else [count.filter(cond), rate.filter(cond)]
    return (authz.scope(actor, model, "view", model.select(*columns))
            .group_by(model.site_id, model.status, model.component).order_by())


def _per_day(actor, model, day_field, since: dt.date):
    return (authz.scope(actor, model, "view", model.select(day_field, pw.fn.SUM(model.n)))
            .where(day_field >= since).group_by(day_field).order_by())


def _leaks_by_bucket(actor, boundaries):
    """The leaks the actor sees, one by one, grouped by (site, status, component, bucket):
    the month found (UTC; "YYYY-MM" on SQLite, the month's first instant on PostgreSQL), or
    the day ("YYYY-MM-DD", or its first instant) in a month where a settings
    period starts on another day than the first, so that each bucket lies in one settings
    period. One statement gives both the grouped figures (folded per period in Python) and
    the leaks found per month: a single index read over the leaks with the permission filter
    evaluated once per leak (the FILTERed sums per period and a second statement for the
    trend cost more than the scan itself: 75 + 35 ms of SQLite CPU at 100,000 leaks)."""
    if is_postgres():
        # Truncated timestamps, not to_char text: hashing and grouping 100,000 of them is a
        # third cheaper (every building: 140 → 95 ms of SQL); _fold_buckets reads either.
        # The units as literals, so the expression is the one migration 0022's statistics
        # describe in every plan (a parameter is not, in a prepared statement's generic plan).
        month = pw.fn.date_trunc(pw.SQL("'month'"), Leak.found_at)
        day = pw.fn.date_trunc(pw.SQL("'day'"), Leak.found_at)
        split = sorted({dt.datetime(b.year, b.month, 1) for b in boundaries if b.day != 1})
    else:  # ISO text "YYYY-MM-DD HH:MM:SS…"; literal positions, as in the expression index
        # of migration 0021, so SQLite groups in that index's order instead of sorting
        month = pw.fn.SUBSTR(Leak.found_at, pw.SQL("1"), pw.SQL("7"))
        day = pw.fn.SUBSTR(Leak.found_at, pw.SQL("1"), pw.SQL("10"))
        split = sorted({b.isoformat()[:7] for b in boundaries if b.day != 1})
    bucket = pw.Case(None, [(month.in_(split), day)], month) if split else month
    # PostgreSQL sees the bucket's parameters in SELECT and GROUP BY as different
    # expressions ($1 vs $5) and refuses; grouping by the column's position names the same one.
    grouped_bucket = pw.SQL("4") if is_postgres() else bucket
    return (authz.scope(actor, Leak, "view",
                        Leak.select(Leak.site_id, Leak.status, Leak.component, bucket,
                                    pw.fn.COUNT(pw.SQL("*")), pw.fn.SUM(Leak.rate_lpm)))
            .group_by(Leak.site_id, Leak.status, Leak.component, grouped_bucket).order_by())


def _leaks_repaired_per_day(actor, since: dt.date):
    """Leaks repaired (repaired or verified now) per repair day since `since`, one by one."""
    return (authz.scope(actor, Leak, "view",
                        Leak.select(Leak.repaired_at, pw.fn.COUNT(pw.SQL("*"))))
            .where((Leak.repaired_at >= since) & Leak.status.in_(sorted(FIXED_STATUSES)))
            .group_by(Leak.repaired_at).order_by())


def queries(actor, boundaries, months: list[str]) -> list:
    """[(what, query)]: every statement the dashboard runs. From the per-day counts the actor
    may read: the grouped figures, leaks found per day and leaks repaired (repaired or
    verified now) per day since the first month (folded into months in Python: at most a row
    per day, and the same SQL on SQLite and PostgreSQL); none when the actor sees no site as
    a whole (a reader with grants on buildings or surveys only: those statements found no
    row and cost 10 ms at 100,000 leaks). When those miss leaks the actor sees (grants on
    part of a site, on surveys), two more statements over those leaks: grouped per month
    (or day) found, which gives their figures and their trend of leaks found
    (`_leaks_by_bucket`), and leaks repaired per day (an index range read in index order).
    A FILTERed count per month evaluated 50 conditions per leak; FILTERed sums per settings
    period and a separate statement for the leaks found cost more than one grouped read."""
    since = _month_start(months[0])
    out = []
    if counts_every_leak(actor) or _sees_a_whole_site(actor):
        out += [("grouped", _grouped(actor, LeakDaily, boundaries)),
                ("found", _per_day(actor, LeakDaily, LeakDaily.found_day, since)),
                ("repaired", _per_day(actor, LeakRepairedDaily, LeakRepairedDaily.repaired_day,
                                      since))]
    if counts_leaks_one_by_one(actor):
        outside = _outside_daily(actor)
        out += [("leaks", _leaks_by_bucket(actor, boundaries).where(outside)),
                ("leaks repaired", _leaks_repaired_per_day(actor, since).where(outside))]
    return out


def _klass(status: str) -> str:
    if status in OPEN_STATUSES:
        return "open"
    if status in FIXED_STATUSES:
        return "fixed"
    return "to_review" if status == "to_review" else "other"


@dataclass
class Aggregates:
    groups: dict  # (site, period, status class, component of open leaks) → [count, Σ rate]
    found: dict  # YYYY-MM → leaks found
    repaired: dict  # YYYY-MM → leaks repaired (repaired or verified now)


def aggregate(actor, boundaries, months: list[str]) -> Aggregates:
    """The SQL aggregates folded into status classes (the component only where it is shown)
    and months."""
    out = Aggregates({}, dict.fromkeys(months, 0), dict.fromkeys(months, 0))
    n_periods = len(period_ranges(boundaries))
    for what, query in queries(actor, boundaries, months):
        # The raw rows: peewee's converters (a date parsed per row, a Decimal per sum) cost
        # more than the folding below; `_dec` and str(day) do what they would.
        # Two cores only for the leak-by-leak grouping: the repairs per day (an index range)
        # only lost by it (26 → 32 ms).
        with parallel_scans() if what == "leaks" else contextlib.nullcontext():
            rows = database.execute(query).fetchall()
        if what.endswith(("found", "repaired")):
            per_month = getattr(out, what.split()[-1])
            for day, n in rows:
                month = str(day)[:7]  # a date, or its ISO text on SQLite
                if month in per_month:
                    per_month[month] += n
            continue
        if what == "leaks":
            _fold_buckets(out, rows, boundaries)
            continue
        for site_id, status, component, *sums in rows:
            klass = _klass(status)
            component = component if klass == "open" else ""
            if site_id == 0:
                site_id = None  # LeakDaily's "no site"
            for period in range(n_periods):
                n, rate = sums[2 * period], sums[2 * period + 1]
                if not n:
                    continue
                _add(out.groups, (site_id, period, klass, component), n,
                     Decimal(rate).scaleb(-3))
    return out


def _add(groups: dict, key, n: int, rate: Decimal) -> None:
    acc = groups.get(key)
    if acc is None:
        groups[key] = [n, rate]
    else:
        acc[0] += n
        acc[1] += rate


def _fold_buckets(out: Aggregates, rows, boundaries) -> None:
    """`_leaks_by_bucket`'s rows into the groups (a bucket's settings period: the number of
    boundaries on or before its first day) and the leaks found per month."""
    starts = [b.isoformat() for b in boundaries]
    period_of: dict = {}
    for site_id, status, component, bucket, n, rate in rows:
        known = period_of.get(bucket)
        if known is None:
            # PostgreSQL: the bucket's first instant; SQLite: "YYYY-MM" or "YYYY-MM-DD".
            first = (bucket.date().isoformat() if isinstance(bucket, dt.datetime)
                     else bucket if len(bucket) == 10 else bucket + "-01")
            known = period_of[bucket] = (bisect.bisect_right(starts, first), first[:7])
        period, month = known
        klass = _klass(status)
        _add(out.groups, (site_id, period, klass, component if klass == "open" else ""),
             n, _dec(rate))
        if month in out.found:
            out.found[month] += n


def _month_start(month: str) -> dt.date:
    return dt.date(int(month[:4]), int(month[5:7]), 1)


def _next_month(day: dt.date) -> dt.date:
    return dt.date(day.year + day.month // 12, day.month % 12 + 1, 1)


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
    months = _months(today, TREND_MONTHS)
    agg = aggregate(actor, boundaries, months)
    for (site_id, period, klass, component), (n, rate) in agg.groups.items():
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
            # "": a site the actor may not see by name (a grant on part of it), or no site.
            by_site[site_id] = SiteRow(site_id, loc.label if loc else "")
        row = by_site[site_id]
        if klass == "open":
            d.open.add(n, rate, f)
            row.open.add(n, rate, f)
            by_component[component].add(n, rate, f)
        else:
            d.fixed.add(n, rate, f)
            row.fixed.add(n, rate, f)
    _subtract_remeasured(actor, d, by_site, sites, resolver)
    d.by_site = sorted(by_site.values(), key=lambda r: (-r.open.cost_year, r.label))
    d.by_component = sorted(by_component.items(), key=lambda kv: (-kv[1].cost_year, kv[0]))
    d.trend = [(m, agg.found[m], agg.repaired[m]) for m in months]
    return d


def _subtract_remeasured(actor, d: Dashboard, by_site: dict, sites: dict, resolver) -> None:
    """Savings from measured values (issue 18): a repaired leak re-measured after the repair
    saved rate − after (leaks/calc.py saved_lpm), so the re-measured rates come off the
    fixed figures, which the per-day counts hold with the whole rate. The figures are
    linear in the rate; a re-measurement above the rate found makes the saving negative and
    it is summed as such. Only re-measured leaks are read (grouped by site and day found)."""
    day = pw.fn.DATE(Leak.found_at)
    rows = (authz.scope(actor, Leak, "view",
                        Leak.select(Leak.site_id, day, pw.fn.SUM(Leak.after_lpm)))
            .where(Leak.after_lpm.is_null(False) & Leak.status.in_(sorted(FIXED_STATUSES)))
            .group_by(Leak.site_id, day).order_by().tuples())
    for site_id, found_day, after in rows:
        found_day = (found_day if isinstance(found_day, dt.date)
                     else dt.date.fromisoformat(str(found_day)[:10]))
        params = resolver.at(site_id, found_day)
        minus = -_dec(after)
        f = calc.figures(minus, params)
        d.fixed.add(0, minus, f)
        if site_id not in by_site:
            loc = sites.get(site_id)
            by_site[site_id] = SiteRow(site_id, loc.label if loc else "")
        by_site[site_id].fixed.add(0, minus, f)


def site_label(row: SiteRow, labels: dict) -> str:
    """The site's label, or what stands for a site the actor may not see by name."""
    if row.label:
        return row.label
    return str(labels["unshared_site"] if row.site_id is not None else labels["no_site"])


def chart_data(d: Dashboard, *, component_labels: dict, labels: dict) -> dict:
    """What static/js/dashboard.js draws (JSON in the page; no inline script)."""
    return {
        "labels": labels,
        "currency": d.currency,
        "trend": {"months": [m for m, _f, _r in d.trend], "found": [f for _m, f, _r in d.trend],
                  "repaired": [r for _m, _f, r in d.trend]},
        "sites": {"labels": [site_label(s, labels) for s in d.by_site[:15]],
                  "open_cost": [round(float(s.open.cost_year), 2) for s in d.by_site[:15]],
                  "saved_cost": [round(float(s.fixed.expected_cost_year), 2)
                                 for s in d.by_site[:15]]},
        "components": {"labels": [str(component_labels.get(c, c)) for c, _f in d.by_component],
                       "open_cost": [round(float(f.cost_year), 2) for _c, f in d.by_component],
                       "open_count": [f.count for _c, f in d.by_component]},
    }
