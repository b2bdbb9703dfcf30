"""A node profile's spot price: sourced $/h and mean run before a reclaim, and the date it was read."""

from __future__ import annotations

import datetime

import pytest
from pydantic import ValidationError

from hetsim.io.catalog import load_catalog
from hetsim.specs.hardware import SpotPriceSpec

PRICE = {"value": 18.0, "unit": "USD/h", "source": "assumed: a test"}
RUN = {"value": 3, "unit": "h", "source": "assumed: a test"}


@pytest.mark.parametrize("as_of", ["2026-03", "2026-03-15", datetime.date(2026, 3, 15)])
def test_a_spot_price_carries_the_date_it_was_read(as_of) -> None:
    spot = SpotPriceSpec(rental=PRICE, mean_time_to_interruption=RUN, as_of=as_of)
    assert spot.as_of.startswith("2026-03") and spot.mean_time_to_interruption.si == 3 * 3600.0


@pytest.mark.parametrize("as_of", ["March 2026", "2026", "", 2026])
def test_a_spot_price_without_a_date_is_refused(as_of) -> None:
    with pytest.raises(ValidationError, match="expected a date YYYY-MM or YYYY-MM-DD"):
        SpotPriceSpec(rental=PRICE, mean_time_to_interruption=RUN, as_of=as_of)


def test_the_shipped_h100_node_prices_spot_from_a_dated_source() -> None:
    spot = load_catalog("datasheet").node("hgx-h100-8").price.spot
    assert spot is not None and spot.as_of == "2026-03" and spot.rental.si * 3600 == pytest.approx(18.0)
    assert spot.rental.source == "costnimbus" and spot.mean_time_to_interruption.source == "digiteria"
