"""``hetsim plan``: place agent workloads on a fleet at the lowest TCO, verify in simulation."""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import pandas as pd

from hetsim.api.workloads import load as load_workload
from hetsim.api.workloads import synthesize_trace
from hetsim.cost.tco import CostBasis, node_hourly_cost, preset
from hetsim.errors import InfeasiblePlanError, ScenarioError
from hetsim.exit_codes import EXIT_NOT_PROVEN, EXIT_SLA_MISSED
from hetsim.io.calibration import load_calibration
from hetsim.io.catalog import load_catalog
from hetsim.io.fleets import load_fleet
from hetsim.io.models import load_models
from hetsim.metrics.gaps import gap_percentile
from hetsim.metrics.summary import Sla, session_frame, sla_attainment
from hetsim.perf.nonllm import IndexKind, VectorIndex
from hetsim.perf.roofline import serving_perf
from hetsim.perf.uncertainty import band_vendor, step_time_factor
from hetsim.plan import candidates as cand
from hetsim.plan.build import WorkloadDemand, build_problem, node_types
from hetsim.plan.explain import explain, explain_missing_options
from hetsim.plan.export import to_plan
from hetsim.plan.problem import PlacementProblem, Solution
from hetsim.plan.solver import solve
from hetsim.sim.build import build_simulation
from hetsim.specs.calibration import CalibrationSpec
from hetsim.specs.fleet import DemandSla, DemandSpec, FleetSpec
from hetsim.specs.hardware import DType
from hetsim.specs.plan import PlanSpec
from hetsim.specs.workload import SlaSpec as WorkloadSla
from hetsim.workload.demand import node_demand, with_adapter_popularity
from hetsim.workload.frame import steps_to_frame

Progress = Callable[[str], None]


@dataclass
class PlanResult:
    """Everything ``hetsim plan`` produced: the plan, the solve, and its verification."""

    fleet: FleetSpec
    plan: PlanSpec
    problem: PlacementProblem
    solution: Solution
    rounds: list[dict[str, Any]] = field(default_factory=list)
    verification: dict[str, Any] = field(default_factory=dict)
    cost: dict[str, float] = field(default_factory=dict)
    workloads: list[WorkloadDemand] = field(default_factory=list)
    context: dict[str, Any] = field(default_factory=dict)  # catalogs and device models, for re-solves


def demand_of(fleet: FleetSpec, workload: str | None, rate: float | None) -> tuple[DemandSpec, ...]:
    """The fleet's demand, or the one given by flags."""
    if workload is not None:
        if rate is None:
            raise ScenarioError("plan: --workload needs --rate (sessions per second)")
        return (DemandSpec(workload=workload, rate_per_s=rate),)
    if not fleet.demand:
        raise ScenarioError(
            f"fleet {fleet.name!r}: field 'demand': expected at least one workload, got none (or pass --workload and --rate)"
        )
    return fleet.demand


def _workload_demand(entry: DemandSpec, fleet: FleetSpec, seed: int) -> WorkloadDemand:
    spec = load_workload(entry.workload)
    sample_s = fleet.options.sample_sessions / entry.rate_per_s
    trace = steps_to_frame(synthesize_trace(entry.workload, sample_s, seed, entry.rate_per_s).steps)
    sla = entry.sla
    own = spec.sla
    indexes = {
        name: VectorIndex(node.index_vectors, node.dimension, DType(node.dtype), IndexKind.FLAT)
        for name, node in spec.nodes.items()
        if getattr(node, "type", None) == "retrieval"
    }
    return WorkloadDemand(
        name=spec.name,
        rate_per_s=entry.rate_per_s,
        dtype=DType(entry.dtype),
        nodes=tuple(with_adapter_popularity(node_demand(trace), spec.nodes)),
        ttft_s=(sla.ttft_s if sla and sla.ttft_s else None) or (own.ttft_s if own else None),
        tbt_s=(sla.tbt_s if sla and sla.tbt_s else None) or (own.tbt_s if own else None),
        e2e_s=sla.e2e_s if sla else None,
        indexes=indexes,
        ttft_percentile=_percentile_of("ttft", sla, own),
        tbt_percentile=_percentile_of("tbt", sla, own),
        e2e_percentile=_percentile_of("e2e", sla, own),
    )


