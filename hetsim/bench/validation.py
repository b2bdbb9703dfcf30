"""How far predicted op times are from measured ones, for calibrated and datasheet models.

Pure functions over measurement rows (dicts with ``kind``, ``dtype``, ``flops``, ``bytes``,
``seconds``). Each row is priced by ``hetsim.perf.fit.predict_seconds``, the same evaluator
(``DevicePerf.op_time``) that the fit and the simulator use, and then compared with its
measured time. The relative error is ``predicted / measured - 1``. A positive error means
the model is pessimistic. The GPU benchmark applies this to held-out problems, and so does
the acceptance script.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from hetsim.perf.fit import error_summary, predict_seconds
from hetsim.perf.roofline import DevicePerf


def prediction_errors(rows: Iterable[Mapping[str, Any]], perf: DevicePerf) -> list[dict[str, Any]]:
    """One record per row with a measured time: problem_id, kind, dtype, measured_s, predicted_s, error."""
    timed = [row for row in rows if _is_positive(row["seconds"])]
    if not timed:
        return []
    predicted = predict_seconds(timed, perf)
    return [
        {"problem_id": row.get("problem_id", ""), "kind": row["kind"], "dtype": row["dtype"],
         "measured_s": float(row["seconds"]), "predicted_s": float(p), "error": float(p) / float(row["seconds"]) - 1.0}
        for row, p in zip(timed, predicted, strict=True)
    ]


def _is_positive(value: Any) -> bool:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return False
    return math.isfinite(number) and number > 0


def summary_by_kind(errors: Sequence[Mapping[str, Any]]) -> dict[str, dict[str, float]]:
    """``error_summary`` (count, median/p90/max |error|, median signed error) per ``kind/dtype`` and ``all``."""
    groups: dict[str, list[Mapping[str, Any]]] = {"all": list(errors)}
    for error in errors:
        groups.setdefault(f"{error['kind']}/{error['dtype']}", []).append(error)
    return {
        key: error_summary([e["measured_s"] for e in group], [e["predicted_s"] for e in group])
        for key, group in sorted(groups.items(), key=lambda item: (item[0] != "all", item[0]))
    }


def compare_models(rows: Sequence[Mapping[str, Any]], calibrated: DevicePerf) -> dict[str, dict[str, dict[str, float]]]:
    """Held-out error of the calibrated model and of the datasheet roofline (no calibration)."""
    datasheet = DevicePerf(calibrated.device)
    return {
        "calibrated": summary_by_kind(prediction_errors(rows, calibrated)),
        "datasheet": summary_by_kind(prediction_errors(rows, datasheet)),
    }
