"""The placement problem, as plain data the solver (and a brute-force checker) read.

A *stage* is a piece of the workload that needs hardware (an LLM served aggregated, its
prefill or decode half, STT, a tool pool, ...). Each stage picks one *option*, or up to
``max_pools_per_stage`` of them on different devices whose capacities add up (decode on the
owned H100s plus new Gaudi 3s); an option is a replica configuration with a device type, devices per replica, the demand one replica
sustains within its latency limits, the latency a visit sees, and costs. The fleet supplies
devices through *node types* (owned ones are already paid for; more can be bought or rented
up to a limit). *Groups* make alternative structures exclusive (an LLM served aggregated,
or split into prefill and decode). *Paths* bound the end-to-end latency of a workload.

Objective: $/h of the extra nodes + per-unit costs of the chosen options + transfers.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from hetsim.errors import InfeasiblePlanError


@dataclass(frozen=True)
class Option:
    """One way to serve a stage.

    Attributes:
        key: unique within the stage, readable (e.g. 'h100-sxm tp2 b64').
        device: device type it runs on (supplied by node types).
        devices_per_replica: devices one replica occupies (tp x pp).
        capacity_per_replica: demand units per second one replica sustains.
        latency_s: latency one visit sees at the planned load.
        usd_per_h_per_replica: cost of a replica beyond its nodes (e.g. a licence); usually 0.
        usd_per_unit: variable cost per demand unit (the paper's per-token costs).
        detail: configuration for the exported plan (tp, pp, batch, dtype, TTFT, TBT, ...).
    """

    key: str
    device: str
    devices_per_replica: int = 1
    capacity_per_replica: float = float("inf")
    latency_s: float = 0.0
    usd_per_h_per_replica: float = 0.0
    usd_per_unit: float = 0.0
    detail: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)
    tie_break_per_replica: float = 0.0  # ranks options of equal cost (capital a replica occupies); not a cost


@dataclass(frozen=True)
class Stage:
    """A piece of work that needs hardware, with its demand and options."""

    name: str
    demand_per_s: float
    options: tuple[Option, ...]
    group: str | None = None  # stages of one structure of an exclusive group
    detail: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)
    shareable: bool = True  # may combine several options (pools); False where the simulator cannot route


@dataclass(frozen=True)
class Transfer:
    """Latency and cost between two stages (e.g. KV cache from prefill to decode).

    ``only_if_devices_differ``: applies only when the two stages run on different device
    types (the paper's worked example); otherwise it applies whenever both stages are used.
    """

    source: str
    target: str
    latency_s: float
    usd_per_unit: float = 0.0
    only_if_devices_differ: bool = True


@dataclass(frozen=True)
class LatencyPath:
    """An end-to-end latency bound: sum of (visits x latency) over stages, plus fixed delays."""

    name: str
    stages: tuple[tuple[str, float], ...]
    limit_s: float
    fixed_s: float = 0.0


@dataclass(frozen=True)
class NodeType:
    """Where devices come from: devices per node by type, $/h, owned count, purchasable limit."""

    name: str
    devices: dict[str, int]
    usd_per_h: float
    owned: int = 0
    max_extra: int | None = None  # None: unlimited
    power_w: float = 0.0  # facility power the node is provisioned for (full load x PUE)


@dataclass(frozen=True)
class ExclusiveGroup:
    """Alternative structures of one workload node: exactly one structure's stages are used."""

    name: str
    structures: tuple[tuple[str, ...], ...]  # each: the stage names of one structure


@dataclass(frozen=True)
class PlacementProblem:
    stages: tuple[Stage, ...]
    node_types: tuple[NodeType, ...]
    transfers: tuple[Transfer, ...] = ()
    paths: tuple[LatencyPath, ...] = ()
    groups: tuple[ExclusiveGroup, ...] = ()
    headroom: float = 1.0
    sizing: bool = True  # False: pick options only (no replica counts), as in the worked example
    max_pools_per_stage: int = 1  # options (pools) one stage may combine; >1 only with sizing
    site_power_w: float | None = None  # the site's power budget: owned + added nodes' power_w within it

    def __post_init__(self) -> None:
        names = [s.name for s in self.stages]
        if len(set(names)) != len(names):
            raise InfeasiblePlanError(f"problem: stage names must be unique, got {names}")
        known = set(names)
        for transfer in self.transfers:
            for end in (transfer.source, transfer.target):
                if end not in known:
                    raise InfeasiblePlanError(f"problem: transfer names unknown stage {end!r}")
        for path in self.paths:
            for stage, _ in path.stages:
                if stage not in known:
                    raise InfeasiblePlanError(f"problem: path {path.name!r} names unknown stage {stage!r}")
        for stage in self.stages:
            if not stage.options:
                raise InfeasiblePlanError(f"stage {stage.name!r} has no option that meets its limits")
            if self.max_pools_per_stage > 1 and any(o.usd_per_unit for o in stage.options):
                # a per-unit cost is charged on the stage's whole demand: one pool per stage
                raise InfeasiblePlanError(f"problem: stage {stage.name!r} has per-unit costs; "
                                          f"expected max_pools_per_stage 1, got {self.max_pools_per_stage}")  # fmt: skip
        if self.max_pools_per_stage < 1 or (self.max_pools_per_stage > 1 and not self.sizing):
            raise InfeasiblePlanError(f"problem: max_pools_per_stage: expected 1, or more with sizing, "
                                      f"got {self.max_pools_per_stage}")  # fmt: skip

    def most_pools(self, stage: Stage) -> int:
        """How many options ``stage`` may combine."""
        return self.max_pools_per_stage if self.sizing and stage.shareable else 1

    def stage(self, name: str) -> Stage:
        return next(s for s in self.stages if s.name == name)

    @property
    def grouped_stages(self) -> set[str]:
        return {name for group in self.groups for structure in group.structures for name in structure}


@dataclass(frozen=True)
class Choice:
    """The option and replica count chosen for one stage."""

    stage: str
    option: Option
    replicas: int


@dataclass(frozen=True)
class Solution:
    """A solved placement: choices, nodes, cost, and the solver's account of itself."""

    choices: tuple[Choice, ...]
    extra_nodes: dict[str, int]
    objective: float
    status: str  # 'optimal' or 'feasible'
    gap: float
    solver: str
    wall_s: float
    path_latency_s: dict[str, float] = field(default_factory=dict)

    def choice(self, stage: str) -> Choice | None:
        """The stage's first (largest) choice; ``choices_of`` gives all of a shared stage's."""
        return next((c for c in self.choices if c.stage == stage), None)

    def choices_of(self, stage: str) -> list[Choice]:
        return [c for c in self.choices if c.stage == stage]
