"""How a replica's expert layers run beyond its split (``hetsim.perf.transformer.Shard``):
the options a plan's pools and ``hetsim estimate`` name, priced by ``hetsim.perf.expert``."""

from __future__ import annotations

from enum import StrEnum


class CommOverlap(StrEnum):
    """How an expert-parallel replica overlaps its all-to-all with compute."""

    NONE = "none"
    TWO_BATCH = "two-batch"  # two micro-batches, one's dispatch/combine under the other's compute
