from __future__ import annotations

import peewee as pw

from ..core.db import OrgScoped
from ..orgs.models import Organization


class LeakDaily(OrgScoped):
    """Leaks counted per (site, status, component, day found), kept by database triggers on
    every write to `leak` (migration 0011); never written by the app. A row counts leaks of
    every location and survey of its site, so it is readable where the whole site is
    (authz/links.py)."""

    organization = pw.ForeignKeyField(Organization, on_delete="CASCADE")
    site_id = pw.IntegerField()  # 0: the leak's location names no site
    status = pw.CharField(max_length=16)
    component = pw.CharField(max_length=24)
    found_day = pw.DateField()
    n = pw.IntegerField()
    rate_mlpm = pw.BigIntegerField()  # Σ rate_lpm in thousandths of l/min (exact)

    class Meta:
        table_name = "leak_daily"


class LeakRepairedDaily(OrgScoped):
    """Repaired or verified leaks counted per (site, repair date), kept like LeakDaily."""

    organization = pw.ForeignKeyField(Organization, on_delete="CASCADE")
    site_id = pw.IntegerField()  # 0: the leak's location names no site
    repaired_day = pw.DateField()
    n = pw.IntegerField()

    class Meta:
        table_name = "leak_repaired_daily"
