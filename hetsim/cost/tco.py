"""Total cost of ownership per hour of a device or node, and the unit costs derived from it.

Owned hardware: purchase price amortised as an annuity (capital recovery factor
r / (1 - (1 + r)^-n) per year, spread over the hours of a year), plus power (between idle
and TDP with utilisation, times PUE, times the energy price), plus hosting ($ per kW of
provisioned power per month), plus a networking share of capex. Rented hardware: the rental
$/h, which already includes all of that. The paper's printed per-device operating $/h can
stand in for power (preset ``paper-printed``).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from enum import StrEnum

from hetsim.errors import EstimateError
from hetsim.specs.hardware import AcceleratorSpec, NodeSpec

HOURS_PER_YEAR = 8760.0


class CostBasis(StrEnum):
    OWNED = "owned"
    RENTED = "rented"


@dataclass(frozen=True)
class TcoAssumptions:
    """Financial and facility assumptions; every field has a unit in its name.

    Attributes:
        amortization_years: financing period of the purchase.
        interest_rate: annual interest (cost of capital) of the financing.
        hours_per_year: hours the capex is spread over (8760 = always on).
        energy_usd_per_kwh: electricity price.
        pue: power usage effectiveness of the facility (1.0 = no cooling overhead).
        power_utilization: 1.0 bills full TDP (the paper's convention); lower values bill
            idle + utilization x (TDP - idle).
        hosting_usd_per_kw_month: colocation/facility fee per provisioned kW.
        networking_capex_share: networking capex as a share of the hardware price.
        use_printed_operating_cost: bill a profile's printed ``price.operating`` $/h instead of
            computing power cost (the paper's Table 5 column).
    """

    name: str = "custom"
    amortization_years: float = 4.0
    interest_rate: float = 0.08
    hours_per_year: float = HOURS_PER_YEAR
    energy_usd_per_kwh: float = 0.40
    pue: float = 1.0
    power_utilization: float = 1.0
    hosting_usd_per_kw_month: float = 0.0
    networking_capex_share: float = 0.0
    use_printed_operating_cost: bool = False

    def __post_init__(self) -> None:
        checks = {
            "amortization_years": self.amortization_years > 0,
            "interest_rate": self.interest_rate >= 0,
            "hours_per_year": 0 < self.hours_per_year <= HOURS_PER_YEAR,
            "energy_usd_per_kwh": self.energy_usd_per_kwh >= 0,
            "pue": self.pue >= 1.0,
            "power_utilization": 0 <= self.power_utilization <= 1,
            "hosting_usd_per_kw_month": self.hosting_usd_per_kw_month >= 0,
            "networking_capex_share": self.networking_capex_share >= 0,
        }
        for field_name, ok in checks.items():
            if not ok:
                raise EstimateError(
                    f"TCO assumptions: field '{field_name}' out of range, got {getattr(self, field_name)}"
                )

    @property
    def capital_recovery_factor(self) -> float:
        """Share of the price paid per year by an annuity over ``amortization_years``."""
        r, n = self.interest_rate, self.amortization_years
        denominator = 1.0 - (1.0 + r) ** -n
        # Below ~1e-12 the annuity formula loses all precision; its limit is straight-line.
        return 1.0 / n if r < 1e-12 or denominator <= 0 else r / denominator


PRESETS: dict[str, TcoAssumptions] = {
    # arXiv 2507.19635 §5.1: 4-year financing at 8%, every device at full TDP, $0.40/kWh,
    # no colocation or NRE. Hours per year and PUE are not stated: 8760 h and 1.0 (our choice).
    "paper": TcoAssumptions(name="paper"),
    # Same financing, but the printed Table 5 "operating cost $/hr" stands in for power.
    "paper-printed": TcoAssumptions(name="paper-printed", use_printed_operating_cost=True),
    # A typical enterprise deployment (assumptions, stated so they can be challenged):
    # 5-year life at 7% cost of capital; PUE 1.3 (Uptime Institute 2024 survey average ~1.56,
    # modern AI halls lower); $0.09/kWh (US EIA 2024 average industrial price ~$0.08-0.09);
    # colocation $150/kW-month (wholesale AI colocation 2025 quotes $120-200); power billed at
    # 70% utilisation between idle and TDP; networking 10% of hardware capex.
    "enterprise": TcoAssumptions(
        name="enterprise",
        amortization_years=5.0,
        interest_rate=0.07,
        energy_usd_per_kwh=0.09,
        pue=1.3,
        power_utilization=0.7,
        hosting_usd_per_kw_month=150.0,
        networking_capex_share=0.10,
    ),
}


def preset(name: str) -> TcoAssumptions:
    """A named preset; an unknown name lists the choices."""
    if name not in PRESETS:
        raise EstimateError(f"TCO preset: expected one of {', '.join(PRESETS)}, got {name!r}")
    return PRESETS[name]


@dataclass(frozen=True, slots=True)
class HourlyCost:
    """$/h of one device or node, by component; ``basis`` says owned or rented."""

    capex_usd_per_h: float
    power_usd_per_h: float
    hosting_usd_per_h: float
    networking_usd_per_h: float
    rental_usd_per_h: float
    basis: CostBasis
    provenance: str

    @property
    def total_usd_per_h(self) -> float:
        return (
            self.capex_usd_per_h
            + self.power_usd_per_h
            + self.hosting_usd_per_h
            + self.networking_usd_per_h
            + self.rental_usd_per_h
        )

    def scaled(self, factor: float) -> HourlyCost:
        """This cost for ``factor`` units (e.g. devices in a replica)."""
        return replace(
            self,
            capex_usd_per_h=self.capex_usd_per_h * factor,
            power_usd_per_h=self.power_usd_per_h * factor,
            hosting_usd_per_h=self.hosting_usd_per_h * factor,
            networking_usd_per_h=self.networking_usd_per_h * factor,
            rental_usd_per_h=self.rental_usd_per_h * factor,
        )


def capex_usd_per_h(price_usd: float, assumptions: TcoAssumptions) -> float:
    """Annuity payment per hour for hardware bought at ``price_usd``."""
    if price_usd < 0:
        raise EstimateError(f"price: expected >= 0 USD, got {price_usd}")
    return price_usd * assumptions.capital_recovery_factor / assumptions.hours_per_year


def power_usd_per_h(tdp_w: float, idle_w: float, assumptions: TcoAssumptions) -> float:
    """Energy cost per hour at the assumed utilisation, including facility overhead (PUE)."""
    watts = idle_w + assumptions.power_utilization * max(tdp_w - idle_w, 0.0)
    return watts / 1000.0 * assumptions.pue * assumptions.energy_usd_per_kwh


def hosting_usd_per_h(provisioned_w: float, assumptions: TcoAssumptions) -> float:
    """Facility fee per hour for provisioned (peak) power, $/kW-month spread over 730 h."""
    return provisioned_w / 1000.0 * assumptions.hosting_usd_per_kw_month / 730.0


def _owned(
    price_usd: float, tdp_w: float, idle_w: float, printed_op: float | None, assumptions: TcoAssumptions, what: str
) -> HourlyCost:
    if assumptions.use_printed_operating_cost:
        if printed_op is None:
            raise EstimateError(
                f"{what}: preset {assumptions.name!r} needs a printed operating cost (price.operating), none given"
            )
        power, provenance = printed_op, "capex annuity + printed operating $/h"
    else:
        power, provenance = power_usd_per_h(tdp_w, idle_w, assumptions), "capex annuity + power model"
    return HourlyCost(
        capex_usd_per_h=capex_usd_per_h(price_usd, assumptions),
        power_usd_per_h=power,
        hosting_usd_per_h=hosting_usd_per_h(tdp_w, assumptions),
        networking_usd_per_h=capex_usd_per_h(price_usd * assumptions.networking_capex_share, assumptions),
        rental_usd_per_h=0.0,
        basis=CostBasis.OWNED,
        provenance=f"{provenance} ({assumptions.name})",
    )


def _rented(rental_usd_per_h: float) -> HourlyCost:
    return HourlyCost(0.0, 0.0, 0.0, 0.0, rental_usd_per_h, CostBasis.RENTED, "rental price")


def device_hourly_cost(
    device: AcceleratorSpec, assumptions: TcoAssumptions, basis: CostBasis | None = None
) -> HourlyCost:
    """$/h of one device: owned if it has a purchase price (or ``basis`` says so), else rented."""
    price = device.price
    basis = basis or (CostBasis.OWNED if price.purchase is not None else CostBasis.RENTED)
    if basis == CostBasis.RENTED:
        if price.rental is None:
            raise EstimateError(f"device {device.name!r}: no rental price in its profile; use the owned basis")
        return _rented(price.rental.si * 3600.0)
    if price.purchase is None:
        raise EstimateError(f"device {device.name!r}: no purchase price in its profile; use the rented basis")
    tdp = device.tdp_w
    needs_power = not assumptions.use_printed_operating_cost
    if tdp is None and needs_power:
        raise EstimateError(f"device {device.name!r}: no TDP in its profile, so its power cost is unknown")
    idle = device.power.idle.si if device.power.idle is not None else (tdp or 0.0)
    printed = price.operating.si * 3600.0 if price.operating is not None else None
    return _owned(price.purchase.si, tdp or 0.0, idle, printed, assumptions, f"device {device.name!r}")


def node_hourly_cost(
    node: NodeSpec, devices: dict[str, AcceleratorSpec], assumptions: TcoAssumptions, basis: CostBasis | None = None
) -> HourlyCost:
    """$/h of a node SKU: its own price if given, else its parts; power of all parts + overhead."""
    parts = [node.host_cpus] + ([node.accelerators] if node.accelerators else [])
    tdp = node.power.overhead.si + sum(devices[p.device].tdp_w * p.count for p in parts if devices[p.device].tdp_w)
    idle = node.power.overhead.si + sum(
        (devices[p.device].power.idle.si if devices[p.device].power.idle else devices[p.device].tdp_w or 0.0) * p.count
        for p in parts
    )
    unpriced = [p.device for p in parts if devices[p.device].price.purchase is None]
    purchasable = node.price.purchase is not None or not unpriced
    basis = basis or (CostBasis.OWNED if purchasable else CostBasis.RENTED)
    if basis == CostBasis.RENTED:
        if node.price.rental is None:
            raise EstimateError(
                f"node {node.name!r}: no rental price in its profile"
                + ("" if purchasable else f", and no purchase price (none for {', '.join(unpriced)})")
            )
        return _rented(node.price.rental.si * 3600.0)
    if not purchasable:
        raise EstimateError(f"node {node.name!r}: no node price and no purchase price for {', '.join(unpriced)}")
    price = node_purchase_usd(node, devices)
    assert price is not None  # purchasable
    return _owned(price, tdp, idle, None, replace(assumptions, use_printed_operating_cost=False), f"node {node.name!r}")


def node_power_w(node: NodeSpec, devices: dict[str, AcceleratorSpec]) -> tuple[float, float]:
    """(idle, full-load) watts of a node at the wall before facility overhead: its host overhead
    plus every part's idle power (its TDP where the profile gives no idle figure) or TDP."""
    parts = [node.host_cpus] + ([node.accelerators] if node.accelerators else [])
    full = node.power.overhead.si + sum((devices[p.device].tdp_w or 0.0) * p.count for p in parts)
    idle = node.power.overhead.si + sum(
        (devices[p.device].power.idle.si if devices[p.device].power.idle else devices[p.device].tdp_w or 0.0) * p.count
        for p in parts
    )
    return idle, full


def node_purchase_usd(node: NodeSpec, devices: dict[str, AcceleratorSpec]) -> float | None:
    """What buying the node costs: its own price when its profile gives one, else the sum of its
    priced parts; None when some part has no price."""
    if node.price.purchase is not None:
        return node.price.purchase.si
    parts = [node.host_cpus] + ([node.accelerators] if node.accelerators else [])
    prices = [devices[p.device].price.purchase for p in parts]
    if any(price is None for price in prices):
        return None
    return sum(price.si * p.count for price, p in zip(prices, parts, strict=True))  # type: ignore[union-attr]


def usd_per_million_tokens(usd_per_h: float, tokens_per_s: float) -> float:
    """$ per 1M tokens for hardware costing ``usd_per_h`` producing ``tokens_per_s``."""
    if tokens_per_s <= 0:
        raise EstimateError(f"throughput: expected tokens/s > 0, got {tokens_per_s}")
    return usd_per_h / (tokens_per_s * 3600.0) * 1e6


def usd_per_session(usd_per_h: float, device_seconds_per_session: float) -> float:
    """$ per agent session that occupies ``device_seconds_per_session`` of hardware at ``usd_per_h``."""
    return usd_per_h * device_seconds_per_session / 3600.0
