"""Which energy parameters apply to a site at a date.

Rules:
- Organization rows (site None) apply from their `valid_from` on; the latest one not after the
  date wins. Before the first organization row the built-in DEFAULTS apply.
- A site row applies from its `valid_from` on and overrides only the fields it sets
  (None = inherit from the organization row valid at that date).
So last year's leaks keep last year's price after a new row is added this year.
"""
from __future__ import annotations

import bisect
import datetime as dt
from decimal import Decimal

from .. import authz
from ..leaks.calc import EnergyParams
from .models import EnergySettings, Location

# Built-in organization defaults (DOMAIN.md "Typical defaults"):
# - electricity price 0.19 €/kWh: recent German industry average (MaschinenMarkt);
# - specific power 6.4 kW/(m³/min): efficient compressor at 7 bar (MEASUR help; MaschinenMarkt);
# - 8,000 operating hours/year: common EU examples (CompAir); MEASUR uses 8,760;
# - CO2 factor 0.38 kg/kWh: German grid mix 2023 (UBA/Statista); funding bodies (BAFA) publish
#   their own, so organizations should set theirs;
# - no price per m³ (cost from kWh); control factor 1.0 (on/off control, MEASUR): expected
#   savings equal potential savings until the organization states its compressor control.
DEFAULTS = EnergyParams(
    price_per_kwh=Decimal("0.19"),
    currency="EUR",
    specific_power=Decimal("6.4"),
    operating_hours=8000,
    co2_factor=Decimal("0.38"),
    price_per_m3=None,
    control_factor=Decimal("1"),
)

FIELDS = EnergySettings.VALUE_FIELDS


def _as_date(value) -> dt.date:
    if isinstance(value, dt.datetime):
        return value.date()
    return value


def _merge(base: EnergyParams, row: EnergySettings | None) -> EnergyParams:
    if row is None:
        return base
    values = {name: getattr(base, name) for name in FIELDS}
    for name in FIELDS:
        v = getattr(row, name)
        if v is not None and v != "":
            values[name] = v
    values["operating_hours"] = int(values["operating_hours"])
    return EnergyParams(**values)


class SettingsResolver:
    """Loads the organization's settings rows once (a small table) and answers `at(site, date)`
    in memory: one query per page, not one per leak."""

    def __init__(self, actor: authz.Actor):
        rows = list(authz.scope(actor, EnergySettings, "view")
                    .order_by(EnergySettings.valid_from, EnergySettings.id))
        self._org = [r for r in rows if r.site_id is None]
        self._org_dates = [r.valid_from for r in self._org]
        self._sites: dict[int, list[EnergySettings]] = {}
        for r in rows:
            if r.site_id is not None:
                self._sites.setdefault(r.site_id, []).append(r)
        self._cache: dict = {}

    @staticmethod
    def _latest(rows, dates, day):
        i = bisect.bisect_right(dates, day)
        return rows[i - 1] if i else None

    def org_row_at(self, day) -> EnergySettings | None:
        return self._latest(self._org, self._org_dates, _as_date(day))

    def site_row_at(self, site_id, day) -> EnergySettings | None:
        rows = self._sites.get(site_id) or []
        return self._latest(rows, [r.valid_from for r in rows], _as_date(day))

    def at(self, site, day) -> EnergyParams:
        site_id = site.id if isinstance(site, Location) else site
        day = _as_date(day)
        key = (site_id, day)
        if key not in self._cache:
            params = _merge(DEFAULTS, self.org_row_at(day))
            if site_id is not None:
                params = _merge(params, self.site_row_at(site_id, day))
            self._cache[key] = params
        return self._cache[key]

    def for_leak(self, leak) -> EnergyParams:
        """The parameters for a leak: its site (from the location path) at its found date."""
        return self.at(leak.location.site_id, leak.found_at)


def settings_at(actor: authz.Actor, site, day) -> EnergyParams:
    return SettingsResolver(actor).at(site, day)
