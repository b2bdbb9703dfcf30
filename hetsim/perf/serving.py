"""Request-level figures of a replica: TTFT, TPOT, throughput, for a uniform batch.

These are closed-form answers for a batch of ``batch`` identical requests that arrive
together (the question ``hetsim estimate`` answers). The simulator answers the same question
for arbitrary traffic; on a single request both must agree exactly.

* TTFT: the batch's prompts are prefilled in chunks of at most ``max_batch_tokens`` tokens
  (sequence after sequence, as vLLM's chunked prefill schedules a waiting queue); TTFT is the
  time until the last prompt's first token.
* TPOT: mean time between output tokens of one request = mean decode step time over the
  contexts the request goes through: the first decode step attends over the ``input`` cached
  tokens plus itself, the last over ``input + output - 2``.
"""

from __future__ import annotations

from dataclasses import dataclass

from hetsim.errors import EstimateError
from hetsim.perf.llm import LlmReplica
from hetsim.perf.roofline import Bound, Provenance
from hetsim.perf.speculative import Speculation
from hetsim.perf.transformer import SequenceWork


@dataclass(frozen=True, slots=True)
class RequestEstimate:
    """Latency and throughput of ``batch`` identical requests on one replica."""

    batch: int
    input_tokens: int
    output_tokens: int
    ttft_s: float
    tpot_s: float
    e2e_s: float
    prefill_bound: Bound
    decode_bound: Bound
    max_batch_fits: int
    kv_capacity_tokens: int
    devices: int
    output_tokens_per_s_per_device: float
    total_tokens_per_s_per_device: float
    provenance: Provenance


def prefill_chunks(prompts: list[int], budget: int) -> list[list[SequenceWork]]:
    """Split prompts into chunked-prefill steps of at most ``budget`` tokens, first come first."""
    steps: list[list[SequenceWork]] = []
    remaining = [(index, tokens, 0) for index, tokens in enumerate(prompts)]
    while remaining:
        room, step, carry = budget, [], []
        for index, left, done in remaining:
            take = min(left, room)
            if take > 0:
                step.append(SequenceWork(take, done))
                room -= take
            if left - take > 0:
                carry.append((index, left - take, done + take))
        steps.append(step)
        remaining = carry
    return steps


def prefill_time(replica: LlmReplica, prompts: list[int]) -> tuple[float, Bound]:
    """Seconds to prefill ``prompts`` under the chunk budget, and the dominant bound."""
    totals: dict[Bound, float] = {}
    seconds = 0.0
    for step in prefill_chunks(prompts, replica.limits.max_batch_tokens):
        estimate = replica.step(step)
        seconds += estimate.seconds
        for bound, part in estimate.by_bound_s.items():
            totals[bound] = totals.get(bound, 0.0) + part
    return seconds, max(totals, key=lambda b: totals[b])


SPECULATION_CONTEXTS = 16
"""Contexts a speculative decode's mean TPOT is averaged over (evenly spaced over the output)."""


def estimate_request(replica: LlmReplica, input_tokens: int, output_tokens: int, batch: int = 1,
                     speculation: Speculation | None = None) -> RequestEstimate:  # fmt: skip
    """TTFT, TPOT and throughput of ``batch`` requests of the given lengths on ``replica``;
    with ``speculation``, the proposer also prefills the prompts and every decode iteration is a
    verification plus the drafting, yielding its expected tokens (``hetsim.perf.speculative``)."""
    if input_tokens < 1 or output_tokens < 1 or batch < 1:
        raise EstimateError(
            "request: expected input_tokens, output_tokens and batch >= 1, "
            f"got {input_tokens}, {output_tokens}, {batch}"
        )
    context = input_tokens + output_tokens
    if context > replica.arch.max_context_tokens:
        raise EstimateError(
            f"request: {input_tokens}+{output_tokens} tokens exceed {replica.model.name}'s context of "
            f"{replica.arch.max_context_tokens}"
        )
    fits = replica.max_batch(context)
    if batch > fits:
        raise EstimateError(
            f"batch: {batch} sequences of {context} tokens need more KV cache than {replica.perf.device.name} "
            f"x{replica.devices} holds ({replica.kv_capacity_tokens} tokens): at most {fits} fit"
        )
    ttft, prefill_bound = prefill_time(replica, [input_tokens] * batch)
    contexts = list(range(input_tokens, input_tokens + output_tokens - 1))
    if speculation is None:
        steps = replica.decode_step_times(batch, contexts) if contexts else []
        tpot = sum(steps) / len(steps) if steps else 0.0
        decoding = sum(steps)
    else:
        ttft += speculation.prefill_seconds([input_tokens] * batch)
        sampled = contexts[:: max(1, len(contexts) // SPECULATION_CONTEXTS)]
        tpot = sum(speculation.tpot_s(replica, batch, c) for c in sampled) / len(sampled) if sampled else 0.0
        decoding = tpot * len(contexts)
    decode_bound = replica.step([SequenceWork(1, input_tokens + output_tokens // 2)] * batch).bound
    e2e = ttft + decoding
    devices = replica.devices
    return RequestEstimate(
        batch=batch,
        input_tokens=input_tokens,
        output_tokens=output_tokens,
        ttft_s=ttft,
        tpot_s=tpot,
        e2e_s=e2e,
        prefill_bound=prefill_bound,
        decode_bound=decode_bound,
        max_batch_fits=fits,
        kv_capacity_tokens=replica.kv_capacity_tokens,
        devices=devices,
        output_tokens_per_s_per_device=(batch / tpot / devices) if tpot else 0.0,
        total_tokens_per_s_per_device=batch * (input_tokens + output_tokens) / e2e / devices,
        provenance=replica.perf.provenance,
    )
