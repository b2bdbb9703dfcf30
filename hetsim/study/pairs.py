"""Disaggregated prefill::decode device pairs: the cheapest configuration of each stage and the
TCO benefit of a pair over a baseline pair (the paper's Figs. 8 and 9; paper.md §1.6, §3.2).

Every time comes from the simulator's own model (``LlmReplica.step`` / ``step_seconds``,
chunked prefill as in :func:`hetsim.perf.serving.prefill_chunks`); every $/h from
:mod:`hetsim.cost.tco`. Pure: no I/O, no solver.

* Prefill stage: for each TP x PP shape that fits, ``b`` prompts are prefilled together in
  chunks of ``max_batch_tokens``; TTFT is the time to the last prompt's first token (the batch
  starts when its requests arrive: no queueing, since hardware is unconstrained). The batch
  grows while TTFT meets the SLA (the throughput SLA has no bound); the replica sustains
  ``b / sum(step intervals)`` requests/s.
* Decode stage: ``n`` sequences in flight, all at the mean context ``input + output / 2``
  (continuous batching keeps sequences spread evenly over their output); TBT is one decode
  step (with PP: ``pp`` micro-batches in flight, a token per pass through all stages). ``n`` is the
  largest batch whose TBT meets the SLA (the throughput SLA: the largest whose full-length KV
  fits); the replica sustains ``n / (output x TBT)`` requests/s.
* Both stages are capped by the KV link, Eq. (1)/(2) amortised: prefill egress and decode
  ingress of ``requests/s x KV bytes of the prompt`` at most one link per device.
* Unconstrained hardware: instance counts are fractional (rate matching), so a pair's cost per
  request is the sum of its stages' costs per request, each stage at its cheapest shape.
  TCO benefit = requests per $ of the pair / requests per $ of the baseline pair; the tokens
  per request are fixed, so this is also the ratio of tokens/s per $.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from hetsim.errors import EstimateError, HetsimError
from hetsim.perf.llm import LlmReplica, ServingLimits
from hetsim.perf.roofline import DevicePerf
from hetsim.perf.serving import prefill_chunks
from hetsim.perf.transformer import Precision, SequenceWork, Shard, kv_bytes_per_token
from hetsim.specs.hardware import DType
from hetsim.specs.model import ModelSpec


@dataclass(frozen=True)
class PairWorkload:
    """One LLM request shape and its SLA; a bound of None means 'maximise throughput only'."""

    model: ModelSpec
    dtype: DType
    input_tokens: int
    output_tokens: int
    ttft_s: float | None = None
    tbt_s: float | None = None

    def __post_init__(self) -> None:
        if self.input_tokens < 1 or self.output_tokens < 1:
            raise EstimateError(
                f"pair workload: expected input and output tokens >= 1, got {self.input_tokens}, {self.output_tokens}"
            )

    @property
    def decode_context(self) -> int:
        """Mean context a decode step attends over: the prompt plus half the output."""
        return self.input_tokens + self.output_tokens // 2

    @property
    def kv_bytes_per_request(self) -> float:
        """KV cache of one prompt, moved from the prefill to the decode device (paper Eq. 3)."""
        assert self.model.architecture is not None
        return self.input_tokens * kv_bytes_per_token(self.model.architecture, Precision.uniform(self.dtype).kv_cache)


@dataclass(frozen=True)
class SearchSpace:
    """Shapes tried per stage, server limits, and the KV link per device.

    ``max_num_seqs`` is raised from vLLM's default 256: the paper maximises the batch, and 256 is
    a server default, not a hardware limit. ``kv_link_bytes_per_s`` is one 400 Gb/s RoCE NIC.
    """

    tp_options: tuple[int, ...] = (1, 2, 4, 8)
    pp_options: tuple[int, ...] = (1, 2)
    prefill_batches: tuple[int, ...] = (1, 2, 4, 8, 16, 32, 64)
    max_num_seqs: int = 1024
    max_batch_tokens: int = 8192
    kv_link_bytes_per_s: float = 50e9


@dataclass(frozen=True)
class PricedDevice:
    """A device of the study: its short key (used in pair labels), performance and $/h."""

    key: str
    perf: DevicePerf
    usd_per_h: float


@dataclass(frozen=True)
class StageConfig:
    """The chosen shape of one stage on one device type, and what a replica of it sustains.

    ``latency_s`` is TTFT for prefill and TBT for decode; ``usd_per_h`` is the whole replica.
    """

    stage: str
    device: str
    tp: int
    pp: int
    batch: int
    latency_s: float
    requests_per_s: float
    usd_per_h: float
    bound: str
    kv_link_capped: bool

    @property
    def devices(self) -> int:
        return self.tp * self.pp

    @property
    def usd_per_request(self) -> float:
        return self.usd_per_h / 3600.0 / self.requests_per_s


def kv_gbps_per_device(config: StageConfig, workload: PairWorkload) -> float:
    """Amortised KV link traffic per device of a stage, in Gb/s (paper Eq. 1/2 averaged over time)."""
    return config.requests_per_s * workload.kv_bytes_per_request * 8.0 / config.devices / 1e9


def replica_shapes(workload: PairWorkload, perf: DevicePerf, space: SearchSpace) -> Iterator[LlmReplica]:
    """Every TP x PP shape that is valid on the device and holds the model (others are skipped)."""
    up = perf.device.scale_up
    limits = ServingLimits(max_num_seqs=space.max_num_seqs, max_batch_tokens=space.max_batch_tokens)
    for pp in space.pp_options:
        for tp in space.tp_options:
            if tp > 1 and (up is None or tp > up.domain_size):
                continue
            try:
                replica = LlmReplica(
                    workload.model, perf, Shard(tp=tp, pp=pp), Precision.uniform(workload.dtype), limits
                )
                _ = replica.kv_capacity_tokens
                replica.step([SequenceWork(1, 1)])  # raises when PP needs a fabric the device lacks
            except HetsimError:
                continue
            yield replica


def _link_cap(rate: float, replica: LlmReplica, workload: PairWorkload, space: SearchSpace) -> tuple[float, bool]:
    """``rate`` limited by one KV link per device; and whether the link was the limit."""
    cap = space.kv_link_bytes_per_s * replica.devices / workload.kv_bytes_per_request
    return (cap, True) if cap < rate else (rate, False)


def _prefill_batch(replica: LlmReplica, prompt: int, batch: int, steps: dict) -> tuple[float, float]:
    """(TTFT, seconds between batches) of ``batch`` prompts prefilled together; ``steps`` caches
    the (latency, interval) of identical chunks (a batch repeats the same few chunk shapes)."""
    latency = interval = 0.0
    for chunk in prefill_chunks([prompt] * batch, replica.limits.max_batch_tokens):
        key = tuple(chunk)
        if key not in steps:
            if replica.shard.pp == 1:  # one stage: the interval is the step itself
                seconds = replica.step_seconds(chunk)
                steps[key] = (seconds, seconds)
            else:
                estimate = replica.step(chunk)
                steps[key] = (estimate.seconds, estimate.interval_s)
        latency += steps[key][0]
        interval += steps[key][1]
    return latency, interval


def _prefill_bound(replica: LlmReplica, prompt: int, batch: int) -> str:
    """The bound that dominates a batch's prefill (priced once, for the chosen batch)."""
    totals: dict[str, float] = {}
    for chunk in prefill_chunks([prompt] * batch, replica.limits.max_batch_tokens):
        for bound, seconds in replica.step(chunk).by_bound_s.items():
            totals[bound.value] = totals.get(bound.value, 0.0) + seconds
    return max(totals, key=lambda b: totals[b])


