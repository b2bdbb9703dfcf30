import pytest

from hetsim.units import Dimension, from_si, to_si


@pytest.mark.parametrize(
    ("value", "unit", "dimension", "expected"),
    [
        (80, "GB", Dimension.BYTES, 80e9),
        (80, "GiB", Dimension.BYTES, 80 * 2**30),
        (3.35, "TB/s", Dimension.BYTES_PER_S, 3.35e12),
        (400, "Gb/s", Dimension.BYTES_PER_S, 50e9),
        (400, "Gbps", Dimension.BYTES_PER_S, 50e9),
        (989, "TFLOP/s", Dimension.FLOPS, 989e12),
        (1979, "TOPS", Dimension.FLOPS, 1979e12),
        (3, "us", Dimension.SECONDS, 3e-6),
        (1, "kW", Dimension.WATTS, 1000),
        (3.6, "USD/h", Dimension.USD_PER_S, 0.001),
        (0.40, "USD/kWh", Dimension.USD_PER_JOULE, 0.40 / 3.6e6),
    ],
)
def test_units_convert_to_si(value, unit, dimension, expected):
    assert to_si(value, unit, dimension) == pytest.approx(expected)
    assert from_si(to_si(value, unit, dimension), unit) == pytest.approx(value)


def test_unknown_unit_names_expected_units():
    with pytest.raises(ValueError, match=r"expected a unit of bytes/s .*got 'TB/fortnight'"):
        to_si(1, "TB/fortnight", Dimension.BYTES_PER_S)


def test_unit_of_wrong_dimension_is_rejected():
    with pytest.raises(ValueError, match=r"got 'TFLOP/s' which measures FLOP/s"):
        to_si(1, "TFLOP/s", Dimension.BYTES_PER_S)
