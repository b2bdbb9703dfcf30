"""The simulator with a serving engine's calibration: the model at the size the engines ran,
and the engine's overheads (``hetsim bench --engine``) added to the device's kernel calibration;
given calibrations taken alone and side by side, interpolated by the simulated neighbour's load.
Used by ``hetsim simulate --engine-calibration`` and ``hetsim fidelity``."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from hetsim.errors import ExecutorError
from hetsim.io.calibration import load_calibration
from hetsim.io.catalog import load_catalog
from hetsim.io.yamlfile import load_spec
from hetsim.perf.engine_fit import colocated
from hetsim.perf.model_scale import ModelScale, scaled_model
from hetsim.sim.build import build_simulation
from hetsim.sim.engine import SimConfig
from hetsim.specs.calibration import DEFAULT_ENGINE_SOURCE, CalibrationSpec, EngineCalibrationSpec, EngineOverheads
from hetsim.specs.catalog import ModelCatalog
from hetsim.specs.plan import PlanSpec


def scaled_catalog(models: ModelCatalog, plan: PlanSpec, scale: ModelScale) -> ModelCatalog:
    """The catalog with each LLM the plan serves at ``scale``, under its own name (so the plan
    resolves) and with its scale in its display name."""
    entries = dict(models.models)
    for pool in plan.pools:
        if pool.llm is not None:
            spec = models.model(pool.llm.model)
            entries[spec.name] = scaled_model(spec, scale).model_copy(update={"name": spec.name})
    return ModelCatalog(entries)


COLOCATION_ROUNDS = 4
"""Simulations at most to settle the neighbour's busy share (it moves the overheads, which move it)."""


def kernel_calibrations(plan: PlanSpec) -> dict[str, CalibrationSpec]:
    """The kernel calibrations of the plan's devices that have one."""
    hardware = load_catalog(plan.profile_set)
    calibrations: dict[str, CalibrationSpec] = {}
    for pool in plan.pools:
        device = hardware.accelerator(pool.device).name
        found = load_calibration(device)
        if found is not None:
            calibrations[device] = found
    return calibrations


def engine_calibrations(plan: PlanSpec, files: tuple[Path, ...]) -> tuple[EngineCalibrationSpec | None, EngineCalibrationSpec | None]:
    """(taken alone, taken side by side) of the engine calibrations given (either may be None)."""
    specs = [load_spec(path, EngineCalibrationSpec, ExecutorError) for path in files]
    alone = [s for s in specs if s.overheads.side_by_side == 1]
    beside = [s for s in specs if s.overheads.side_by_side > 1]
    if len(alone) > 1 or len(beside) > 1:
        raise ExecutorError("--engine-calibration: expected at most one taken alone and one side by side, got more")
    devices = {s.device for s in specs}
    if len(devices) > 1 or len({s.overheads.engine for s in specs}) > 1:
        raise ExecutorError(f"--engine-calibration: expected one device and engine, got devices {sorted(devices)}")
    known = kernel_calibrations(plan)
    for spec in specs:
        if spec.device not in known:
            raise ExecutorError(f"--engine-calibration: device {spec.device!r} is not a device of the plan with a kernel calibration")
    return (alone[0] if alone else None), (beside[0] if beside else None)


def with_engine(plan: PlanSpec, overheads: EngineOverheads | None, device: str | None) -> dict[str, CalibrationSpec]:
    calibrations = kernel_calibrations(plan)
    if overheads is not None and device is not None:
        calibrations[device] = calibrations[device].model_copy(update={"engine": overheads})
    return calibrations


def describe_overheads(overheads: EngineOverheads | None, how: str) -> str:
    if overheads is None:
        # the simulator serves a kernel calibration with the default engine (``serving_perf``)
        return f"kernel calibration with the default engine overhead, {DEFAULT_ENGINE_SOURCE} (no engine calibration given)"
    return (
        f"engine calibration of {overheads.engine} ({how}): step {overheads.step_overhead_s * 1e3:.2f} ms + "
        f"{overheads.sequence_overhead_s * 1e3:.3f} ms/sequence, request {overheads.request_overhead_s * 1e3:.2f} ms, "
        f"prefill attention {overheads.prefill_pair_s * 1e12:.0f} ps per pair and layer"
    )


def simulate_with_engine(plan: PlanSpec, trace: pd.DataFrame, block: int | None, models: ModelCatalog,
                         files: tuple[Path, ...], config: SimConfig | None = None) -> tuple[dict[str, pd.DataFrame], str]:  # fmt: skip
    """Simulate ``trace`` on ``plan`` with the engine's overheads. Given calibrations taken alone
    and side by side, the overheads are interpolated by how busy the simulated co-located
    replicas are, settled by re-simulating (the simulator's own prediction, never the run's)."""
    alone, beside = engine_calibrations(plan, files)
    hardware = load_catalog(plan.profile_set)

    def simulate(overheads: EngineOverheads | None, device: str | None) -> dict[str, pd.DataFrame]:
        simulation = build_simulation(plan, trace, hardware, models, with_engine(plan, overheads, device), block_size_tokens=block,
                                      config=config)  # fmt: skip
        simulation.run()
        return simulation.frames()

    if alone is None or beside is None:
        chosen = alone or beside
        how = "one calibration" if chosen is None else f"{chosen.overheads.side_by_side} engine(s) side by side"
        return simulate(chosen.overheads if chosen else None, chosen.device if chosen else None), describe_overheads(
            chosen.overheads if chosen else None, how)  # fmt: skip
    busy = 0.5
    for _ in range(COLOCATION_ROUNDS):
        overheads = colocated(alone.overheads, beside.overheads, busy)
        frames = simulate(overheads, alone.device)
        replicas = frames["replicas"]
        llm = replicas[replicas.device == alone.device]
        duration = float(frames["meta"]["end_s"].iloc[0]) or 1.0
        settled = float((llm["busy_s"] / duration).mean()) if len(llm) else 0.0
        if abs(settled - busy) < 0.02:
            busy = settled
            break
        busy = settled
    how = f"interpolated between alone and {beside.overheads.side_by_side} side by side at a simulated neighbour busy share of {busy:.0%}"
    return frames, describe_overheads(overheads, how)
