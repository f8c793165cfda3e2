"""The per-day counts (LeakDaily, LeakRepairedDaily) counted again from the leaks: `check`
lists where they differ, `recount` rewrites an organization's rows. The triggers of migration
0011 keep them on every write; this is for data edited by hand with the triggers off
(docs/operations.md) and for the tests that prove the triggers right."""
from __future__ import annotations

from decimal import Decimal

from .. import authz
from ..audit import writer
from ..core.db import database
from ..leaks.models import FIXED_STATUSES, Leak
from .models import LeakDaily, LeakRepairedDaily


def _day(value):
    """A date column as read back (a date, or ISO text from an SQLite aggregate)."""
    return value if not isinstance(value, str) else value[:10]


def counted(organization_id=None) -> dict:
    """{(table, organization, site or 0, …key): (n, Σ rate in thousandths of l/min)} from the
    leaks themselves."""
    out: dict = {}

    def add(key, mlpm):
        n, total = out.get(key, (0, 0))
        out[key] = (n + 1, total + mlpm)

    query = Leak.select(Leak.organization, Leak.site_id, Leak.status, Leak.component,
                        Leak.found_at, Leak.rate_lpm, Leak.repaired_at)
    if organization_id is not None:
        query = query.where(Leak.organization == organization_id)
    for org, site, status, component, found_at, rate, repaired_at in query.tuples():
        site = site or 0
        add(("leak_daily", org, site, status, component, str(found_at.date())),
            int(Decimal(rate) * 1000))
        if status in FIXED_STATUSES and repaired_at is not None:
            add(("leak_repaired_daily", org, site, str(repaired_at)), 0)
    return out


def kept(organization_id=None) -> dict:
    """The same keys as `counted`, from the rows the triggers keep."""
    daily, repaired = LeakDaily.select(), LeakRepairedDaily.select()
    if organization_id is not None:
        daily = daily.where(LeakDaily.organization == organization_id)
        repaired = repaired.where(LeakRepairedDaily.organization == organization_id)
    out = {("leak_daily", r.organization_id, r.site_id, r.status, r.component,
            str(_day(r.found_day))): (r.n, r.rate_mlpm) for r in daily}
    out.update({("leak_repaired_daily", r.organization_id, r.site_id,
                 str(_day(r.repaired_day))): (r.n, 0) for r in repaired})
    return out


def _differing(have: dict, want: dict) -> dict:
    return {k: (have.get(k), want.get(k)) for k in sorted(set(have) | set(want), key=str)
            if have.get(k) != want.get(k)}


def differences(organization_id=None) -> dict:
    """{key: (kept, counted)} where the kept rows differ from counting the leaks (None: no
    row). Empty when the triggers kept the counts right."""
    return _differing(kept(organization_id), counted(organization_id))


def recount(organization) -> int:
    """Rewrite the organization's per-day counts from its leaks, in one transaction queued
    behind its other writers; returns how many keys differed. Recorded in the audit trail."""
    actor = authz.Actor.system(organization, label="leakctl dashboard recount")
    with database.atomic():
        writer.begin(actor)
        want = counted(organization.id)
        fixed = len(_differing(kept(organization.id), want))
        LeakDaily.delete().where(LeakDaily.organization == organization.id).execute()
        LeakRepairedDaily.delete().where(
            LeakRepairedDaily.organization == organization.id).execute()
        daily, repaired = [], []
        for key, (n, mlpm) in want.items():
            if key[0] == "leak_daily":
                _t, org, site, status, component, day = key
                daily.append({"organization": org, "site_id": site, "status": status,
                              "component": component, "found_day": day, "n": n,
                              "rate_mlpm": mlpm})
            else:
                _t, org, site, day = key
                repaired.append({"organization": org, "site_id": site, "repaired_day": day,
                                 "n": n})
        for model, rows in ((LeakDaily, daily), (LeakRepairedDaily, repaired)):
            for start in range(0, len(rows), 1000):
                model.insert_many(rows[start:start + 1000]).execute()
        writer.event(actor, "dashboard.recount", details={"differences": fixed})
    return fixed