def _percentile_of(objective: str, demand: DemandSla | None, own: WorkloadSla | None) -> float:
    """The percentile an objective is met at: the fleet demand's when it sets the objective
    (its ``percentile``), else the workload's own (``<objective>_percentile``), else 99."""
    if demand is not None and getattr(demand, f"{objective}_s"):
        return demand.percentile
    if own is not None and getattr(own, f"{objective}_s"):
        return float(getattr(own, f"{objective}_percentile"))
    return 99.0


def _check_stages(
    problem_error: InfeasiblePlanError, workloads: list[WorkloadDemand], fleet, hardware, models, perfs
) -> str:
    """Turn 'stage has no option' into the limit nobody meets and how far off the best device is."""
    message = str(problem_error)
    if "has no option" not in message:
        return message
    stage = message.split("'")[1]
    key = stage.rsplit(":", 1)[0] if stage.count(":") >= 3 else stage
    for workload in workloads:
        for demand in workload.nodes:
            if demand.node_type != "llm" or not key.startswith(f"llm:{demand.model}:"):
                continue
            model = models.model(demand.model)
            free = cand.LlmTargets(None, None, fleet.options.headroom, fleet.options.tp_options, (1,), workload.dtype,
                                   workload.ttft_percentile, workload.tbt_percentile)  # fmt: skip
            devices = [
                perfs[d] for d in sorted({d for n in node_types(fleet, hardware, preset(fleet.tco)) for d in n.devices})
            ]
            options = cand.aggregated_options(model, devices, demand, free)
            if not options:
                return f"{stage}: no device in the fleet can hold {model.name} ({workload.dtype}) at any tensor-parallel size"
            fastest = {"ttft": min(o.detail["ttft_s"] for o in options), "tbt": min(o.detail["tbt_s"] for o in options)}
            return explain_missing_options(stage, fastest, {"ttft": workload.ttft_s, "tbt": workload.tbt_s})
    return message


def _hash_inputs(fleet: FleetSpec, demand: tuple[DemandSpec, ...]) -> str:
    text = json.dumps(
        {"fleet": fleet.model_dump(mode="json"), "demand": [d.model_dump(mode="json") for d in demand]}, sort_keys=True
    )
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def fleet_cost(problem: PlacementProblem, solution: Solution, fleet: FleetSpec, hardware) -> dict[str, float]:
    """$/h of the nodes the plan keeps (owned + added), by component."""
    basis = CostBasis(fleet.cost_basis) if fleet.cost_basis else None
    totals = {
        "capex_usd_per_h": 0.0,
        "power_usd_per_h": 0.0,
        "hosting_usd_per_h": 0.0,
        "networking_usd_per_h": 0.0,
        "rental_usd_per_h": 0.0,
    }
    nodes: dict[str, int] = {}
    for node in problem.node_types:
        count = node.owned + solution.extra_nodes.get(node.name, 0)
        if count == 0:
            continue
        nodes[node.name] = count
        hourly = node_hourly_cost(hardware.node(node.name), hardware.accelerators, preset(fleet.tco), basis)
        totals["capex_usd_per_h"] += hourly.capex_usd_per_h * count
        totals["power_usd_per_h"] += hourly.power_usd_per_h * count
        totals["hosting_usd_per_h"] += hourly.hosting_usd_per_h * count
        totals["networking_usd_per_h"] += hourly.networking_usd_per_h * count
        totals["rental_usd_per_h"] += hourly.rental_usd_per_h * count
    totals["total_usd_per_h"] = sum(totals.values())
    return {**totals, "nodes": nodes}  # type: ignore[dict-item]


