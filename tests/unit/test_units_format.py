"""Quantities printed for people: plain digits, engineering units, never scientific notation."""

import pytest

from hetsim.units import format_duration, format_number, format_usd


@pytest.mark.parametrize(
    ("usd", "text"),
    [(262000, "$262,000"), (30.24, "$30.24"), (0.5, "$0.50"), (999.999, "$1,000"), (-1234.4, "-$1,234"),
     (1e9, "$1,000,000,000"), (0.0, "$0.00")],
)  # fmt: skip
def test_dollars_print_whole_with_separators_from_a_thousand_and_in_cents_below(usd, text):
    assert format_usd(usd) == text


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(6e-6, "6 µs"), (2.5e-6, "2.5 µs"), (0.0025, "2.5 ms"), (1.234, "1.23 s"), (5e-10, "0.5 ns"),
     (3600.0, "3,600 s"), (0.0009997, "1 ms"), (0.1, "100 ms"), (0.0, "0 s"), (1e-15, "0.000001 ns")],
)  # fmt: skip
def test_durations_take_the_largest_unit_that_keeps_them_at_one_or_more(seconds, text):
    assert format_duration(seconds) == text


@pytest.mark.parametrize(("value", "text"), [(2250.0, "2,250"), (0.696, "0.696"), (14.7, "14.7"), (8.0, "8"),
                                             (0.000123, "0.000123"), (12345.6, "12,346")])  # fmt: skip
def test_numbers_keep_three_significant_digits_in_plain_notation(value, text):
    assert format_number(value) == text
