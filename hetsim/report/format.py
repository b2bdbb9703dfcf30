"""Number formatting shared by the tables, figures, HTML and Markdown, so each number reads the
same everywhere. Missing values (None, NaN) print as ``n/a``."""

from __future__ import annotations

import math
import re
from typing import Any

MISSING = "n/a"
_NUMERIC = re.compile(r"^([-+]?\$?[\d,]+(\.\d+)?(e[-+]?\d+)?(%|/h| ms| s)?|n/a)$")


def is_missing(value: Any) -> bool:
    """True for None and NaN."""
    return value is None or (isinstance(value, float) and math.isnan(value))


def usd(value: float | None) -> str:
    """Dollars: whole dollars above $1000 with separators, three significant digits below."""
    if is_missing(value):
        return MISSING
    magnitude = abs(value)
    if magnitude >= 1000:
        return f"${value:,.0f}"
    if magnitude >= 100:
        return f"${value:.0f}"
    if magnitude >= 10:
        return f"${value:.1f}"
    if magnitude >= 1:
        return f"${value:.2f}"
    return f"${value:.3g}"


def usd_per_h(value: float | None) -> str:
    """Dollars per hour, e.g. ``$123/h``."""
    text = usd(value)
    return text if text == MISSING else f"{text}/h"


def percent(value: float | None, digits: int = 1) -> str:
    """A 0-1 share as a percentage, e.g. ``99.2%``."""
    return MISSING if is_missing(value) else f"{100.0 * value:.{digits}f}%"


def change(value: float | None, reference: float | None) -> str:
    """Signed relative change of ``value`` against ``reference``, e.g. ``-42%``."""
    if is_missing(value) or is_missing(reference) or reference == 0:
        return MISSING
    return f"{100.0 * (value / reference - 1.0):+.0f}%"


def relative(value: float | None, reference: float | None) -> str:
    """``59% lower`` / ``12% higher`` / ``the same`` for ``value`` against ``reference``."""
    if is_missing(value) or is_missing(reference) or reference == 0:
        return MISSING
    ratio = value / reference - 1.0
    if abs(ratio) < 0.005:
        return "the same"
    return f"{100.0 * abs(ratio):.0f}% {'lower' if ratio < 0 else 'higher'}"


def seconds(value: float | None) -> str:
    """A duration: milliseconds below one second, seconds (three significant digits) above."""
    if is_missing(value):
        return MISSING
    if math.isinf(value):  # a percentile the misses alone pass: no latency reaches it
        return "not reached"
    if abs(value) < 1.0:
        return f"{1000.0 * value:.3g} ms"
    if abs(value) < 1000.0:
        return f"{value:.3g} s"
    return f"{value:,.0f} s"


def count(value: float | None) -> str:
    """A whole number."""
    return MISSING if is_missing(value) else f"{value:,.0f}"


def yes_no(value: Any) -> str:
    """``yes`` / ``no``."""
    return "yes" if bool(value) else "no"


def looks_numeric(text: str) -> bool:
    """True for a formatted number (``$1,234/h``, ``-3.5%``, ``420 ms``, ``n/a``): right-align it."""
    return bool(_NUMERIC.match(text))
