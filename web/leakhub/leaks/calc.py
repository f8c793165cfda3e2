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

import math
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


def saved_lpm(rate_lpm, after_lpm=None) -> Decimal:
    """The leak rate a repair removed: the rate found minus the rate re-measured when the
    repair was verified (`after_lpm`), or the whole rate when it was not re-measured.

    Never negative unless the re-measurement is higher than the rate found: then the result
    is negative (the repair made it worse, or the first reading was too low) and is shown and
    summed as it is — a negative saving, never hidden or clipped to zero."""
    rate = _d(rate_lpm)
    if after_lpm is None:
        return rate
    return rate - _d(after_lpm)


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


# ------------------------------------------------------------------ leak rate from inputs
#
# Two ways to a leak rate besides a reading in l/min (DOMAIN.md "Orifice method", "Detector
# readings"): the orifice method from the hole's diameter and the pressure, and a detector's
# dB reading through the organization's own table (from its instrument's documentation).
# Both raise RateInputError naming the input; callers turn that into a field error.

P_ATM_PA = 101_325.0          # ambient pressure, Pa (1.01325 bar)
GAMMA_AIR = 1.4
R_AIR = 287.0                 # J/(kg·K)
RHO_FREE_AIR = 1.204          # kg/m³ at 20 °C, 1.01325 bar (free air delivered)
DEFAULT_CD = Decimal("0.65")  # sharp-edged hole: 0.6–0.65; rounded up to ≈ 1 (DOMAIN.md)
DEFAULT_TEMPERATURE_C = Decimal("20")
RATE_PLACES = Decimal("0.001")


class RateInputError(ValueError):
    """An input of a rate calculation is missing or out of range; `field` names it."""

    def __init__(self, field: str, message: str):
        super().__init__(message)
        self.field = field
        self.message = message


def orifice_mass_flow_kg_s(diameter_mm, pressure_bar_gauge, cd=DEFAULT_CD,
                           temperature_c=DEFAULT_TEMPERATURE_C) -> float:
    """Mass flow of air through a round hole into the atmosphere (isentropic nozzle).

    Choked (p0 ≥ p_atm / 0.528, i.e. above ≈ 0.89 bar gauge), DOMAIN.md:
        ṁ = Cd × A × p0 × sqrt(γ / (R × T0)) × (2/(γ+1))^((γ+1)/(2(γ−1)))
    Below that the subsonic form of the same nozzle equation, which meets the choked one at
    the critical pressure ratio (so the rate rises continuously with the pressure):
        ṁ = Cd × A × p0 × sqrt(2γ/((γ−1) R T0) × ((pa/p0)^(2/γ) − (pa/p0)^((γ+1)/γ)))
    """
    d = float(diameter_mm) / 1000.0
    area = math.pi * d * d / 4.0
    p0 = float(pressure_bar_gauge) * 100_000.0 + P_ATM_PA
    t0 = float(temperature_c) + 273.15
    g = GAMMA_AIR
    critical = (2.0 / (g + 1.0)) ** (g / (g - 1.0))
    ratio = P_ATM_PA / p0
    if ratio <= critical:
        factor = math.sqrt(g / (R_AIR * t0)) * (2.0 / (g + 1.0)) ** ((g + 1.0) / (2.0 * (g - 1.0)))
    else:
        factor = math.sqrt(max(0.0, 2.0 * g / ((g - 1.0) * R_AIR * t0)
                               * (ratio ** (2.0 / g) - ratio ** ((g + 1.0) / g))))
    return float(cd) * area * p0 * factor


def orifice_rate_lpm(diameter_mm, pressure_bar_gauge, cd=DEFAULT_CD,
                     temperature_c=DEFAULT_TEMPERATURE_C) -> Decimal:
    """Free-air leak rate in l/min (ṁ / ρ, ρ = 1.204 kg/m³). Check value (DOMAIN.md):
    1 mm, 6 bar gauge, 20 °C, Cd = 1 → ṁ ≈ 1.30 g/s, ≈ 65 l/min."""
    if diameter_mm is None or not 0 < _d(diameter_mm) <= 100:
        raise RateInputError("orifice_diameter_mm", "diameter")
    if pressure_bar_gauge is None or not 0 <= _d(pressure_bar_gauge) <= 400:
        raise RateInputError("pressure_bar", "pressure")
    if cd is None or not 0 < _d(cd) <= 1:
        raise RateInputError("discharge_coefficient", "cd")
    if temperature_c is None or not -50 <= _d(temperature_c) <= 200:
        raise RateInputError("temperature_c", "temperature")
    m = orifice_mass_flow_kg_s(diameter_mm, pressure_bar_gauge, cd, temperature_c)
    lpm = m / RHO_FREE_AIR * 1000.0 * 60.0
    return Decimal(repr(lpm)).quantize(RATE_PLACES)


