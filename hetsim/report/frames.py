"""The flat tables a report is built from, and their validation.

Reports never reach into live simulation or planner objects: the planner (through
``hetsim.api``) flattens its results into three DataFrames plus an optional ``meta`` mapping,
and everything in ``hetsim.report`` is a function of those. Extra columns are kept (they end
up in the CSV files) but never needed.

``fleets`` -- one row per candidate fleet / plan:

    ======================  =====================================================================
    fleet                   str, unique name of the candidate
    status                  'optimal' | 'feasible' | 'infeasible' (planner status)
    capex_usd_per_h         amortised purchase price, $/h (NaN allowed)
    power_usd_per_h         energy x PUE, $/h (NaN allowed)
    hosting_usd_per_h       colocation / facility, $/h (NaN allowed)
    networking_usd_per_h    networking share, $/h (NaN allowed)
    rental_usd_per_h        rented capacity, $/h (NaN allowed)
    total_usd_per_h         sum of the above, $/h (NaN allowed)
    usd_per_million_tokens  total cost per 1M input+output tokens, $ (NaN allowed)
    usd_per_session         total cost per agent session, $ (NaN allowed)
    ttft_p99_s              p99 time to first token, s (NaN allowed)
    tbt_p99_s               p99 time between tokens, s (NaN allowed)
    session_e2e_p99_s       p99 end-to-end session time, s (NaN allowed)
    sla_attainment          0-1, the minimum attained share over the SLA objectives (NaN allowed)
    sla_met                 bool, every objective met
    predicted_total_usd_per_h  the planner's predicted $/h; NaN if none
    note                    str, e.g. why the fleet is infeasible or misses the SLA ('' if none)
    ======================  =====================================================================

``placement`` -- one row per pool of a fleet:

    ======================  =====================================================================
    fleet                   str, a name from ``fleets``
    workload                str, the workload the stage belongs to
    stage                   str, e.g. 'llm:llama-3-8b:prefill', 'stt', 'tool'
    pool                    str, the pool name
    device                  str, accelerator (or CPU) name
    node                    str, node SKU
    replicas                replicas in the pool
    tp, pp                  tensor / pipeline parallel degree of one replica
    devices                 devices in the pool (replicas x tp x pp for LLM pools)
    utilization             0-1 busy share from simulation; NaN if not simulated
    usd_per_h               $/h of the pool (NaN allowed)
    ======================  =====================================================================

``sensitivity`` -- one row per fleet and case:

    ======================  =====================================================================
    fleet                   str, a name from ``fleets``
    case                    'base', 'prices -30%', 'prices +30%', 'demand x2' (others allowed)
    total_usd_per_h         $/h in that case (NaN allowed)
    usd_per_million_tokens  $ per 1M tokens in that case (NaN allowed)
    feasible                bool, whether a plan exists in that case
    ======================  =====================================================================

``meta`` -- optional mapping; every key optional (see :class:`ReportMeta`). Builders never
read the clock: the caller passes ``date``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from hetsim import __version__
from hetsim.errors import ScenarioError

STATUSES = ("optimal", "feasible", "infeasible")
SENSITIVITY_CASES = ("base", "prices -30%", "prices +30%", "demand x2")
COST_COMPONENTS = ("capex", "power", "hosting", "networking", "rental")

FLEET_TEXT = ("fleet", "status", "note")
FLEET_NUMBERS = (
    *(f"{c}_usd_per_h" for c in COST_COMPONENTS),
    "total_usd_per_h",
    "usd_per_million_tokens",
    "usd_per_session",
    "ttft_p99_s",
    "tbt_p99_s",
    "session_e2e_p99_s",
    "sla_attainment",
    "predicted_total_usd_per_h",
)
FLEET_BOOLS = ("sla_met",)
PLACEMENT_TEXT = ("fleet", "workload", "stage", "pool", "device", "node")
PLACEMENT_NUMBERS = ("replicas", "tp", "pp", "devices", "utilization", "usd_per_h")
SENSITIVITY_TEXT = ("fleet", "case")
SENSITIVITY_NUMBERS = ("total_usd_per_h", "usd_per_million_tokens")
SENSITIVITY_BOOLS = ("feasible",)

FLEET_COLUMNS = ("fleet", "status", *FLEET_NUMBERS[:-1], "sla_met", "predicted_total_usd_per_h", "note")
PLACEMENT_COLUMNS = (*PLACEMENT_TEXT, *PLACEMENT_NUMBERS)
SENSITIVITY_COLUMNS = (*SENSITIVITY_TEXT, *SENSITIVITY_NUMBERS, *SENSITIVITY_BOOLS)


@dataclass(frozen=True)
class ReportMeta:
    """What the report says about itself; every field optional.

    Attributes:
        title: page title.
        scenario: scenario name the plans answer.
        date: date string shown on the report (passed in; builders never read the clock).
        version: hetsim version that produced the numbers.
        sla: one-line statement of the SLA, e.g. 'TTFT p99 <= 2 s, TBT p99 <= 100 ms'.
        sla_target: attainment share an SLA objective must reach (0-1), drawn as the target line.
        e2e_objective_s: session end-to-end objective, drawn on the cost/latency chart if given.
        baseline_fleet: fleet the cheapest SLA-meeting fleet is compared with (default: the
            most expensive feasible fleet).
        assumptions: name -> value lines (TCO preset, energy price, ...).
        provenance: free-text lines saying where the numbers come from.
    """

    title: str = "hetsim fleet plan report"
    scenario: str = ""
    date: str = ""
    version: str = __version__
    sla: str = ""
    sla_target: float = 0.99
    e2e_objective_s: float | None = None
    baseline_fleet: str | None = None
    assumptions: Mapping[str, Any] = field(default_factory=dict)
    provenance: Sequence[str] = ()

    @classmethod
    def from_mapping(cls, meta: Mapping[str, Any] | ReportMeta | None) -> ReportMeta:
        """Build from a plain mapping; an unknown key lists the valid ones."""
        if meta is None:
            return cls()
        if isinstance(meta, ReportMeta):
            return meta
        valid = tuple(cls.__dataclass_fields__)
        unknown = sorted(set(meta) - set(valid))
        if unknown:
            raise ScenarioError(f"report meta: unknown key(s) {', '.join(unknown)}; expected any of {', '.join(valid)}")
        target = float(meta.get("sla_target", 0.99))
        if not 0.0 < target <= 1.0:
            raise ScenarioError(f"report meta: field 'sla_target' must be in (0, 1], got {target}")
        data = dict(meta)
        data["provenance"] = tuple(meta.get("provenance", ()))
        data["assumptions"] = dict(meta.get("assumptions", {}))
        return cls(**data)


@dataclass(frozen=True)
class ReportData:
    """Validated report inputs; build with :func:`prepare`."""

    fleets: pd.DataFrame
    placement: pd.DataFrame
    sensitivity: pd.DataFrame
    meta: ReportMeta
    extras: Mapping[str, pd.DataFrame] = field(default_factory=dict)  # a plan's: bom, workloads, robustness


def _check_columns(frame: pd.DataFrame, name: str, required: Sequence[str]) -> None:
    if not isinstance(frame, pd.DataFrame):
        raise ScenarioError(f"report table '{name}': expected a pandas DataFrame, got {type(frame).__name__}")
    missing = [column for column in required if column not in frame.columns]
    if missing:
        raise ScenarioError(
            f"report table '{name}': missing column(s) {', '.join(repr(c) for c in missing)}; "
            f"expected {', '.join(required)} (see hetsim.report.frames)"
        )


def _coerce(
    frame: pd.DataFrame, name: str, text: Sequence[str], numbers: Sequence[str], bools: Sequence[str]
) -> pd.DataFrame:
    out = frame.reset_index(drop=True).copy()
    for column in text:
        if column == "note":
            out[column] = out[column].fillna("").astype(str)
            continue
        if out[column].isna().any():
            raise ScenarioError(f"report table '{name}': column '{column}' has empty values")
        out[column] = out[column].astype(str)
    for column in numbers:
        try:
            out[column] = pd.to_numeric(out[column], errors="raise").astype(float)
        except (TypeError, ValueError) as error:
            raise ScenarioError(f"report table '{name}': column '{column}' must be numeric ({error})") from None
    for column in bools:
        values = out[column]
        if values.isna().any() or not values.map(lambda v: isinstance(v, bool) or v in (0, 1)).all():
            raise ScenarioError(f"report table '{name}': column '{column}' must be true/false without gaps")
        out[column] = values.astype(bool)
    return out


def _check_fleet_names(frame: pd.DataFrame, name: str, known: set[str]) -> None:
    unknown = sorted(set(frame["fleet"]) - known)
    if unknown:
        raise ScenarioError(f"report table '{name}': fleet(s) {', '.join(unknown)} are not in the 'fleets' table")


def validate_fleets(fleets: pd.DataFrame) -> pd.DataFrame:
    """Check and normalise the ``fleets`` table (a copy); raises ScenarioError naming the problem."""
    _check_columns(fleets, "fleets", FLEET_COLUMNS)
    out = _coerce(fleets, "fleets", FLEET_TEXT, FLEET_NUMBERS, FLEET_BOOLS)
    duplicated = sorted(set(out.loc[out["fleet"].duplicated(), "fleet"]))
    if duplicated:
        raise ScenarioError(f"report table 'fleets': fleet name(s) {', '.join(duplicated)} appear more than once")
    bad = sorted(set(out["status"]) - set(STATUSES))
    if bad:
        raise ScenarioError(
            f"report table 'fleets': column 'status' expects {', '.join(STATUSES)}, got {', '.join(bad)}"
        )
    if out.empty:
        raise ScenarioError("report table 'fleets': no rows; a report needs at least one candidate fleet")
    return out


def prepare(
    fleets: pd.DataFrame,
    placement: pd.DataFrame,
    sensitivity: pd.DataFrame,
    meta: Mapping[str, Any] | ReportMeta | None = None,
    extras: Mapping[str, pd.DataFrame] | None = None,
) -> ReportData:
    """Validate all report inputs once, at the boundary, and return normalised copies;
    ``extras``: a plan's procurement frames (see :mod:`hetsim.report.procurement`)."""
    clean_fleets = validate_fleets(fleets)
    known = set(clean_fleets["fleet"])
    _check_columns(placement, "placement", PLACEMENT_COLUMNS)
    clean_placement = _coerce(placement, "placement", PLACEMENT_TEXT, PLACEMENT_NUMBERS, ())
    _check_fleet_names(clean_placement, "placement", known)
    _check_columns(sensitivity, "sensitivity", SENSITIVITY_COLUMNS)
    clean_sensitivity = _coerce(sensitivity, "sensitivity", SENSITIVITY_TEXT, SENSITIVITY_NUMBERS, SENSITIVITY_BOOLS)
    _check_fleet_names(clean_sensitivity, "sensitivity", known)
    report_meta = ReportMeta.from_mapping(meta)
    if report_meta.baseline_fleet is not None and report_meta.baseline_fleet not in known:
        raise ScenarioError(f"report meta: baseline_fleet {report_meta.baseline_fleet!r} is not in the 'fleets' table")
    return ReportData(clean_fleets, clean_placement, clean_sensitivity, report_meta, _check_extras(extras or {}))


def _check_extras(extras: Mapping[str, pd.DataFrame]) -> dict[str, pd.DataFrame]:
    from hetsim.report.procurement import BOM_REQUIRED, ROBUSTNESS_REQUIRED, WORKLOAD_REQUIRED

    required = {"bom": BOM_REQUIRED, "workloads": WORKLOAD_REQUIRED, "robustness": ROBUSTNESS_REQUIRED}
    unknown = sorted(set(extras) - set(required))
    if unknown:
        raise ScenarioError(f"report tables: unknown table(s) {', '.join(unknown)}; expected any of {', '.join(required)}")
    for name, frame in extras.items():
        _check_columns(frame, name, required[name])
    return {name: frame.reset_index(drop=True).copy() for name, frame in extras.items()}
