"""``hetsim simulate``: replay a trace against a plan and score latency, SLA and cost."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from hetsim.api.engine_sim import scaled_catalog, simulate_with_engine
from hetsim.api.traces import load_trace
from hetsim.cost.tco import CostBasis, device_hourly_cost, node_hourly_cost, preset
from hetsim.errors import HetsimError, ScenarioError, WorkloadError
from hetsim.exit_codes import EXIT_FAILED_CALLS, EXIT_SLA_MISSED
from hetsim.io.calibration import load_calibration
from hetsim.io.catalog import load_catalog
from hetsim.io.models import load_models
from hetsim.io.outputs import Provenance, inputs_digest, write_folder
from hetsim.io.plans import load_plan, load_scenario
from hetsim.io.results import write_results
from hetsim.metrics.summary import Expected, PlanCost, PoolCost, Sla, summarize
from hetsim.perf.model_scale import scale_named
from hetsim.perf.roofline import serving_label
from hetsim.perf.speculative import mixed_yield
from hetsim.sim.build import build_simulation
from hetsim.sim.engine import SimConfig
from hetsim.specs.catalog import HardwareCatalog
from hetsim.specs.plan import PlanSpec, PoolSpec
from hetsim.specs.scenario import ScenarioSpec, TraceSource
from hetsim.workload.frame import steps_to_frame


@dataclass(frozen=True)
class SimulateRequest:
    scenario: Path | None = None
    plan: Path | None = None
    trace: Path | None = None
    trace_format: str | None = None
    out: Path | None = None
    max_skip: int = 1_000_000
    model: str | None = None
    seed: int | None = None
    """Overrides the scenario's ``trace.seed`` (a synthetic trace changes; a trace file does not)."""
    engine_calibrations: tuple[Path, ...] = ()
    """Engine calibrations (``hetsim bench --engine``) whose overheads the simulated steps add."""
    scale: str | None = None
    """Simulate the plan's LLMs at this named size (as ``hetsim run`` executed them)."""
    stack: str | None = None
    """Price devices with this serving stack's calibration where one is shipped."""


def pool_costs(plan: PlanSpec, hardware: HardwareCatalog, tco: str, basis: str | None) -> list[PoolCost]:
    """$/h and power of each pool's devices: a pool on a named node SKU carries its devices' share
    of that node's $/h (the node's cost split over its accelerators, as the planner splits it;
    host CPUs of an accelerator node add nothing); a pool without a node is priced per device. A
    device without a price costs NaN and says so."""
    assumptions, cost_basis = preset(tco), CostBasis(basis) if basis else None
    costs, spare = [], _spare_devices(plan, hardware)
    for pool in plan.pools:
        device = hardware.accelerator(pool.device)
        try:
            usd, provenance = _per_device_usd_per_h(pool, device, hardware, assumptions, cost_basis)
        except HetsimError as exc:
            usd, provenance = math.nan, f"unknown: {exc}"
        tdp = device.tdp_w or math.nan
        idle = device.power.idle.si if device.power.idle else tdp
        if pool.autoscale is None:
            costs.append(PoolCost(pool.name, pool.replicas * pool.devices_per_replica, usd, idle, tdp, provenance))
            continue
        burst, burst_provenance = _burst_per_device_usd_per_h(pool, device, hardware, assumptions)
        free = spare.get(pool.name, 0)
        costs.append(PoolCost(pool.name, pool.autoscale.min_replicas * pool.devices_per_replica, usd, idle, tdp,
                              f"{provenance}; autoscaled: its {pool.autoscale.min_replicas} minimum replicas so; above "
                              f"that, {free} devices free on its nodes first, then per device-hour up, {burst_provenance}",
                              pool.autoscale.min_replicas, pool.devices_per_replica, burst, free))  # fmt: skip
    return costs


def _burst_per_device_usd_per_h(pool, device, hardware: HardwareCatalog, assumptions) -> tuple[float, str]:
    """$/h of one device of an autoscaled pool's burst: rented (its node's rental share, or the
    device's own rental); NaN, saying why, where no rental price is profiled."""
    try:
        share, provenance = _per_device_usd_per_h(pool, device, hardware, assumptions, CostBasis.RENTED)
    except HetsimError as exc:
        return math.nan, f"rented: unknown ({exc})"
    return share, provenance


def _per_device_usd_per_h(pool, device, hardware: HardwareCatalog, assumptions, basis) -> tuple[float, str]:
    node = _node_of(pool, hardware)
    if node is None:
        hourly = device_hourly_cost(device, assumptions, basis)
        return hourly.total_usd_per_h, f"{hourly.basis.value}: {hourly.provenance} (per device: the pool names no node)"
    hourly = node_hourly_cost(node, hardware.accelerators, assumptions, basis)
    main = node.accelerators or node.host_cpus
    share = hourly.total_usd_per_h / main.count if device.name == main.device else 0.0
    return share, f"{hourly.basis.value}: node {node.name} ${hourly.total_usd_per_h:,.2f}/h over its {main.count} x {main.device}"