def prefill_configs(
    workload: PairWorkload, device: PricedDevice, space: SearchSpace, shapes: Sequence[LlmReplica] | None = None
) -> list[StageConfig]:
    """The best batch of each TP x PP shape for prefill (shapes that miss TTFT at batch 1 drop out).

    ``shapes`` (default: :func:`replica_shapes`) lets a caller reuse replicas and their step caches.
    """
    configs = []
    for replica in replica_shapes(workload, device.perf, space) if shapes is None else shapes:
        fits = replica.max_batch(workload.input_tokens)
        best: tuple[float, int, float, bool] | None = None  # ($/request, batch, TTFT, link-capped)
        steps: dict = {}
        for batch in (b for b in space.prefill_batches if b <= fits):
            ttft, interval = _prefill_batch(replica, workload.input_tokens, batch, steps)
            if workload.ttft_s is not None and ttft > workload.ttft_s:
                break  # TTFT only grows with the batch
            rate, capped = _link_cap(batch / interval, replica, workload, space)
            cost = device.usd_per_h * replica.devices / 3600.0 / rate
            if best is None or cost < best[0] * (1 - 1e-9):
                best = (cost, batch, ttft, capped)
        if best is not None:
            cost, batch, ttft, capped = best
            rate = device.usd_per_h * replica.devices / 3600.0 / cost
            bound = _prefill_bound(replica, workload.input_tokens, batch)
            configs.append(StageConfig("prefill", device.key, replica.shard.tp, replica.shard.pp, batch, ttft, rate,
                                       device.usd_per_h * replica.devices, bound, capped))  # fmt: skip
    return configs


