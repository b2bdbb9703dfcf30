"""``hetsim sweep``: simulate a grid of scenarios x seeds in parallel and summarize it across seeds.

A *point* is one scenario file run with one seed. The seed replaces the scenario's
``trace.seed``, so a synthesized trace changes with it; a trace file does not, but the seed
is still recorded. Points run in this process (``workers=1``), in local worker processes,
or as Ray tasks (``ray_address``); each point is self-contained (its seed travels with it),
so the results are the same whichever runs them, and they are returned in grid order
(scenarios as given, then seeds as given) whatever order they finish in. A point that fails
is kept as a row with its one-line error; a point whose worker process died is run again on a
fresh worker (``hetsim.exec.pool``; Ray retries its tasks the same way).

``--out`` is written whole (``hetsim.io.outputs``). Ctrl-C keeps the points that finished: they are
written to ``<out>.incomplete`` (its manifest says ``complete: false``), ``out`` keeps a previous
complete sweep, and :class:`SweepInterrupted` carries them to the caller.
"""

from __future__ import annotations

import math
import os
import re
import time
from collections.abc import Callable, Generator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from hetsim.api.simulate import SimulateRequest, simulate
from hetsim.errors import HetsimError, Interrupted, ScenarioError
from hetsim.exec.pool import Outcome, describe, map_local
from hetsim.io import ctrl_c
from hetsim.io.outputs import Provenance, incomplete_path, inputs_digest, write_folder
from hetsim.io.plans import load_scenario
from hetsim.io.sweeps import write_sweep
from hetsim.metrics.sweep import METRIC_COLUMNS, across_seeds, flatten_summary

POINT_COLUMNS: tuple[str, ...] = ("scenario", "scenario_file", "seed", "status", "error", *METRIC_COLUMNS)
"""Columns of the per-point frame: identity, ``status`` ('ok' or 'failed'), error, then the metrics."""
_SEED_ITEM = re.compile(r"^\s*(-?\d+)\s*(?:\.\.\s*(-?\d+)\s*)?$")

Progress = Callable[[int, int, dict[str, Any] | None], None]
"""``progress(done, total, row)``: called with ``(0, total, None)`` first, then after each point."""


@dataclass(frozen=True)
class SweepPoint:
    """One run of the grid: a scenario file (absolute path), its display name and the seed."""

    scenario: Path
    label: str
    seed: int | None


@dataclass(frozen=True)
class SweepRequest:
    scenarios: tuple[Path, ...]
    seeds: tuple[int, ...] | None = None
    """None runs each scenario once with its own ``trace.seed``."""
    workers: int | None = None
    """Local worker processes (default: one per CPU; 1 runs in this process); CPUs of a local Ray."""
    ray_address: str | None = None
    """``local``, ``auto`` or a cluster address: run the points as Ray tasks."""
    out: Path | None = None
    object_store_bytes: int | None = None
    """Object store of a Ray instance started with ``ray_address='local'`` (default 256 MiB)."""


@dataclass(frozen=True)
class SweepResult:
    points: pd.DataFrame
    """One row per finished point, in grid order; columns ``POINT_COLUMNS``."""
    by_scenario: pd.DataFrame
    """One row per (scenario file, metric): mean and 95% CI over the successful seeds."""
    run: dict[str, Any] = field(default_factory=dict)

    @property
    def failed(self) -> int:
        return int((self.points["status"] != "ok").sum())

    def report(self) -> dict[str, Any]:
        """Everything as JSON-ready data: run facts, point rows and per-scenario spreads."""
        return {"run": self.run, "points": _records(self.points), "by_scenario": _nested(self.by_scenario)}