def _node_of(pool, hardware: HardwareCatalog):
    if not pool.node:
        return None
    try:
        return hardware.node(pool.node)
    except HetsimError:
        return None


def tco_for(scenario: ScenarioSpec | None, plan: PlanSpec) -> str:
    """The TCO preset a run is costed with: the scenario's, else the one the plan was planned
    with (its provenance), else the paper's; so ``simulate`` prices a plan as ``plan`` did."""
    if scenario is not None and scenario.tco is not None:
        return scenario.tco
    return str(plan.provenance.get("tco", "paper"))


def plan_cost(plan: PlanSpec, hardware: HardwareCatalog, tco: str, basis: str | None) -> PlanCost:
    """The plan's one cost figure: the whole nodes its pools occupy (per node SKU, the most any
    of its device kinds needs), each at its node $/h, as the planner prices a fleet; pools that
    name no node add their devices' own $/h. An autoscaled pool counts its minimum here (the
    simulation adds what it ran above that). The planner's figure (``provenance``) may add owned
    nodes the plan leaves idle."""
    assumptions, cost_basis = preset(tco), CostBasis(basis) if basis else None
    used, loose = _devices_on_nodes(plan, hardware), 0.0
    for pool in plan.pools:
        if _node_of(pool, hardware) is None:
            device = hardware.accelerator(pool.device)
            loose += _base_devices(pool) * device_hourly_cost(device, assumptions, cost_basis).total_usd_per_h
    nodes = _whole_nodes(used, hardware)
    total = loose + sum(count * node_hourly_cost(hardware.node(name), hardware.accelerators, assumptions,
                                                 cost_basis).total_usd_per_h for name, count in nodes.items())  # fmt: skip
    planner = plan.provenance.get("fleet_usd_per_h")
    return PlanCost(total, nodes, float(planner) if isinstance(planner, int | float) else None, tco, assumptions.pue)


def _base_devices(pool: PoolSpec) -> int:
    """Devices a pool always holds: its replicas, or an autoscaled pool's minimum."""
    return (pool.autoscale.min_replicas if pool.autoscale is not None else pool.replicas) * pool.devices_per_replica


def _devices_on_nodes(plan: PlanSpec, hardware: HardwareCatalog) -> dict[str, dict[str, int]]:
    """Per node SKU, the devices of each kind the plan's pools hold there (autoscaled: their minimum)."""
    used: dict[str, dict[str, int]] = {}
    for pool in plan.pools:
        node = _node_of(pool, hardware)
        if node is not None:
            kinds = used.setdefault(node.name, {})
            kinds[pool.device] = kinds.get(pool.device, 0) + _base_devices(pool)
    return used


def _per_node(node) -> dict[str, int]:
    per_node = {node.host_cpus.device: node.host_cpus.count}
    if node.accelerators is not None:
        per_node[node.accelerators.device] = per_node.get(node.accelerators.device, 0) + node.accelerators.count
    return per_node


def _whole_nodes(used: dict[str, dict[str, int]], hardware: HardwareCatalog) -> dict[str, int]:
    nodes = {}
    for name, kinds in used.items():
        per_node = _per_node(hardware.node(name))
        nodes[name] = max(math.ceil(count / per_node[device]) for device, count in kinds.items() if per_node.get(device))
    return nodes


def _spare_devices(plan: PlanSpec, hardware: HardwareCatalog) -> dict[str, int]:
    """Per autoscaled pool, the devices of its kind left free on the whole nodes the plan already
    pays for (its replicas above the minimum use them first, at no extra cost); the first such
    pool of a node SKU and device gets them all."""
    used = _devices_on_nodes(plan, hardware)
    nodes = _whole_nodes(used, hardware)
    spare: dict[str, int] = {}
    taken: set[tuple[str, str]] = set()
    for pool in plan.pools:
        node = _node_of(pool, hardware)
        if pool.autoscale is None or node is None or (node.name, pool.device) in taken:
            continue
        taken.add((node.name, pool.device))
        free = nodes[node.name] * _per_node(node).get(pool.device, 0) - used[node.name][pool.device]
        spare[pool.name] = max(free, 0)
    return spare


