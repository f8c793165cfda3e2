"""Energy, cost and CO2 of leaks: pure functions on Decimal (DOMAIN.md "Calculations").

    Q [m³/min]      = rate [l/min] / 1000
    P_el [kW]       = Q × specific power [kW per m³/min]
    E [kWh/a]       = P_el × operating hours per year
    cost [cur/a]    = E × electricity price            (or Q × 60 × hours × price per m³)
    CO2 [kg/a]      = E × emission factor [kg/kWh]

Savings of a repaired leak are "potential" (the full figures); "expected" savings multiply by
the compressor control factor (DOE MEASUR: VSD ≈ 0.97, inlet modulation ≈ 0.30, load/unload
0.48–0.68, on/off 1.0, centrifugal blow-off 0).
Nothing here rounds; rounding is for display.
"""
from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

# 1 ft³ = 28.316846592 l exactly, so 1 cfm = 28.316846592 l/min.
LPM_PER_CFM = Decimal("28.316846592")

# MEASUR estimate classes (cfm) when no instrument reading exists (DOMAIN.md).
ESTIMATE_CFM = {"minimal": Decimal("0.2"), "small": Decimal("0.8"), "medium": Decimal("3"),
                "large": Decimal("5"), "severe": Decimal("10")}


@dataclass(frozen=True)
class EnergyParams:
    """The parameters valid for one site at one date (see locations.settings)."""

    price_per_kwh: Decimal
    currency: str
    specific_power: Decimal  # kW per m³/min
    operating_hours: int  # h per year
    co2_factor: Decimal  # kg per kWh
    price_per_m3: Decimal | None = None  # when set, cost is priced per m³ of compressed air
    control_factor: Decimal = Decimal("1")


@dataclass(frozen=True)
class LeakFigures:
    flow_m3_min: Decimal
    power_kw: Decimal
    kwh_year: Decimal
    cost_year: Decimal
    co2_kg_year: Decimal
    currency: str
    control_factor: Decimal

    # "potential" = the full figures; "expected" = what a repair saves at the meter.
    @property
    def expected_kwh_year(self) -> Decimal:
        return expected(self.kwh_year, self.control_factor)

    @property
    def expected_cost_year(self) -> Decimal:
        return expected(self.cost_year, self.control_factor)

    @property
    def expected_co2_kg_year(self) -> Decimal:
        return expected(self.co2_kg_year, self.control_factor)


def _d(value) -> Decimal:
    if isinstance(value, Decimal):
        return value
    if isinstance(value, float):
        return Decimal(str(value))
    return Decimal(value)


def cfm_to_lpm(cfm) -> Decimal:
    return _d(cfm) * LPM_PER_CFM


def lpm_to_cfm(lpm) -> Decimal:
    return _d(lpm) / LPM_PER_CFM


def estimate_rate_lpm(estimate_class: str) -> Decimal:
    """Leak rate assumed for a MEASUR estimate class, in l/min."""
    return cfm_to_lpm(ESTIMATE_CFM[estimate_class])


def flow_m3_per_min(rate_lpm) -> Decimal:
    return _d(rate_lpm) / 1000


def power_kw(rate_lpm, params: EnergyParams) -> Decimal:
    return flow_m3_per_min(rate_lpm) * params.specific_power


def energy_kwh_per_year(rate_lpm, params: EnergyParams) -> Decimal:
    return power_kw(rate_lpm, params) * params.operating_hours


def cost_per_year(rate_lpm, params: EnergyParams) -> Decimal:
    if params.price_per_m3 is not None:
        return flow_m3_per_min(rate_lpm) * 60 * params.operating_hours * params.price_per_m3
    return energy_kwh_per_year(rate_lpm, params) * params.price_per_kwh


def co2_kg_per_year(rate_lpm, params: EnergyParams) -> Decimal:
    return energy_kwh_per_year(rate_lpm, params) * params.co2_factor


def expected(value, control_factor) -> Decimal:
    """Expected savings from potential savings (MEASUR compressor control factor)."""
    return _d(value) * _d(control_factor)


def figures(rate_lpm, params: EnergyParams) -> LeakFigures:
    return LeakFigures(
        flow_m3_min=flow_m3_per_min(rate_lpm),
        power_kw=power_kw(rate_lpm, params),
        kwh_year=energy_kwh_per_year(rate_lpm, params),
        cost_year=cost_per_year(rate_lpm, params),
        co2_kg_year=co2_kg_per_year(rate_lpm, params),
        currency=params.currency,
        control_factor=params.control_factor,
    )


@dataclass
class Totals:
    """Sums over many leaks (each computed with its own parameters)."""

    count: int = 0
    rate_lpm: Decimal = Decimal(0)
    kwh_year: Decimal = Decimal(0)
    cost_year: Decimal = Decimal(0)
    co2_kg_year: Decimal = Decimal(0)
    expected_kwh_year: Decimal = Decimal(0)
    expected_cost_year: Decimal = Decimal(0)
    expected_co2_kg_year: Decimal = Decimal(0)
    currencies: set = None

    def add(self, rate_lpm, f: LeakFigures) -> None:
        if self.currencies is None:
            self.currencies = set()
        self.count += 1
        self.rate_lpm += _d(rate_lpm)
        self.kwh_year += f.kwh_year
        self.cost_year += f.cost_year
        self.co2_kg_year += f.co2_kg_year
        self.expected_kwh_year += f.expected_kwh_year
        self.expected_cost_year += f.expected_cost_year
        self.expected_co2_kg_year += f.expected_co2_kg_year
        self.currencies.add(f.currency)

    @property
    def currency(self) -> str:
        cur = self.currencies or set()
        return next(iter(cur)) if len(cur) == 1 else ""
