"""JSON as hetsim writes it: NaN and infinities become null (JSON has neither), keys strings."""

from __future__ import annotations

import json
import math
from typing import Any


def json_safe(value: Any) -> Any:
    """``value`` with every non-finite float replaced by None and every mapping key a string."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
    return value


def json_text(value: Any) -> str:
    """``value`` as indented JSON text ending in a newline."""
    return json.dumps(json_safe(value), indent=2) + "\n"