def trace_frame(source: TraceSource, base: Path) -> tuple[pd.DataFrame, int | None]:
    """The steps of ``source`` (a file, or a workload synthesized), paths relative to ``base``."""
    if source.file is not None:
        frame, meta = load_trace((base / source.file).resolve(), source.format)
        return frame, meta.block_size_tokens
    assert source.workload is not None and source.duration_s is not None
    workload = source.workload
    if (base / workload).is_file():
        workload = str((base / workload).resolve())
    from hetsim.api.workloads import synthesize_trace  # loaded on use: a replayed trace needs none of it

    synthetic = synthesize_trace(workload, source.duration_s, source.seed, source.rate_per_s, source.arrival)
    return steps_to_frame(synthetic.steps), synthetic.meta.block_size_tokens


def assign_model(trace: pd.DataFrame, model: str | None) -> pd.DataFrame:
    """Name ``model`` on LLM steps that have none (public traces record no model)."""
    unnamed = (trace["node_type"].astype(str) == "llm") & trace["model"].isna()
    if not unnamed.any():
        return trace
    if model is None:
        raise ScenarioError(
            f"trace: {int(unnamed.sum())} LLM steps name no model; set trace.model in the scenario or pass --model"
        )
    trace = trace.copy()
    trace.loc[unnamed, "model"] = model
    return trace


def with_seed(scenario: ScenarioSpec, seed: int) -> ScenarioSpec:
    """``scenario`` with its trace seed replaced (only a synthesized trace depends on it)."""
    return scenario.model_copy(update={"trace": scenario.trace.model_copy(update={"seed": seed})})


def _resolve(request: SimulateRequest) -> tuple[ScenarioSpec | None, PlanSpec, pd.DataFrame, int | None]:
    scenario = load_scenario(request.scenario) if request.scenario else None
    if scenario is not None and request.seed is not None:
        scenario = with_seed(scenario, request.seed)
    base = request.scenario.parent if request.scenario else Path.cwd()
    plan_path = request.plan or (base / scenario.plan if scenario else None)
    if plan_path is None:
        raise ScenarioError("simulate: expected --scenario or --plan, got neither")
    plan = load_plan(plan_path)
    model = request.model or (scenario.trace.model if scenario else None)
    if request.trace is not None:
        frame, meta = load_trace(request.trace, request.trace_format)
        return scenario, plan, assign_model(frame, model), meta.block_size_tokens
    if scenario is None:
        raise ScenarioError("simulate: expected --trace (or a --scenario that names one), got neither")
    frame, block = trace_frame(scenario.trace, base)
    return scenario, plan, assign_model(frame, model), block


_UNNAMED = ("plan ", "plan:", "trace:", "routing policy:")
"""How the messages about the plan and trace together begin (they name no file)."""


def simulate(request: SimulateRequest) -> dict[str, Any]:
    """Run the simulation; returns the summary (and writes records when ``out`` is set). An error
    about the plan and the trace together (a model no pool serves, a node type served twice)
    names the files they came from."""
    try:
        return _simulate(request)
    except (ScenarioError, WorkloadError) as exc:
        text = str(exc)
        if not text.startswith(_UNNAMED):
            raise
        files = " with ".join(str(p) for p in (request.scenario, request.plan, request.trace) if p is not None)
        raise type(exc)(f"{files}: {text}") from None


def simulate_exit_code(summary: dict[str, Any]) -> int:
    """0, or what the simulated run says is wrong (the README's exit statuses): an SLA missed
    (4; dropped and unfinished calls count as misses), else calls or steps dropped (3). Calls
    still running at a scenario's horizon are not failures: the horizon cut them."""
    sla = summary.get("sla")
    if sla is not None and not sla["all_met"]:
        return EXIT_SLA_MISSED
    if summary["llm_calls"]["dropped"] or summary["steps"]["dropped"]:
        return EXIT_FAILED_CALLS
    return 0


def _simulate(request: SimulateRequest) -> dict[str, Any]:
    started = time.perf_counter()
    scenario, plan, trace, block = _resolve(request)
    hardware, models = load_catalog(plan.profile_set), load_models()
    config = SimConfig(max_skip=request.max_skip)
    if request.scale is not None:
        models = scaled_catalog(models, plan, scale_named(request.scale))
    engine_text = None
    if request.engine_calibrations or request.scale is not None:
        frames, engine_text = simulate_with_engine(plan, trace, block, models, request.engine_calibrations, config)
    else:
        calibrations = {
            p.device: c for p in plan.pools if (c := load_calibration(hardware.accelerator(p.device).name, stack=request.stack))
        }
        sim = build_simulation(plan, trace, hardware, models, calibrations, block_size_tokens=block, config=config)
        sim.run()
        frames = sim.frames()
    tco = tco_for(scenario, plan)
    sla = Sla.of(scenario.sla) if scenario and scenario.sla else None
    basis = scenario.cost_basis if scenario else None
    summary = summarize(frames, pool_costs(plan, hardware, tco, basis), sla, Expected.of(trace),
                        plan_cost(plan, hardware, tco, basis))  # fmt: skip
    if engine_text is not None:
        summary["provenance"]["latency"] += f"; {engine_text}"
    else:
        stacks = {p.device: _stack_of(hardware.accelerator(p.device).name, request.stack) for p in plan.pools}
        summary["provenance"]["latency"] += "; performance model: " + ", ".join(f"{d} {s}" for d, s in sorted(stacks.items()))
    summary["serving"] = {p.name: p.serving_text for p in plan.pools if p.llm is not None}
    summary["speculation"] = _speculation(plan, trace, frames["llm_calls"])
    summary["run"] = {
        "scenario": scenario.name if scenario else None,
        "plan": plan.name,
        "seed": scenario.trace.seed if scenario else None,
        "trace_steps": len(trace),
        "wall_s": time.perf_counter() - started,
        "events": int(frames["replicas"]["events"].sum()),
        "model_scale": request.scale or "full",
    }
    inputs = _inputs(request, scenario)
    summary["run"]["inputs_sha256"] = inputs_digest(inputs)["sha256"]
    if request.out is not None:
        written = write_folder(request.out, "--out", lambda staged: write_results(staged, frames, summary), ScenarioError,
                               Provenance("simulate", inputs))  # fmt: skip
        summary["run"]["written"] = [str(p) for p in written]
    return summary