def _decode_tbt(replica: LlmReplica, context: int, sequences: int) -> float:
    """Time between tokens of ``sequences`` in flight. With PP they form ``pp`` micro-batches in
    flight and each sequence gets a token per pass through all stages: the micro-batch's step
    latency (``pp`` stage intervals plus the hand-offs)."""
    return replica.step_seconds([SequenceWork(1, context)] * math.ceil(sequences / replica.shard.pp))


def _largest_batch(replica: LlmReplica, workload: PairWorkload, fits: int) -> int:
    """Largest number of sequences in flight whose TBT meets the SLA (0 if even one misses).

    TBT grows with the batch and is close to affine in it, so each round guesses by linear
    interpolation inside the bracket [low meets, high misses] and probes the guess's neighbour;
    a guess that does not close the bracket is followed by a bisection step. Same answer as
    plain bisection, in about four step prices instead of ten.
    """
    limit = workload.tbt_s
    if limit is None:
        return fits
    tbt = lambda n: _decode_tbt(replica, workload.decode_context, n)  # noqa: E731
    bracket = [(1, tbt(1)), (fits, tbt(fits))]  # [(largest n known to meet, its TBT), (smallest known to miss, ...)]
    if bracket[0][1] > limit:
        return 0
    if bracket[1][1] <= limit:
        return fits

    def split(n: int) -> None:
        t = tbt(n)
        bracket[0 if t <= limit else 1] = (n, t)

    while bracket[1][0] - bracket[0][0] > 1:
        (low, t_low), (high, t_high) = bracket
        guess = min(max(low + int((limit - t_low) / (t_high - t_low) * (high - low)), low + 1), high - 1)
        split(guess)
        neighbour = guess + 1 if bracket[0][0] == guess else guess - 1  # the side that may close the bracket
        if bracket[0][0] < neighbour < bracket[1][0]:
            split(neighbour)
        if bracket[1][0] - bracket[0][0] > 1:
            split((bracket[0][0] + bracket[1][0]) // 2)
    return bracket[0][0]


def decode_configs(
    workload: PairWorkload, device: PricedDevice, space: SearchSpace, shapes: Sequence[LlmReplica] | None = None
) -> list[StageConfig]:
    """The largest SLA-meeting batch of each TP x PP shape for decode (``shapes`` as for prefill)."""
    configs = []
    for replica in replica_shapes(workload, device.perf, space) if shapes is None else shapes:
        fits = replica.max_batch(workload.input_tokens + workload.output_tokens)
        batch = _largest_batch(replica, workload, fits)
        if batch < 1:
            continue
        tbt = _decode_tbt(replica, workload.decode_context, batch)
        bound = replica.step([SequenceWork(1, workload.decode_context)] * math.ceil(batch / replica.shard.pp)).bound
        rate, capped = _link_cap(batch / (workload.output_tokens * tbt), replica, workload, space)
        configs.append(StageConfig("decode", device.key, replica.shard.tp, replica.shard.pp, batch, tbt, rate,
                                   device.usd_per_h * replica.devices, bound.value, capped))  # fmt: skip
    return configs


def cheapest(configs: Sequence[StageConfig]) -> StageConfig | None:
    """Lowest $/request; ties go to fewer devices, then lower latency."""
    if not configs:
        return None
    return min(configs, key=lambda c: (round(c.usd_per_request, 15), c.devices, c.latency_s))


@dataclass(frozen=True)
class PairResult:
    """A prefill::decode pair: its stages' configurations, $/request and benefit over the baseline."""

    prefill_device: str
    decode_device: str
    prefill: StageConfig | None
    decode: StageConfig | None
    tco_benefit: float

    @property
    def label(self) -> str:
        return pair_label(self.prefill_device, self.decode_device)

    @property
    def is_feasible(self) -> bool:
        return self.prefill is not None and self.decode is not None

    @property
    def usd_per_request(self) -> float:
        if self.prefill is None or self.decode is None:
            return math.nan
        return self.prefill.usd_per_request + self.decode.usd_per_request


def pair_label(prefill: str, decode: str) -> str:
    """The paper's notation: prefill device '::' decode device."""
    return f"{prefill}::{decode}"


def best_stages(
    workload: PairWorkload, devices: Sequence[PricedDevice], space: SearchSpace, cache: dict | None = None
) -> dict[str, dict[str, StageConfig | None]]:
    """The cheapest prefill and decode configuration on every device: {'prefill'|'decode': {key: config}}.

    ``cache`` (optional, owned by the caller) keeps the replicas of each model, precision and
    device (with their step-time caches) and the prefill results, which do not depend on the
    output length or TBT, across workloads.
    """
    cache = {} if cache is None else cache
    result: dict[str, dict[str, StageConfig | None]] = {"prefill": {}, "decode": {}}
    for device in devices:
        shapes_key = ("shapes", workload.model.name, workload.dtype, id(device), space)
        if shapes_key not in cache:
            cache[shapes_key] = list(replica_shapes(workload, device.perf, space))
        shapes = cache[shapes_key]
        prefill_key = ("prefill", workload.input_tokens, workload.ttft_s, *shapes_key[1:])
        if prefill_key not in cache:
            cache[prefill_key] = cheapest(prefill_configs(workload, device, space, shapes))
        result["prefill"][device.key] = cache[prefill_key]
        result["decode"][device.key] = cheapest(decode_configs(workload, device, space, shapes))
    return result


def evaluate_pairs(stages: dict[str, dict[str, StageConfig | None]], baseline: tuple[str, str]) -> list[PairResult]:
    """Every prefill x decode pair from per-device best stages, with its benefit over ``baseline``.

    Raises:
        EstimateError: the baseline pair is infeasible (no benefit can be defined).
    """
    prefill, decode = stages["prefill"], stages["decode"]
    base_prefill, base_decode = prefill.get(baseline[0]), decode.get(baseline[1])
    if base_prefill is None or base_decode is None:
        raise EstimateError(
            f"baseline {pair_label(*baseline)}: no configuration meets the SLA, so no benefit is defined"
        )
    base_cost = base_prefill.usd_per_request + base_decode.usd_per_request
    results = []
    for p_key, p_config in prefill.items():
        for d_key, d_config in decode.items():
            cost = (
                math.nan
                if p_config is None or d_config is None
                else p_config.usd_per_request + d_config.usd_per_request
            )
            results.append(PairResult(p_key, d_key, p_config, d_config, base_cost / cost))
    return results
