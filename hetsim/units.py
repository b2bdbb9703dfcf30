"""Unit strings and their conversion to SI base units.

This is the only module that knows unit spellings. YAML files write quantities as
``{value: 3.35, unit: TB/s, source: nvidia}``; everything inside hetsim is SI
(seconds, bytes, bytes/s, FLOP/s, watts, US dollars, dollars per second).

Decimal prefixes (KB, MB, GB, TB) are powers of 1000, binary ones (KiB, MiB, GiB) powers
of 1024, as vendors print them. Bit rates (Gb/s, Gbps) are divided by 8.
"""

from __future__ import annotations

import math
from enum import StrEnum


class Dimension(StrEnum):
    """Physical dimension of a quantity; each YAML field expects exactly one."""

    BYTES = "bytes"
    BYTES_PER_S = "bytes/s"
    FLOPS = "FLOP/s"
    SECONDS = "s"
    WATTS = "W"
    USD = "USD"
    USD_PER_S = "USD/s"
    USD_PER_JOULE = "USD/J"
    USD_PER_W_PER_S = "USD/(W*s)"
    RATIO = "ratio"


_DECIMAL = {"": 1.0, "K": 1e3, "M": 1e6, "G": 1e9, "T": 1e12, "P": 1e15}
_BINARY = {"Ki": 2.0**10, "Mi": 2.0**20, "Gi": 2.0**30, "Ti": 2.0**40}


def _build_table() -> dict[str, tuple[Dimension, float]]:
    table: dict[str, tuple[Dimension, float]] = {}
    for prefix, factor in (_DECIMAL | _BINARY).items():
        table[f"{prefix}B"] = (Dimension.BYTES, factor)
        table[f"{prefix}B/s"] = (Dimension.BYTES_PER_S, factor)
    for prefix, factor in _DECIMAL.items():
        table[f"{prefix}b/s"] = (Dimension.BYTES_PER_S, factor / 8.0)
        table[f"{prefix}bps"] = (Dimension.BYTES_PER_S, factor / 8.0)
        table[f"{prefix}FLOP/s"] = (Dimension.FLOPS, factor)
        # Integer tensor throughput is printed in OPS; hetsim counts one op like one FLOP.
        table[f"{prefix}OPS"] = (Dimension.FLOPS, factor)
        table[f"{prefix}OP/s"] = (Dimension.FLOPS, factor)
    table["TFLOPS"] = (Dimension.FLOPS, 1e12)
    table["TOPS"] = (Dimension.FLOPS, 1e12)
    table.update(
        {
            "s": (Dimension.SECONDS, 1.0),
            "ms": (Dimension.SECONDS, 1e-3),
            "us": (Dimension.SECONDS, 1e-6),
            "ns": (Dimension.SECONDS, 1e-9),
            "min": (Dimension.SECONDS, 60.0),
            "h": (Dimension.SECONDS, 3600.0),
            "W": (Dimension.WATTS, 1.0),
            "kW": (Dimension.WATTS, 1e3),
            "USD": (Dimension.USD, 1.0),
            "USD/h": (Dimension.USD_PER_S, 1.0 / 3600.0),
            "USD/s": (Dimension.USD_PER_S, 1.0),
            "USD/kWh": (Dimension.USD_PER_JOULE, 1.0 / 3.6e6),
            "USD/kW/month": (Dimension.USD_PER_W_PER_S, 1.0 / (1e3 * 730.0 * 3600.0)),
            "ratio": (Dimension.RATIO, 1.0),
            "%": (Dimension.RATIO, 0.01),
        }
    )
    return table


UNITS: dict[str, tuple[Dimension, float]] = _build_table()
"""Every accepted unit spelling -> (dimension, factor to SI)."""

HOURS_PER_MONTH = 730.0  # 8760 h / 12, the convention of the USD/kW/month unit above


def units_of(dimension: Dimension) -> list[str]:
    """All unit spellings accepted for ``dimension``, for error messages."""
    return sorted(u for u, (d, _) in UNITS.items() if d is dimension)


def to_si(value: float, unit: str, expected: Dimension) -> float:
    """Convert ``value`` in ``unit`` to SI, checking the unit measures ``expected``.

    Raises:
        ValueError: the unit is unknown or measures another dimension (message names both).
    """
    if unit not in UNITS:
        raise ValueError(f"expected a unit of {expected} (one of {', '.join(units_of(expected))}), got {unit!r}")
    dimension, factor = UNITS[unit]
    if dimension is not expected:
        raise ValueError(f"expected a unit of {expected}, got {unit!r} which measures {dimension}")
    return value * factor


def from_si(value_si: float, unit: str) -> float:
    """Express an SI value in ``unit`` (for display)."""
    return value_si / UNITS[unit][1]



def format_number(value: float, significant: int = 3) -> str:
    """``value`` to ``significant`` digits in plain notation, with separators ("1,230", "2.5", "0.0012")."""
    if value == 0:
        return "0"
    decimals = max(0, significant - 1 - math.floor(math.log10(abs(value))))
    text = f"{value:,.{decimals}f}"
    return text.rstrip("0").rstrip(".") if "." in text else text


def format_usd(value: float) -> str:
    """Dollars in plain digits: whole dollars with separators from $1,000 ("$262,000"), cents below
    ("$30.24")."""
    cents = round(abs(value), 2)
    sign = "-" if value < 0 and cents else ""
    return f"{sign}${cents:,.0f}" if cents >= 1000 else f"{sign}${cents:,.2f}"


_DURATION_UNITS = ((1.0, "s"), (1e-3, "ms"), (1e-6, "µs"), (1e-9, "ns"))


def format_duration(seconds: float) -> str:
    """A duration in the largest of s, ms, µs, ns that keeps it at 1 or more, three significant
    digits, never in scientific notation ("6 µs", "2.5 ms", "1.23 s", "3,600 s")."""
    if seconds == 0 or not math.isfinite(seconds):
        return f"{seconds:g} s"
    rounded = float(f"{seconds:.3g}")
    scale, unit = next(((f, u) for f, u in _DURATION_UNITS if abs(rounded) >= f), _DURATION_UNITS[-1])
    return f"{format_number(rounded / scale)} {unit}"