def _verify(
    plan: PlanSpec,
    fleet: FleetSpec,
    demand: tuple[DemandSpec, ...],
    workloads: list[WorkloadDemand],
    hardware,
    models,
    calibrations,
) -> dict[str, Any]:
    """Simulate synthetic traffic on the plan; SLA attainment per workload."""
    frames = []
    for index, entry in enumerate(demand):
        steps = synthesize_trace(
            entry.workload, fleet.options.verify_duration_s, fleet.options.seed + 1 + index, entry.rate_per_s
        ).steps
        frame = steps_to_frame(steps)
        frame["session_id"] = f"{index}:" + frame["session_id"].astype(str)
        frames.append(frame)
    trace = pd.concat(frames, ignore_index=True)
    sim = build_simulation(plan, trace, hardware, models, calibrations)
    sim.run()
    result = sim.frames()
    calls, steps = result["llm_calls"], result["steps"]
    per_workload = {}
    for index, workload in enumerate(workloads):
        prefix = f"{index}:"
        mine_calls = calls[calls.session_id.astype(str).str.startswith(prefix)]
        mine_steps = steps[steps.session_id.astype(str).str.startswith(prefix)]
        gaps = _gaps_of(result["token_gaps"], mine_calls)
        attainment = sla_attainment(mine_calls, session_frame(mine_steps), sla_of(workload), gaps)
        per_workload[workload.name] = {
            "sla": attainment,
            "ttft_p99_s": float(mine_calls.ttft_s.quantile(0.99)) if len(mine_calls) else math.nan,
            "tbt_p99_s": gap_percentile(gaps, 99.0),
            "session_e2e_p99_s": float(session_frame(mine_steps).e2e_s.quantile(0.99)) if len(mine_steps) else math.nan,
            "dropped_calls": int((mine_calls.status != "completed").sum()),
        }
    utilization = result["replicas"].groupby("pool")["busy_s"].mean() / max(
        float(steps.end_s.max() - steps.ready_s.min()), 1e-9
    )
    return {
        "met": all(w["sla"]["all_met"] and w["dropped_calls"] == 0 for w in per_workload.values()),
        "workloads": per_workload,
        "utilization": utilization.to_dict(),
        "simulated_s": fleet.options.verify_duration_s,
        "frames": result,
    }


def sla_of(workload: WorkloadDemand) -> Sla:
    """The workload's objectives, each at the percentile it is met at."""
    return Sla(workload.ttft_s, workload.tbt_s, workload.e2e_s, workload.ttft_percentile, workload.tbt_percentile,
               workload.e2e_percentile)  # fmt: skip


def _gaps_of(gaps: pd.DataFrame, calls: pd.DataFrame) -> pd.DataFrame:
    """Token gaps of the pools that decoded ``calls`` (a replica's gaps are shared by the
    workloads it serves: token gaps are recorded per iteration, not per call)."""
    pools = set(calls.decode_pool.where(calls.decode_pool != "", calls.pool).astype(str))
    return gaps[gaps["pool"].astype(str).isin(pools)]


def plan_fleet(
    fleet_path: Path,
    workload: str | None = None,
    rate: float | None = None,
    verify: bool = True,
    progress: Progress | None = None,
    size_for: str = "nominal",
    stack: str | None = None,
) -> PlanResult:
    """Solve the fleet file's placement; verify it by simulation, re-solving with more headroom if
    the SLA is missed. ``size_for`` sizes with step times at a percentile of the model's measured
    error ('p90': slower than predicted nine times in ten; see ``hetsim.perf.uncertainty``);
    ``stack`` prices devices with that serving stack's calibration where one is shipped."""
    calibration_of = (lambda device: load_calibration(device, stack=stack)) if stack else load_calibration
    return plan_fleet_spec(
        load_fleet(fleet_path), workload, rate, verify, progress, calibration_of=calibration_of, size_for=size_for
    )


