"""Energy, cost and CO2 against hand-computed values; settings valid at a date."""
import datetime as dt
from decimal import Decimal as D

import pytest

from leakhub.leaks import calc
from leakhub.leaks.calc import EnergyParams

P = EnergyParams(price_per_kwh=D("0.19"), currency="EUR", specific_power=D("6.4"),
                 operating_hours=8000, co2_factor=D("0.38"))


def test_figures_by_hand():
    # 100 l/min = 0.1 m³/min; × 6.4 kW/(m³/min) = 0.64 kW; × 8000 h = 5120 kWh/a;
    # × 0.19 €/kWh = 972.80 €/a; × 0.38 kg/kWh = 1945.6 kg CO2/a.
    f = calc.figures(D("100"), P)
    assert f.flow_m3_min == D("0.1")
    assert f.power_kw == D("0.64")
    assert f.kwh_year == D("5120")
    assert f.cost_year == D("972.80")
    assert f.co2_kg_year == D("1945.6")
    assert f.currency == "EUR"


def test_price_per_m3_alternative():
    # 0.1 m³/min × 60 min × 8000 h = 48,000 m³/a × 0.02 €/m³ = 960 €/a; energy and CO2 unchanged.
    p = EnergyParams(**{**P.__dict__, "price_per_m3": D("0.02")})
    f = calc.figures(D("100"), p)
    assert f.cost_year == D("960")
    assert f.kwh_year == D("5120")
    assert f.co2_kg_year == D("1945.6")


def test_control_factor_gives_expected_vs_potential():
    # Inlet modulation ≈ 0.30 (MEASUR): a repair saves only 30 % of the potential.
    p = EnergyParams(**{**P.__dict__, "control_factor": D("0.3")})
    f = calc.figures(D("100"), p)
    assert f.cost_year == D("972.80")            # potential
    assert f.expected_cost_year == D("291.84")   # expected
    assert f.expected_kwh_year == D("1536")
    assert f.expected_co2_kg_year == D("583.68")
    assert calc.figures(D("100"), P).expected_cost_year == D("972.80")  # on/off: factor 1


def test_units_and_estimate_classes():
    assert calc.cfm_to_lpm(1) == D("28.316846592")
    assert calc.estimate_rate_lpm("medium") == D("84.950539776")  # 3 cfm
    assert calc.estimate_rate_lpm("severe") == D("283.16846592")  # 10 cfm
    assert calc.lpm_to_cfm(D("28.316846592")) == 1
    # ITAC cross-check: ΔkWh = Q_cfm × h × SP[kW/100 cfm] / 100. 10 cfm, 8000 h, 18.12 kW/100 cfm
    # equals 6.4 kW/(m³/min) (6.4 / 35.3147 × 100 ≈ 18.12): 0.28317 m³/min × 6.4 × 8000
    # ≈ 14,498 kWh/a both ways.
    ours = calc.energy_kwh_per_year(calc.cfm_to_lpm(10), P)
    itac = D(10) * 8000 * (D("6.4") * calc.LPM_PER_CFM / 1000 * 100) / 100
    assert abs(ours - itac) < D("0.0001")
    assert round(ours) == 14498


def test_zero_rate_costs_nothing():
    f = calc.figures(0, P)
    assert f.cost_year == 0 and f.co2_kg_year == 0


def test_totals_sum_mixed_parameters():
    t = calc.Totals()
    t.add(D("100"), calc.figures(D("100"), P))
    t.add(D("50"), calc.figures(D("50"), EnergyParams(**{**P.__dict__, "price_per_kwh": D("0.3")})))
    # 972.80 + 0.05 × 6.4 × 8000 × 0.3 = 972.80 + 768 = 1740.80
    assert t.cost_year == D("1740.80")
    assert t.count == 2 and t.rate_lpm == D("150") and t.currency == "EUR"


# ---------------------------------------------------------------- settings valid at a date

@pytest.fixture
def sites(actor):
    from leakhub.locations import service as loc

    a = loc.create_location(actor, kind="site", code="BER", name="Werk Berlin")
    b = loc.create_location(actor, kind="site", code="MUC", name="Werk München")
    return a, b


def test_builtin_defaults_before_any_settings(actor, sites):
    from leakhub.locations.settings import DEFAULTS, settings_at

    p = settings_at(actor, sites[0], dt.date(2024, 5, 1))
    assert p == DEFAULTS
    assert p.price_per_kwh == D("0.19") and p.specific_power == D("6.4")
    assert p.operating_hours == 8000 and p.co2_factor == D("0.38") and p.control_factor == 1