def parse_seeds(text: str) -> tuple[int, ...]:
    """Seeds from ``0,1,2``, ``0..9`` (inclusive) or a mix (``0..4,10``); duplicates dropped."""
    seeds: list[int] = []
    for item in text.split(","):
        match = _SEED_ITEM.match(item)
        if match is None:
            raise ScenarioError(f"--seeds: expected integers or ranges like '0,1,2' or '0..9', got {text!r}")
        first, last = int(match.group(1)), int(match.group(2) or match.group(1))
        if last < first:
            raise ScenarioError(f"--seeds: range {item.strip()!r} is empty (expected low..high)")
        seeds.extend(s for s in range(first, last + 1) if s not in seeds)
    return tuple(seeds)


def sweep_points(scenarios: tuple[Path, ...], seeds: tuple[int, ...] | None) -> list[SweepPoint]:
    """The grid in order: each scenario (duplicates dropped) with each seed."""
    points = []
    for path in dict.fromkeys(p.resolve() for p in scenarios):
        try:
            spec = load_scenario(path)
            label, own_seed = spec.name, spec.trace.seed
        except HetsimError:  # recorded when the point runs and fails the same way
            label, own_seed = path.stem, None
        points.extend(SweepPoint(path, label, seed) for seed in (seeds if seeds is not None else (own_seed,)))
    return points


def run_point(point: SweepPoint) -> dict[str, Any]:
    """Simulate one point; a row of ``POINT_COLUMNS`` values. Never raises: a failure is a row."""
    started = time.perf_counter()
    row: dict[str, Any] = {"scenario": point.label, "scenario_file": str(point.scenario), "seed": point.seed}
    try:
        summary = simulate(SimulateRequest(point.scenario, seed=point.seed))
    except HetsimError as exc:
        return row | {"status": "failed", "error": " ".join(str(exc).split()), "wall_s": time.perf_counter() - started}
    except Exception as exc:  # a bug in one point must not lose the others; kept as 'Type: message'
        return row | {"status": "failed", "error": describe(exc), "wall_s": time.perf_counter() - started}
    metrics = flatten_summary(summary)
    return row | {"status": "ok", "error": None} | metrics | {"wall_s": time.perf_counter() - started}


class SweepInterrupted(Interrupted):
    """Ctrl-C stopped the sweep; ``result`` holds the points that finished (written, when ``out``
    was given, to ``<out>.incomplete``, marked incomplete)."""

    def __init__(self, message: str, result: SweepResult) -> None:
        super().__init__(message)
        self.result = result


def sweep(request: SweepRequest, progress: Progress | None = None) -> SweepResult:
    """Run every point of the grid and summarize; writes the results when ``request.out`` is set.

    Raises:
        SweepInterrupted: Ctrl-C; the finished points are kept (see the exception).
    """
    started = time.perf_counter()
    points = sweep_points(request.scenarios, request.seeds)
    rows: list[dict[str, Any] | None] = [None] * len(points)
    outcomes, run = _execute(request, points)
    run["inputs_sha256"] = inputs_digest(_inputs(request, points))["sha256"]
    try:
        if progress:
            progress(0, len(points), None)
        for done, outcome in enumerate(outcomes, start=1):
            # A Ctrl-C that a point turned into its failure (a library wrapped it in its own error,
            # which run_point keeps as the point's) still interrupts the sweep there; that point
            # did not finish.
            ctrl_c.stop_if_received()
            rows[outcome.index] = _row(points[outcome.index], outcome)
            if progress:
                progress(done, len(points), rows[outcome.index])
    except KeyboardInterrupt:
        ctrl_c.acknowledge()  # handled here: the finished points are kept
        outcomes.close()  # stops the workers (a no-op when the interrupt already ended the iteration)
        result = _result(points, rows, run, started)
        raise SweepInterrupted(f"{result.run['finished']} of {len(points)} points finished, {_keep(request, points, result)}",
                               result) from None  # fmt: skip
    result = _result(points, rows, run, started)
    if request.out is not None:
        _write(request, points, result)
    return result