def plan_fleet_spec(
    fleet: FleetSpec,
    workload: str | None = None,
    rate: float | None = None,
    verify: bool = True,
    progress: Progress | None = None,
    calibration_of: Callable[[str], CalibrationSpec | None] = load_calibration,
    size_for: str = "nominal",
    workloads: list[WorkloadDemand] | None = None,
) -> PlanResult:
    """``plan_fleet`` for a fleet already loaded (``hetsim compare`` builds them);
    ``calibration_of`` gives each device's calibration (default: the shipped files; the paper
    reproduction gives the paper's roofline); ``workloads``: the demand already measured for
    this fleet's demand (baselines reuse the plan's)."""
    say = progress or (lambda _: None)
    demand = demand_of(fleet, workload, rate)
    hardware, models = load_catalog(fleet.profile_set), load_models()
    if workloads is None:
        say("measuring demand")
        workloads = [_workload_demand(entry, fleet, fleet.options.seed) for entry in demand]
    devices = sorted({d for n in node_types(fleet, hardware, preset(fleet.tco)) for d in n.devices})
    calibrations = {d: c for d in devices if (c := calibration_of(d))}
    perfs = {
        d: serving_perf(
            hardware.accelerator(d), calibrations.get(d),
            step_time_factor(calibrations.get(d), size_for, band_vendor(hardware.accelerator(d))),
        )
        for d in devices
    }
    headroom = fleet.options.headroom
    rounds: list[dict[str, Any]] = []
    for round_index in range(fleet.options.verify_rounds + 1):
        say(f"solving (headroom {headroom:.2f})")
        problem, solution = _solve(fleet, workloads, hardware, models, perfs, headroom)
        plan = to_plan(problem, solution, f"{fleet.name}-plan", fleet.kv_link, {})
        verification = _verify(plan, fleet, demand, workloads, hardware, models, calibrations) if verify else {}
        rounds.append({"round": round_index, "headroom": headroom, "objective_usd_per_h": solution.objective,
                       "sla_met_in_simulation": verification.get("met")})  # fmt: skip
        if not verify or verification["met"]:
            break
        say(f"SLA missed in simulation; re-solving with more headroom (round {round_index + 1})")
        headroom *= 1.3
    cost = fleet_cost(problem, solution, fleet, hardware)
    provenance = {
        "solver": solution.solver, "status": solution.status, "gap": solution.gap, "solve_wall_s": solution.wall_s,
        "objective_added_usd_per_h": solution.objective, "fleet_usd_per_h": cost["total_usd_per_h"],
        "headroom": headroom, "inputs_sha256": _hash_inputs(fleet, demand), "tco": fleet.tco,
        "predicted_path_latency_s": solution.path_latency_s,
        "verified_in_simulation": verification.get("met") if verify else None,
        "performance_model": {d: perf.model_label for d, perf in sorted(perfs.items())},
        "sized_for": size_for, "step_time_factors": {d: perf.time_scale for d, perf in sorted(perfs.items())},
    }  # fmt: skip
    plan = to_plan(problem, solution, f"{fleet.name}-plan", fleet.kv_link, provenance)
    context = {"hardware": hardware, "models": models, "perfs": perfs, "headroom": headroom,
               "calibration_of": calibration_of, "size_for": size_for}  # fmt: skip
    return PlanResult(fleet, plan, problem, solution, rounds, verification, cost, workloads, context)


COST_COLUMNS = ("capex_usd_per_h", "power_usd_per_h", "hosting_usd_per_h", "networking_usd_per_h", "rental_usd_per_h", "total_usd_per_h")
SENSITIVITY_CASES = (("prices -30%", 0.7, 1.0), ("prices +30%", 1.3, 1.0), ("demand x2", 1.0, 2.0))


def sensitivity(result: PlanResult, model_error: list[dict[str, Any]] | None = None) -> list[dict[str, Any]]:
    """Re-solve (no simulation) with node prices scaled and demand doubled; predicted $/h."""
    rows = [{"fleet": result.fleet.name, "case": "base", "total_usd_per_h": result.cost["total_usd_per_h"],
             "usd_per_million_tokens": _usd_per_million_tokens(result, result.cost["total_usd_per_h"], 1.0), "feasible": True}]  # fmt: skip
    ctx = result.context
    for case, price, demand in SENSITIVITY_CASES:
        workloads = [replace(w, rate_per_s=w.rate_per_s * demand) for w in result.workloads]
        try:
            problem, solution = _solve(
                result.fleet, workloads, ctx["hardware"], ctx["models"], ctx["perfs"], ctx["headroom"]
            )
            total = fleet_cost(problem, solution, result.fleet, ctx["hardware"])["total_usd_per_h"] * price
            rows.append({"fleet": result.fleet.name, "case": case, "total_usd_per_h": total,
                         "usd_per_million_tokens": _usd_per_million_tokens(result, total, demand), "feasible": True})  # fmt: skip
        except InfeasiblePlanError as exc:
            rows.append({"fleet": result.fleet.name, "case": case, "total_usd_per_h": math.nan,
                         "usd_per_million_tokens": math.nan, "feasible": False, "note": str(exc)})  # fmt: skip
    errors = model_error_cases(result) if model_error is None else model_error
    rows += [{k: v for k, v in row.items() if k != "nodes"} for row in errors]
    return rows