def _org_row(actor, day, price, **kw):
    from leakhub.locations import service as loc

    values = dict(valid_from=day, price_per_kwh=D(price), currency="EUR",
                  specific_power=D("6.4"), operating_hours=8000, co2_factor=D("0.38"))
    values.update(kw)
    return loc.create_settings(actor, **values)


def test_settings_valid_at_date_and_site_override(actor, sites):
    from leakhub.locations import service as loc
    from leakhub.locations.settings import SettingsResolver, settings_at

    berlin, munich = sites
    _org_row(actor, dt.date(2023, 1, 1), "0.25", co2_factor=D("0.42"))
    _org_row(actor, dt.date(2024, 1, 1), "0.30")
    # Berlin negotiated its own price from mid-2024; everything else inherits.
    loc.create_settings(actor, site=berlin, valid_from=dt.date(2024, 6, 1),
                        price_per_kwh=D("0.20"), control_factor=D("0.97"))

    assert settings_at(actor, berlin, dt.date(2022, 12, 31)).price_per_kwh == D("0.19")
    assert settings_at(actor, berlin, dt.date(2023, 5, 1)).price_per_kwh == D("0.25")
    assert settings_at(actor, berlin, dt.date(2023, 5, 1)).co2_factor == D("0.42")
    assert settings_at(actor, berlin, dt.date(2024, 3, 1)).price_per_kwh == D("0.30")
    p = settings_at(actor, berlin, dt.date(2024, 7, 1))
    assert p.price_per_kwh == D("0.20") and p.control_factor == D("0.97")
    assert p.co2_factor == D("0.38") and p.specific_power == D("6.4")  # inherited
    q = settings_at(actor, munich, dt.date(2024, 7, 1))
    assert q.price_per_kwh == D("0.30") and q.control_factor == 1
    # Cost of 100 l/min at Berlin in 2023 vs 2024-07: 5120 kWh × 0.25 / × 0.20.
    r = SettingsResolver(actor)
    assert calc.figures(100, r.at(berlin.id, dt.datetime(2023, 5, 1, 10))).cost_year == D("1280")
    assert calc.figures(100, r.at(berlin.id, dt.date(2024, 7, 1))).cost_year == D("1024")


def test_leak_uses_settings_at_its_date_and_site(actor, sites):
    from leakhub.leaks import service
    from leakhub.locations import service as loc

    berlin, _ = sites
    hall = loc.create_location(actor, kind="building", code="H1", name="Halle 1", parent=berlin)
    _org_row(actor, dt.date(2020, 1, 1), "0.10")
    loc.create_settings(actor, site=berlin, valid_from=dt.date(2024, 1, 1), price_per_m3=D("0.02"))
    old = service.create_leak(actor, location=hall.id, found_at=dt.datetime(2023, 6, 1),
                              rate_lpm=D("100"))
    new = service.create_leak(actor, location=hall.id, found_at=dt.datetime(2024, 6, 1),
                              rate_lpm=D("100"))
    assert service.figures_for(actor, old).cost_year == D("512")  # 5120 kWh × 0.10
    assert service.figures_for(actor, new).cost_year == D("960")  # 48,000 m³ × 0.02


def test_settings_rules(actor, make_actor, sites):
    from werkzeug.exceptions import Forbidden

    from leakhub.core.validation import ValidationError
    from leakhub.locations import service as loc

    _org_row(actor, dt.date(2024, 1, 1), "0.30")
    with pytest.raises(ValidationError) as exc:
        _org_row(actor, dt.date(2024, 1, 1), "0.31")
    assert "valid_from" in exc.value.errors
    with pytest.raises(Forbidden):
        _org_row(make_actor("manager"), dt.date(2025, 1, 1), "0.31")
    hall = loc.create_location(actor, kind="building", code="H", name="H", parent=sites[0])
    with pytest.raises(ValidationError) as exc:
        loc.create_settings(actor, site=hall, valid_from=dt.date(2025, 1, 1))
    assert "site" in exc.value.errors
    with pytest.raises(ValidationError) as exc:
        loc.parse_settings_form({"valid_from": "2024-01-01", "price_per_kwh": "0,2"},
                                site_row=False)
    assert set(exc.value.errors) == {"currency", "specific_power", "operating_hours",
                                     "co2_factor"}
    parsed = loc.parse_settings_form({"valid_from": "01.01.2025", "price_per_kwh": "0,215"},
                                     site_row=True)
    assert parsed["price_per_kwh"] == D("0.215") and parsed["valid_from"] == dt.date(2025, 1, 1)