@dataclass(frozen=True)
class DetectorPoint:
    """One row of an organization's detector table: at `pressure_bar` (gauge) and
    `distance_m` from the leak, a reading of `db` means `rate_lpm`."""

    pressure_bar: Decimal
    distance_m: Decimal
    db: Decimal
    rate_lpm: Decimal


def _between(x: Decimal, points: list[tuple[Decimal, Decimal]], field: str) -> Decimal:
    """Linear interpolation of y at x between the two neighbouring points (sorted by x);
    exactly on a point: its y. Outside the points' range: RateInputError (no extrapolation)."""
    xs = [p[0] for p in points]
    if x < xs[0] or x > xs[-1]:
        raise RateInputError(field, f"{xs[0]}–{xs[-1]}")
    for (x0, y0), (x1, y1) in zip(points, points[1:], strict=False):
        if x0 <= x <= x1:
            if x1 == x0:
                return y0
            return y0 + (y1 - y0) * (x - x0) / (x1 - x0)
    return points[-1][1]  # a single point equal to x


def detector_rate_lpm(table: list[DetectorPoint], db, distance_m, pressure_bar) -> Decimal:
    """Leak rate from a detector reading through the organization's table.

    Interpolation rule (stated on the settings page too): the table is a set of curves, one
    per (pressure, distance), each giving l/min over dB. The reading is read off linearly
    (1) in dB on each curve, (2) between the two table distances around the reading's
    distance at each table pressure, (3) between the two table pressures around the reading's
    pressure. A value on a table point is used as it is; a value outside the table's range
    (dB of a curve, distances of a pressure, pressures of the table) is refused naming that
    input — never extrapolated. Rates of a curve never fall as dB rise (checked when the
    table is saved), so the result rises with the dB reading and is never negative."""
    if not table:
        raise RateInputError("method", "no table")
    for name, value in (("detector_db", db), ("detector_distance_m", distance_m),
                        ("pressure_bar", pressure_bar)):
        if value is None:
            raise RateInputError(name, "missing")
    db, distance_m, pressure_bar = _d(db), _d(distance_m), _d(pressure_bar)
    curves: dict[Decimal, dict[Decimal, list[tuple[Decimal, Decimal]]]] = {}
    for p in table:
        curves.setdefault(_d(p.pressure_bar), {}).setdefault(_d(p.distance_m), []).append(
            (_d(p.db), _d(p.rate_lpm)))

    def at_pressure(pressure: Decimal) -> Decimal:
        by_distance = curves[pressure]
        distances = sorted(by_distance)
        if distance_m < distances[0] or distance_m > distances[-1]:
            raise RateInputError("detector_distance_m", f"{distances[0]}–{distances[-1]}")
        points = [(dist, _between(db, sorted(by_distance[dist]), "detector_db"))
                  for dist in _neighbours(distance_m, distances)]
        return _between(distance_m, points, "detector_distance_m")

    pressures = sorted(curves)
    if pressure_bar < pressures[0] or pressure_bar > pressures[-1]:
        raise RateInputError("pressure_bar", f"{pressures[0]}–{pressures[-1]}")
    needed = _neighbours(pressure_bar, pressures)
    rate = _between(pressure_bar, [(p, at_pressure(p)) for p in needed], "pressure_bar")
    return max(Decimal(0), rate).quantize(RATE_PLACES)


def _neighbours(x: Decimal, xs: list[Decimal]) -> list[Decimal]:
    """The table values around x: x itself when it is one, else the next lower and higher."""
    if x in xs:
        return [x]
    lower = [v for v in xs if v < x]
    higher = [v for v in xs if v > x]
    return [v for v in (lower[-1] if lower else None, higher[0] if higher else None)
            if v is not None]