def model_error_cases(result: PlanResult) -> list[dict[str, Any]]:
    """Re-solve (no simulation) with every device's step times at the p10 and p90 of its
    measured whole-step error (calibration band, else the defaults'): how the fleet changes
    if the model is off by what it has been measured to be off by."""
    ctx = result.context
    rows = []
    for sizing in ("p10", "p90"):
        perfs = {
            d: replace(p, time_scale=step_time_factor(p.calibration, sizing, band_vendor(p.device)))
            for d, p in ctx["perfs"].items()
        }
        factors = [p.time_scale for p in perfs.values()]
        span = f"x{min(factors):.2f}" if min(factors) == max(factors) else f"x{min(factors):.2f}-{max(factors):.2f}"
        case = f"steps at {sizing} of measured/predicted ({span})"
        known = {"sizing": sizing, "time_scale": max(factors)}
        try:
            problem, solution = _solve(result.fleet, result.workloads, ctx["hardware"], ctx["models"], perfs, ctx["headroom"])
            cost = fleet_cost(problem, solution, result.fleet, ctx["hardware"])
            rows.append({"fleet": result.fleet.name, "case": case, "total_usd_per_h": cost["total_usd_per_h"],
                         "usd_per_million_tokens": _usd_per_million_tokens(result, cost["total_usd_per_h"], 1.0),
                         "feasible": True, "nodes": cost["nodes"], "new_spend_usd_per_h":
                         sum(n.usd_per_h * solution.extra_nodes.get(n.name, 0) for n in problem.node_types),
                         "bought": {k: v for k, v in solution.extra_nodes.items() if v}, **known})  # fmt: skip
        except InfeasiblePlanError as exc:
            rows.append({"fleet": result.fleet.name, "case": case, "total_usd_per_h": math.nan,
                         "usd_per_million_tokens": math.nan, "feasible": False, "note": str(exc), "nodes": {},
                         "new_spend_usd_per_h": math.nan, "bought": {}, **known})  # fmt: skip
    return rows


def tokens_per_s(workloads: list[WorkloadDemand]) -> float:
    """LLM tokens (in + out) per second the demand asks for."""
    return sum(
        w.rate_per_s * d.visits_per_session * (d.input_tokens + d.output_tokens)
        for w in workloads for d in w.nodes if d.node_type == "llm"
    )  # fmt: skip


def _usd_per_million_tokens(result: PlanResult, usd_per_h: float, demand_scale: float) -> float:
    rate = tokens_per_s(result.workloads) * demand_scale
    return usd_per_h / (rate * 3600) * 1e6 if rate else math.nan


def sla_summary(result: PlanResult) -> dict[str, Any]:
    """Per workload: its objectives with the percentile each is met at, how the planner priced
    them, and what the verification simulation measured at those percentiles."""
    verification = result.verification.get("workloads", {})
    return {
        w.name: {
            "objectives": sla_of(w).describe(),
            "planner": "TTFT and TBT options priced at their percentiles (queueing tails, token-gap mix); "
                       "e2e paths bound by mean latencies",
            "simulated": verification.get(w.name, {}).get("sla"),
        }
        for w in result.workloads
    }  # fmt: skip


def missed_objectives(result: PlanResult) -> str:
    """Which objectives the simulation missed, e.g. 'voice-agent ttft 97.2% within 0.25 s'."""
    parts = []
    for workload, item in result.verification.get("workloads", {}).items():
        for metric, value in item["sla"].items():
            if isinstance(value, dict) and not value["met"]:
                parts.append(f"{workload} {metric} {value['attained']:.1%} within {value['objective_s']} s "
                             f"(p{value['percentile']:g} asked)")  # fmt: skip
        if item["dropped_calls"]:
            parts.append(f"{workload}: {item['dropped_calls']} calls dropped")
    return ("SLA missed in simulation: " + "; ".join(parts)) if parts else ""


def _device_share_usd_per_h(problem: PlacementProblem) -> dict[tuple[str, str], float]:
    """$/h per device: a node's cost is carried by its main devices (the most numerous); host
    CPUs of an accelerator node cost nothing extra."""
    shares = {}
    for node in problem.node_types:
        primary = max(node.devices, key=lambda d: node.devices[d])
        for device, count in node.devices.items():
            shares[node.name, device] = node.usd_per_h / count if device == primary else 0.0
    return shares


