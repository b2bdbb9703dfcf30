"""Scenario specs: what to simulate (a plan and a trace), against which SLA and cost rules."""

from __future__ import annotations

from pydantic import Field, model_validator

from hetsim.specs.common import MAX_RATE_PER_S, FrozenModel, SafeName, SchemaVersion
from hetsim.specs.workload import ArrivalSpec


class TraceSource(FrozenModel):
    """A trace file (canonical, or a public format imported on the fly) or a synthesis recipe."""

    file: str | None = Field(default=None, description="path, relative to the scenario file")
    format: str | None = Field(default=None, description="importer for a raw public trace; omit for canonical")
    workload: str | None = Field(default=None, description="workload name or file to synthesize from")
    rate_per_s: float | None = Field(default=None, gt=0, le=MAX_RATE_PER_S, description="session arrival rate (overrides the workload's)")
    arrival: ArrivalSpec | None = Field(
        default=None, description="arrival process replacing the workload's (e.g. a diurnal day); rate_per_s still sets its mean"
    )
    duration_s: float | None = Field(default=None, gt=0)
    seed: int = 0
    model: str | None = Field(default=None, description="model for LLM steps the trace leaves unnamed (Azure, Mooncake)")

    @model_validator(mode="after")
    def _one_source(self) -> TraceSource:
        if (self.file is None) == (self.workload is None):
            raise ValueError("trace: expected exactly one of 'file' or 'workload'")
        if self.workload is not None and self.duration_s is None:
            raise ValueError("trace.duration_s: required to synthesize from a workload, got none")
        if self.arrival is not None and self.workload is None:
            raise ValueError("trace.arrival: applies to a workload synthesized, not to a trace file")
        return self


class SlaSpec(FrozenModel):
    ttft_s: float | None = Field(default=None, gt=0)
    tbt_s: float | None = Field(default=None, gt=0)
    e2e_s: float | None = Field(default=None, gt=0)
    percentile: float = Field(default=99.0, gt=0, le=100)


class ScenarioSpec(FrozenModel):
    """A plan, a trace, an SLA and the cost rules to score them by."""

    schema_version: SchemaVersion
    name: SafeName
    description: str = ""
    plan: str = Field(description="plan file, relative to the scenario file")
    trace: TraceSource
    sla: SlaSpec | None = None
    tco: str | None = Field(
        default=None, description="TCO preset: paper, paper-printed, enterprise; default the plan's (its planner's), else paper"
    )
    cost_basis: str | None = Field(default=None, description="owned or rented (default: owned when priced)")