def _speculation(plan: PlanSpec, trace: pd.DataFrame, calls: pd.DataFrame) -> dict[str, Any]:
    """Each speculating pool's setting and, where calls named their own acceptance rate (the
    trace's ``acceptance_rate``), how many did, their rates, and the tokens an iteration yields
    per sequence over the pool's calls (``mixed_yield``: the performance model's expectation)."""
    result: dict[str, Any] = {}
    speculating = [(pool.name, pool.llm.speculation) for pool in plan.pools if pool.llm and pool.llm.speculation]
    named_any = "acceptance_rate" in trace.columns and bool(trace["acceptance_rate"].notna().any())
    rates = _call_rates(trace, calls) if speculating and named_any else None  # the join only where it can answer
    for name, spec in speculating:
        result[name] = spec.model_dump()
        if rates is None:
            continue
        served = rates[(rates["decode_pool"] == name) | ((rates["decode_pool"] == "") & (rates["pool"] == name))]
        named = served[served["acceptance_rate"].notna()]
        tokens = served["output_tokens"].sum()
        if len(named) and tokens > 0:
            shares = named.groupby("acceptance_rate")["output_tokens"].sum() / tokens
            result[name]["calls_with_own_rate"] = {
                "count": len(named), "of": len(served), "min": float(named["acceptance_rate"].min()),
                "max": float(named["acceptance_rate"].max()),
                "tokens_per_iteration": mixed_yield(spec.proposed, spec.rate, tuple(shares.items())),
                "tokens_per_iteration_at_pool_rate": mixed_yield(spec.proposed, spec.rate),
                "definition": "tokens_per_iteration: expected tokens a sequence gets per iteration, the harmonic mean of "
                "the calls' yields weighted by their output tokens (performance model)",
            }  # fmt: skip
    return result


def _call_rates(trace: pd.DataFrame, calls: pd.DataFrame) -> pd.DataFrame:
    """The LLM calls' pools, output tokens and the acceptance rate their trace step named (NaN: none)."""
    columns = ["pool", "decode_pool", "output_tokens", "acceptance_rate"]
    named = trace[["session_id", "step_id", "acceptance_rate"]].astype({"session_id": str, "step_id": "int64"})
    keyed = calls[["session_id", "step_id", "pool", "decode_pool", "output_tokens"]].astype({"session_id": str, "step_id": "int64"})
    merged = keyed.merge(named, on=["session_id", "step_id"], how="left")
    merged["decode_pool"] = merged["decode_pool"].fillna("")
    return merged[columns]


def _inputs(request: SimulateRequest, scenario: ScenarioSpec | None) -> dict[str, Any]:
    """What the run read (files, hashed by content) and the options that change its result."""
    base = request.scenario.parent if request.scenario else Path.cwd()
    files = {"scenario": request.scenario, "plan": request.plan or (base / scenario.plan if scenario else None),
             "trace": request.trace or (base / scenario.trace.file if scenario and scenario.trace.file else None)}  # fmt: skip
    files |= {f"engine_calibration_{i}": path for i, path in enumerate(request.engine_calibrations)}
    options = {"trace_format": request.trace_format, "model": request.model, "seed": request.seed, "scale": request.scale,
               "stack": request.stack, "max_skip": request.max_skip}  # fmt: skip
    return {k: v for k, v in files.items() if v is not None} | options


def _stack_of(device: str, stack: str | None) -> str:
    """What a device's step times describe: its calibration's stack, or 'datasheet default' (with
    the default engine overhead)."""
    return serving_label(load_calibration(device, stack=stack))