def fleet_row(result: PlanResult, role: str = "plan") -> dict[str, Any]:
    """The ``fleets`` record of a plan: cost by component, unit costs, worst p99s over its
    workloads (a secondary, pooled view: each workload's own verdict is in ``workloads``)."""
    verification = result.verification.get("workloads", {})
    sessions_per_h = sum(w.rate_per_s for w in result.workloads) * 3600
    worst = lambda key: max((v[key] for v in verification.values()), default=math.nan)  # noqa: E731
    attainment = min(
        (item["attained"] for v in verification.values() for item in v["sla"].values() if isinstance(item, dict)),
        default=math.nan,
    )
    return {
        "fleet": result.fleet.name, "role": role, "status": result.solution.status,
        **{k: result.cost[k] for k in COST_COLUMNS},
        "usd_per_million_tokens": _usd_per_million_tokens(result, result.cost["total_usd_per_h"], 1.0),
        "usd_per_session": result.cost["total_usd_per_h"] / sessions_per_h if sessions_per_h else math.nan,
        "ttft_p99_s": worst("ttft_p99_s"), "tbt_p99_s": worst("tbt_p99_s"), "session_e2e_p99_s": worst("session_e2e_p99_s"),
        "sla_attainment": attainment, "sla_met": bool(result.verification.get("met", False)),
        "predicted_total_usd_per_h": result.cost["total_usd_per_h"], "note": missed_objectives(result),
        "nodes": ", ".join(f"{count} x {name}" for name, count in result.cost["nodes"].items()),
        "new_spend_usd_per_h": new_spend_usd_per_h(result),
        **{key: value for key, value in _energy(result).items() if key in ENERGY_COLUMNS},
    }  # fmt: skip


ENERGY_COLUMNS = ("provisioned_kw", "site_power_kw", "power_budget_binds", "power_budget_costs_usd_per_h", "kwh_per_day",
                  "joules_per_output_token", "joules_per_llm_call", "joules_per_session")


def _energy(result: PlanResult) -> dict[str, Any]:
    from hetsim.api.procurement import energy

    return energy(result)


def new_spend_usd_per_h(result: PlanResult) -> float:
    """$/h of the nodes the plan buys or rents (owned nodes are already paid for): what the
    planner minimises, and the basis on which alternatives are compared."""
    return sum(n.usd_per_h * result.solution.extra_nodes.get(n.name, 0) for n in result.problem.node_types)


def placement_rows(result: PlanResult) -> list[dict[str, Any]]:
    utilization = result.verification.get("utilization", {})
    share = _device_share_usd_per_h(result.problem)
    return [{
        "fleet": result.fleet.name, "workload": ", ".join(w.name for w in result.workloads), "stage": c.stage,
        "pool": pool.name, "device": pool.device, "node": pool.node or "", "replicas": pool.replicas, "tp": pool.tp,
        "pp": pool.pp, "serving": pool.serving_text, "devices": pool.replicas * pool.devices_per_replica,
        "utilization": utilization.get(pool.name, math.nan),
        "usd_per_h": pool.replicas * pool.devices_per_replica * share.get((pool.node, pool.device), math.nan),
        "weight": pool.weight if pool.weight is not None else 1.0,
    } for c, pool in zip(result.solution.choices, result.plan.pools, strict=True)]  # fmt: skip


def result_frames(
    result: PlanResult, baselines: list[dict[str, Any]] | None = None, robustness: pd.DataFrame | None = None,
    model_error: list[dict[str, Any]] | None = None,
) -> dict[str, pd.DataFrame]:
    """The flat frames a report is built from: fleets (the plan, then its ``baselines`` rows
    when given, see ``hetsim.api.baselines``), placement, sensitivity; the fleets the model's
    error band would call for (``model_error``, one row per case with its nodes); the bill of
    materials (``bom``) and each workload against its own SLA (``workloads``); with a
    ``robustness`` frame (``hetsim.api.robustness``), that frame, and the sensitivity rows
    are its cases (per-vendor prices, energy, demand, model error) instead of the uniform
    price and demand cases."""
    from hetsim.api.procurement import bill_of_materials, workload_results

    fleets = pd.DataFrame([fleet_row(result), *(baselines or [])])
    model_error = model_error if model_error is not None else model_error_cases(result)  # solved once
    if robustness is None:
        cases = pd.DataFrame(sensitivity(result, model_error))
    else:
        cases = _robustness_cases(result, robustness)
    frames = {"fleets": fleets, "placement": pd.DataFrame(placement_rows(result)), "sensitivity": cases,
              "model_error": pd.DataFrame(model_error), "bom": bill_of_materials(result),
              "workloads": workload_results(result)}  # fmt: skip
    if robustness is not None:
        frames["robustness"] = robustness
    return frames


