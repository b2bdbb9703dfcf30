"""Time of the non-LLM work an agent does: speech, embeddings, rerank, TTS, guardrails,
vector search and generic CPU tools, on any device (GPU or CPU).

Model work is FLOPs and bytes per unit of input (``NonLlmCostSpec``): a batch of
``concurrency`` requests shares one stream of the weights, so weight traffic is divided by
the batch while FLOPs and activation bytes are not. Vector search is a scan of the index
memory (brute force), or the fraction an IVF or HNSW index visits.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import StrEnum

from hetsim.errors import EstimateError
from hetsim.perf.roofline import DevicePerf, Estimate, OpCost
from hetsim.specs.calibration import CurveKind
from hetsim.specs.hardware import DType
from hetsim.specs.model import ModelSpec


def model_amount(model: ModelSpec, units: float | None, input_tokens: int) -> float:
    """How much input a step gives a model, in the model's own unit: per-token models take the
    step's tokens (a rerank step's tokens are documents x tokens per document); others take
    ``units`` (audio seconds for speech)."""
    cost = model.unit_cost
    if cost is not None and cost.unit == "token" and input_tokens > 0:
        return float(input_tokens)
    if units is None or math.isnan(units):
        raise EstimateError(f"{model.name}: a step needs its amount in {cost.unit if cost else 'units'}, got none")
    return float(units)


def model_work(model: ModelSpec, units: float, dtype: DType = DType.BF16, concurrency: int = 1) -> OpCost:
    """Work of ``units`` of input (audio seconds, tokens, ...) for one request, batched ``concurrency`` wide."""
    cost = model.unit_cost
    if cost is None:
        raise EstimateError(f"model {model.name!r} is an LLM; use the LLM replica model for it")
    if units < 0 or concurrency < 1:
        raise EstimateError(f"{model.name}: expected units >= 0 and concurrency >= 1, got {units} and {concurrency}")
    weight_bytes = model.parameters * DType(dtype).bytes_per_element
    weight_reads = max(cost.weight_reads_per_unit * units, 1.0 if units > 0 else 0.0) / concurrency
    return OpCost(
        name=f"{model.kind.value}:{model.name}",
        kind=CurveKind.GEMM,
        flops=cost.flops_per_unit * units,
        bytes=weight_bytes * weight_reads + cost.bytes_per_unit * units,
        dtype=DType(dtype),
    )


def model_time(
    perf: DevicePerf, model: ModelSpec, units: float, dtype: DType = DType.BF16, concurrency: int = 1
) -> Estimate:
    """Service time of one request of ``units`` on ``perf``'s device, in a batch of ``concurrency``."""
    return perf.op_time(model_work(model, units, dtype, concurrency))


class IndexKind(StrEnum):
    FLAT = "flat"
    IVF = "ivf"
    HNSW = "hnsw"


@dataclass(frozen=True, slots=True)
class VectorIndex:
    """A vector index: how many vectors, their width and format, and how it is searched.

    Attributes:
        vectors: number of indexed vectors.
        dimension: elements per vector.
        dtype: element format (fp32, fp16, int8, ...).
        kind: flat (scan everything), ivf (scan nprobe of nlist cells) or hnsw (graph walk).
        nprobe / nlist: IVF probe count and cell count.
        ef_search / max_degree: HNSW beam width and graph degree (M).
    """

    vectors: int
    dimension: int
    dtype: DType = DType.FP32
    kind: IndexKind = IndexKind.FLAT
    nprobe: int = 32
    nlist: int = 4096
    ef_search: int = 128
    max_degree: int = 32

    @property
    def bytes(self) -> float:
        return self.vectors * self.dimension * self.dtype.bytes_per_element

    def visited_vectors(self) -> float:
        """Vectors whose distance a query computes."""
        if self.kind == IndexKind.FLAT:
            return float(self.vectors)
        if self.kind == IndexKind.IVF:
            return self.vectors * min(1.0, self.nprobe / self.nlist)
        # HNSW visits roughly ef_search candidates per layer-0 search, each expanding max_degree
        # neighbours, plus a walk of log2(N) upper-layer hops (Malkov & Yashunin 2018).
        return float(
            min(self.vectors, self.ef_search * self.max_degree + self.max_degree * math.log2(max(self.vectors, 2)))
        )


def vector_search_work(index: VectorIndex, queries: int = 1) -> OpCost:
    """Distance computations of ``queries`` queries: memory-bound over the visited vectors.

    A batch of queries shares one pass over a flat index (one read, many dot products); graph
    and IVF searches touch scattered vectors per query, so each query pays its own reads.
    """
    if queries < 1:
        raise EstimateError(f"vector search: expected queries >= 1, got {queries}")
    visited = index.visited_vectors()
    element_bytes = index.dtype.bytes_per_element
    reads = 1 if index.kind == IndexKind.FLAT else queries
    return OpCost(
        name=f"vector_search:{index.kind.value}",
        kind=CurveKind.MEMORY,
        flops=2.0 * visited * index.dimension * queries,
        bytes=visited * index.dimension * element_bytes * reads,
        dtype=DType.FP32 if index.dtype == DType.FP32 else DType.FP16,
    )


def vector_search_time(perf: DevicePerf, index: VectorIndex, queries: int = 1) -> Estimate:
    """Time of a batch of ``queries`` searches on ``perf``'s device."""
    if index.bytes > perf.device.memory_bytes:
        raise EstimateError(
            f"vector index of {index.bytes / 1e9:.1f} GB does not fit in {perf.device.name}'s "
            f"{perf.device.memory_bytes / 1e9:.0f} GB; shard it or use a compressed dtype"
        )
    return perf.op_time(vector_search_work(index, queries))


def cpu_tool_time(cpu_seconds: float, cores: int = 1) -> float:
    """Wall time of a CPU tool measured at ``cpu_seconds`` of single-core work, using ``cores``.

    Tools are measured, not modelled: the workload gives their CPU time. Parallel speed-up is
    taken as linear up to ``cores`` (an upper bound; most tools are single-threaded: cores=1).
    """
    if cpu_seconds < 0 or cores < 1:
        raise EstimateError(f"cpu tool: expected cpu_seconds >= 0 and cores >= 1, got {cpu_seconds} and {cores}")
    return cpu_seconds / cores