def _result(points: list[SweepPoint], rows: list[dict[str, Any] | None], run: dict[str, Any], started: float) -> SweepResult:
    """The finished rows, in grid order; the run's facts say whether every point finished."""
    finished = [row for row in rows if row is not None]
    frame = pd.DataFrame(finished, columns=list(POINT_COLUMNS)).astype({"seed": "Int64"})
    run |= {"points": len(points), "finished": len(finished), "failed": int((frame["status"] != "ok").sum()),
            "incomplete": len(finished) < len(points), "wall_s": time.perf_counter() - started}  # fmt: skip
    if run["incomplete"]:
        run["not_finished"] = [f"{p.label} seed {p.seed}" for p, row in zip(points, rows, strict=True) if row is None]
    return SweepResult(frame, across_seeds(frame), run)


def _keep(request: SweepRequest, points: list[SweepPoint], result: SweepResult) -> str:
    """Write an interrupted sweep's finished points; where they went, or why they did not."""
    if request.out is None:
        return "not written (no --out)"
    try:
        return f"kept in {_write(request, points, result)} (marked incomplete)"
    except HetsimError as exc:
        return f"not kept: {exc}"


def _write(request: SweepRequest, points: list[SweepPoint], result: SweepResult) -> Path:
    """Write the result whole: to ``out``, or, for an interrupted sweep, to ``<out>.incomplete``
    (``out`` keeps a previous complete sweep). Returns the folder."""
    assert request.out is not None
    complete = not result.run["incomplete"]
    folder = request.out if complete else incomplete_path(request.out)

    def write(staged: Path) -> list[Path]:
        return write_sweep(staged, result.points, result.by_scenario, result.report())

    written = write_folder(folder, "--out", write, ScenarioError, Provenance("sweep", _inputs(request, points), complete))
    result.run["written"] = [str(p) for p in written]
    return folder


def _inputs(request: SweepRequest, points: list[SweepPoint]) -> dict[str, Any]:
    files: dict[str, Any] = {f"scenario_{i}": path for i, path in enumerate(dict.fromkeys(p.scenario for p in points))}
    return files | {"seeds": list(request.seeds) if request.seeds is not None else None}


def _execute(request: SweepRequest, points: list[SweepPoint]) -> tuple[Generator[Outcome, None, None], dict[str, Any]]:
    if request.ray_address is not None:
        from hetsim.exec.ray_sweep import map_on_ray  # ray itself is imported there, lazily

        outcomes = map_on_ray(run_point, points, request.ray_address, request.workers, request.object_store_bytes)
        return outcomes, {"executor": "ray", "ray_address": request.ray_address}
    workers = min(request.workers or os.cpu_count() or 1, max(len(points), 1))
    return map_local(run_point, points, workers), {"executor": "processes" if workers > 1 else "in-process",
                                                   "workers": workers}


def _row(point: SweepPoint, outcome: Outcome) -> dict[str, Any]:
    if outcome.error is None:
        return outcome.value
    # the executor lost the point (its worker died): keep it, with what went wrong
    return {"scenario": point.label, "scenario_file": str(point.scenario), "seed": point.seed,
            "status": "failed", "error": f"worker failed: {outcome.error}", "wall_s": math.nan}


def _records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    clean = frame.astype(object).where(frame.notna(), None)
    return clean.to_dict(orient="records")


def _nested(by_scenario: pd.DataFrame) -> list[dict[str, Any]]:
    stats = ["n", "mean", "std", "ci95_half_width", "ci95_low", "ci95_high"]
    nested = []
    for scenario_file, group in by_scenario.groupby("scenario_file", sort=False):
        first = group.iloc[0]
        metrics = {row["metric"]: {k: _scalar(row[k]) for k in stats} for _, row in group.iterrows()}
        nested.append({"scenario": first["scenario"], "scenario_file": scenario_file, "points": int(first["points"]),
                       "failed": int(first["failed"]), "metrics": metrics})
    return nested


def _scalar(value: Any) -> Any:
    return value.item() if hasattr(value, "item") else value