def _robustness_cases(result: PlanResult, robustness: pd.DataFrame) -> pd.DataFrame:
    """The robustness rows in the ``sensitivity`` schema (demand cases scale the tokens)."""
    rows = []
    for row in robustness.itertuples():
        scale = row.factor if row.dimension == "demand" else 1.0
        rows.append({"fleet": result.fleet.name, "case": "base" if row.kind == "base" else row.case,
                     "total_usd_per_h": row.total_usd_per_h,
                     "usd_per_million_tokens": _usd_per_million_tokens(result, row.total_usd_per_h, scale),
                     "feasible": bool(row.feasible), "note": row.note})  # fmt: skip
    return pd.DataFrame(rows).drop_duplicates("case")


def _solve(fleet, workloads, hardware, models, perfs, headroom) -> tuple[PlacementProblem, Solution]:
    try:
        problem = build_problem(fleet, workloads, hardware, models, perfs, preset(fleet.tco), headroom)
    except InfeasiblePlanError as exc:
        raise InfeasiblePlanError(_check_stages(exc, workloads, fleet, hardware, models, perfs)) from None
    try:
        solution = solve(problem, time_limit_s=fleet.options.time_limit_s, relative_gap=fleet.options.relative_gap)
    except InfeasiblePlanError:
        raise InfeasiblePlanError(f"fleet {fleet.name!r} cannot meet the demand: {explain(problem)}") from None
    return problem, solution


def with_demand_scale(fleet: FleetSpec, factor: float) -> FleetSpec:
    """The same fleet with every workload's rate scaled (sensitivity: 2x demand)."""
    scaled = tuple(d.model_copy(update={"rate_per_s": d.rate_per_s * factor}) for d in fleet.demand)
    return fleet.model_copy(update={"demand": scaled})




def plan_exit_code(result: PlanResult) -> int:
    """0, or why the plan cannot be trusted as is: an SLA missed after verification (4), or a
    solve stopped without proof (5); a missed SLA comes first."""
    if result.verification and not result.verification.get("met", False):
        return EXIT_SLA_MISSED
    if result.solution.status != "optimal":
        return EXIT_NOT_PROVEN
    return 0


def solver_verdict(result: PlanResult) -> str:
    """'optimal (gap 0.42%, 0.03 s)', or the time-out said as one, with the incumbent and its gap."""
    solution, options = result.solution, result.fleet.options
    if solution.status == "optimal":
        return f"optimal within the requested {options.relative_gap:.2%} (gap {solution.gap:.2%}, {solution.wall_s:.2f} s)"
    return (f"TIME LIMIT: stopped after {options.time_limit_s:g} s without proof of optimality; incumbent "
            f"${solution.objective:,.2f}/h new spend, gap {solution.gap:.2%} to the best bound")  # fmt: skip


def plan_summary(result: PlanResult, frames: dict[str, pd.DataFrame], written: list[Path], size_for: str,
                 exit_code: int) -> dict[str, Any]:  # fmt: skip
    """Everything ``hetsim plan`` reports, as plain data (the CLI table and ``--json``)."""
    from hetsim.report.procurement import buyer_sentence, flip_sentences

    fleets = frames["fleets"]
    robustness = frames.get("robustness")
    return {
        "headline": buyer_sentence(frames["bom"], result.verification.get("met") if result.verification else None,
                                   result.solution.status),
        "fleet": result.fleet.name, "status": result.solution.status, "gap": result.solution.gap,
        "solve_wall_s": result.solution.wall_s, "solver_verdict": solver_verdict(result), "exit_code": exit_code,
        "cost": result.cost, "new_spend_usd_per_h": new_spend_usd_per_h(result), "rounds": result.rounds,
        "sla_met_in_simulation": result.verification.get("met"), "written": [str(p) for p in written],
        "bill_of_materials": frames["bom"].to_dict(orient="records"), "energy": _energy(result),
        "workloads": frames["workloads"].to_dict(orient="records"),
        "baselines": fleets[fleets["role"] == "baseline"].to_dict(orient="records"),
        "placement": frames["placement"].to_dict(orient="records"), "sla": sla_summary(result),
        "robustness": flip_sentences(robustness) if robustness is not None else [],
        "sized_for": size_for, "performance_model": result.plan.provenance.get("performance_model", {}),
        "step_time_factors": result.plan.provenance.get("step_time_factors", {}),
        "model_error": frames["model_error"].to_dict(orient="records"),
    }  # fmt: skip
