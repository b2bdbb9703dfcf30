"""TCO model: paper.md E4 exactly, and the component arithmetic."""

import pytest

from hetsim.cost.tco import (
    CostBasis,
    TcoAssumptions,
    capex_usd_per_h,
    device_hourly_cost,
    power_usd_per_h,
    preset,
    usd_per_million_tokens,
    usd_per_session,
)
from hetsim.errors import EstimateError
from tests.conftest import make_device


def test_paper_annuity_factor_matches_e4():
    assert preset("paper").capital_recovery_factor == pytest.approx(0.301921, abs=5e-7)


@pytest.mark.parametrize(("price", "per_hour"), [(25000, 0.8616), (40000, 1.3786), (12500, 0.4308)])
def test_paper_capex_per_hour_matches_e4(price, per_hour):
    assert capex_usd_per_h(price, preset("paper")) == pytest.approx(per_hour, abs=5e-5)


def test_paper_power_is_full_tdp_at_forty_cents():
    assert power_usd_per_h(700, 100, preset("paper")) == pytest.approx(0.7 * 0.40)


def test_utilisation_bills_between_idle_and_tdp_with_pue():
    a = TcoAssumptions(energy_usd_per_kwh=0.10, pue=1.5, power_utilization=0.5)
    assert power_usd_per_h(700, 100, a) == pytest.approx((100 + 0.5 * 600) / 1000 * 1.5 * 0.10)


def test_zero_interest_is_straight_line():
    a = TcoAssumptions(interest_rate=0.0, amortization_years=4)
    assert capex_usd_per_h(8760 * 4, a) == pytest.approx(1.0)


def test_owned_device_cost_sums_components():
    cost = device_hourly_cost(make_device(), preset("enterprise"))
    assert cost.basis == CostBasis.OWNED
    parts = cost.capex_usd_per_h + cost.power_usd_per_h + cost.hosting_usd_per_h + cost.networking_usd_per_h
    assert cost.total_usd_per_h == pytest.approx(parts)
    assert cost.hosting_usd_per_h == pytest.approx(0.7 * 150 / 730)


def test_rented_basis_without_rental_price_is_a_clear_error():
    with pytest.raises(EstimateError, match="no rental price"):
        device_hourly_cost(make_device(), preset("paper"), CostBasis.RENTED)


def test_printed_operating_preset_needs_a_printed_cost():
    with pytest.raises(EstimateError, match="printed operating cost"):
        device_hourly_cost(make_device(), preset("paper-printed"))


def test_unit_costs():
    assert usd_per_million_tokens(3.6, 1000) == pytest.approx(1.0)
    assert usd_per_session(3.6, 10) == pytest.approx(0.01)
    with pytest.raises(EstimateError):
        usd_per_million_tokens(1, 0)


def test_unknown_preset_lists_choices():
    with pytest.raises(EstimateError, match="paper, paper-printed, enterprise"):
        preset("cheap")


def test_invalid_assumption_names_field():
    with pytest.raises(EstimateError, match="pue"):
        TcoAssumptions(pue=0.5)
