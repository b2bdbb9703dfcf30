"""Speculative decoding: a proposer drafts ``k`` tokens, the target model verifies them in one
wider decode step, and the accepted ones are emitted together.

Each decode iteration of a sequence then costs
  * the verification: a target step in which every sequence computes k + 1 tokens (the last
    accepted token and the k drafts) over its cached context, priced by the performance model;
  * the drafting: k sequential decode steps of the proposer at the same batch, priced by the
    performance model on its own model:
      - ``draft``: a smaller model of the same family (its catalog entry, same devices and split);
      - ``eagle``: an EAGLE-style head, one decoder layer of the target's width with the target's
        embedding and LM head (EAGLE, arXiv 2401.15077; EAGLE-3, arXiv 2503.01840);
      - ``mtp``: a multi-token-prediction module, one of the target's own layers (MoE where the
        target's are) with its shared embedding and head (DeepSeek-V3, arXiv 2412.19437 section 2.2);
      - ``ngram``: prompt lookup on the host CPU (no device time);
and yields E = (1 - a^(k+1)) / (1 - a) tokens on average, with a the per-token acceptance rate
(proposals accepted independently; Leviathan et al., arXiv 2211.17192, eq. 1). The prompt is also
prefilled through the proposer (its one layer, or the draft model). At batch 1 decode is
memory-bound, so verifying k + 1 tokens costs about one step and speculation speeds decode by
about E over the drafting's share; at large batch the step is compute-bound, the verification
costs up to k + 1 steps, and the speed-up shrinks and can invert.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from enum import StrEnum
from functools import cached_property

from hetsim.errors import EstimateError
from hetsim.perf.llm import LlmReplica
from hetsim.perf.roofline import DevicePerf
from hetsim.perf.transformer import SequenceWork, parameter_count
from hetsim.specs.model import ModelSpec
from hetsim.specs.plan import MTP_ACCEPTANCE_RATE_DEFAULT, SpeculationSpec


class SpecMethod(StrEnum):
    DRAFT = "draft"
    EAGLE = "eagle"
    MTP = "mtp"
    NGRAM = "ngram"


MTP_ACCEPTANCE_RATE = MTP_ACCEPTANCE_RATE_DEFAULT
"""DeepSeek-V3's measured acceptance of its MTP module's second token: "between 85% and 90%
across various generation topics" (arXiv 2412.19437, section 5.4.3); the lower end."""


def expected_tokens(proposed: int, acceptance_rate: float) -> float:
    """Tokens a verification step yields on average: the accepted run of the ``proposed`` drafts
    plus the target's own next token (1 when nothing is accepted, ``proposed + 1`` when all are)."""
    if proposed < 1 or not 0.0 <= acceptance_rate <= 1.0:
        raise EstimateError(f"speculation: expected tokens >= 1 and an acceptance rate in [0, 1], got {proposed} and "
                            f"{acceptance_rate}")  # fmt: skip
    if acceptance_rate >= 1.0:
        return float(proposed + 1)
    return (1.0 - acceptance_rate ** (proposed + 1)) / (1.0 - acceptance_rate)


def burst_tokens(yield_per_step: float, iteration: int, iterations: int) -> int:
    """Tokens a sequence of yield E emits in the replica's ``iterations`` from ``iteration`` on
    (0-based): ``floor((i + n) E) - floor(i E)``, E per iteration on average as bursts of floor(E)
    or ceil(E), deterministic, and the same summed over any split of the iterations."""
    return math.floor((iteration + iterations) * yield_per_step) - math.floor(iteration * yield_per_step)


def mixed_yield(proposed: int, acceptance_rate: float, call_rates: tuple[tuple[float, float], ...] = ()) -> float:
    """Tokens an iteration yields per decoding sequence on average when calls accept at their
    own rates: ``call_rates`` (rate, share of the output tokens decoded at it); the rest at
    ``acceptance_rate``. A call of yield E stays in the batch for its tokens / E iterations, so
    over the batch's slots the yield is the token-weighted harmonic mean of the calls' E."""
    rest = 1.0 - sum(share for _, share in call_rates)
    iterations_per_token = max(rest, 0.0) / expected_tokens(proposed, acceptance_rate)
    for rate, share in call_rates:
        iterations_per_token += share / expected_tokens(proposed, rate)
    return 1.0 / iterations_per_token if iterations_per_token > 0 else expected_tokens(proposed, acceptance_rate)


def head_model(target: ModelSpec) -> ModelSpec:
    """An EAGLE head or MTP module as a model: one decoder layer of the target's (MoE where the
    target's later layers are), with the target's embedding and LM head."""
    arch = target.architecture
    if arch is None:
        raise EstimateError(f"speculation: {target.name} has no architecture to build a draft head from")
    one = arch.model_copy(update={"num_layers": 1, "first_dense_layers": 0,
                                  "sliding_window_layers": min(arch.sliding_window_layers, 1)})  # fmt: skip
    return target.model_copy(update={"name": f"{target.name}-head", "architecture": one,
                                     "parameters": target.parameters / arch.num_layers})  # fmt: skip


@dataclass(frozen=True)
class Speculation:
    """How a replica speculates: ``method``, ``tokens`` proposed per step, their per-token
    ``acceptance_rate``, and (method ``draft``) the draft model's replica (``proposer``: the
    replica that drafts, built by :func:`speculation_for`; None for n-gram lookup)."""

    method: SpecMethod
    tokens: int
    acceptance_rate: float
    proposer: LlmReplica | None

    @cached_property
    def tokens_per_step(self) -> float:
        return expected_tokens(self.tokens, self.acceptance_rate)

    def prefill_seconds(self, prompts: list[int]) -> float:
        """The proposer's prefill of the prompts (it needs their context too)."""
        if self.proposer is None:
            return 0.0
        return self.proposer.step_seconds([SequenceWork(p, 0) for p in prompts])

    def iteration_seconds(self, target: LlmReplica, batch: int, context: int) -> float:
        """One speculative iteration of ``batch`` sequences at ``context``: verification + drafting
        (``SpeculativeSteps.iteration_s``, what the simulator prices)."""
        seen = list(target.decode_seen([max(context, 1)] * batch))
        return SpeculativeSteps(target, self).iteration_s(batch, seen, [])

    def tpot_s(self, target: LlmReplica, batch: int, context: int) -> float:
        """Mean time between a sequence's output tokens: an iteration over the tokens it yields."""
        return self.iteration_seconds(target, batch, context) / self.tokens_per_step


def kernels_only(perf: DevicePerf) -> DevicePerf:
    """``perf`` without the serving engine's overheads: the proposer's drafts run inside the
    target's engine step (one scheduling pass, one sampling) as kernels, so the engine's per-step
    costs are paid once per iteration, by the verification."""
    calibration = perf.calibration
    if calibration is not None and calibration.engine is not None:
        calibration = calibration.model_copy(update={"engine": None})
    return replace(perf, calibration=calibration, default_engine=None, kernels_only_engine=None)


def speculation_for(target: LlmReplica, method: SpecMethod, tokens: int, acceptance_rate: float,
                    draft: ModelSpec | None = None) -> Speculation:  # fmt: skip
    """The speculation of ``target`` by ``method``, its proposer built on the target's devices
    and split (a draft model must be given for ``draft``, and only then)."""
    expected_tokens(tokens, acceptance_rate)  # checks the numbers
    if (method == SpecMethod.DRAFT) != (draft is not None):
        raise EstimateError(f"speculation: a draft model goes with method 'draft' only, got method {method.value!r} "
                            f"and draft {draft.name if draft else None!r}")  # fmt: skip
    if method == SpecMethod.NGRAM:
        return Speculation(method, tokens, acceptance_rate, None)
    proposer_model = draft if draft is not None else head_model(target.model)
    shard = replace(target.shard, pp=1)  # a head is one layer; a draft model is small enough for one stage
    proposer = LlmReplica(proposer_model, kernels_only(target.perf), shard, target.precision, target.limits, target.moe)
    return Speculation(method, tokens, acceptance_rate, proposer)


def with_proposer(target: LlmReplica, speculation: Speculation) -> LlmReplica:
    """``target`` with its proposer's weights and KV cache in its memory (they come out of its
    KV cache: ``LlmReplica.kv_capacity_tokens`` and ``max_batch`` count them); ``target``
    itself when the proposer is a prompt lookup on the host."""
    proposer = speculation.proposer
    if proposer is None:
        return target
    limits = replace(target.limits, proposer_bytes_per_device=proposer_weight_bytes_per_device(speculation),
                     proposer_kv_bytes_per_token_per_device=proposer.kv_bytes_per_token_per_device)  # fmt: skip
    return replace(target, limits=limits)


def proposer_weight_bytes_per_device(speculation: Speculation) -> float:
    """Device memory the proposer's weights take beside the target's: a draft model's whole
    weights; an EAGLE head's or MTP module's one layer only (they share the target's embedding
    and LM head: EAGLE, arXiv 2401.15077 section 4; DeepSeek-V3, arXiv 2412.19437 section 2.2)."""
    proposer = speculation.proposer
    if proposer is None:
        return 0.0
    if speculation.method == SpecMethod.DRAFT:
        return proposer.weight_bytes_per_device
    counts = parameter_count(proposer.arch)
    shared = (counts["embedding"] + counts["lm_head"]) / proposer.shard.tp
    return proposer.weight_bytes_per_device - shared * proposer.precision.weights.bytes_per_element


class SpeculativeSteps:
    """A replica's speculative iterations as the simulator runs them.

    Every decoding sequence of an iteration verifies ``tokens + 1`` queries and the proposer
    drafts ``tokens`` for it; the iteration emits a burst of accepted tokens that follows the
    expected yield E exactly over time: iteration ``i`` of the replica emits
    ``floor((i + 1) E) - floor(i E)`` tokens (``burst``; each call gets E tokens per iteration
    on average, as bursts of floor(E) or ceil(E)). A call that names its own acceptance rate
    (a trace's ``acceptance_rate``, a workload node's) takes the bursts of its own E
    (``hetsim.sim.decode_set.SpeculativeDecodeSet``); the others the replica's.
    Deterministic and the same in the per-iteration reference and in event skipping; within
    one rate, acceptance is the mean's (a call's own acceptance varies around it).

    An iteration's time is the verification plus the drafting (``iteration_s``), both priced by
    the performance model; the proposer's memory is the replica's (``with_proposer``).
    """

    def __init__(self, target: LlmReplica, speculation: Speculation) -> None:
        self.speculation = speculation
        self.yield_per_step = speculation.tokens_per_step
        self.queries = speculation.tokens + 1
        self.drafts = speculation.tokens
        self._target = target.pricer
        proposer = speculation.proposer
        self._proposer = proposer.pricer if proposer is not None else None
        # The proposer's attention groups read the keys of the target's group of the same window.
        target_windows = [window for _, window in target._attention_params[3]]
        self._seen_of: list[int] = []
        self._grows: list[bool] = []  # a window's keys stop growing once the members reach it: kept constant
        if proposer is not None:
            for _, window in proposer._attention_params[3]:
                self._grows.append(window is None)
                if window not in target_windows:
                    raise EstimateError(f"speculation: the proposer {proposer.model.name} attends over a window of "
                                        f"{window} tokens, which {target.model.name} has not; choose a draft of its family")  # fmt: skip
                self._seen_of.append(target_windows.index(window))

    def burst(self, iteration: int) -> int:
        """Tokens every decoding sequence emits in the replica's ``iteration`` (0-based)."""
        return burst_tokens(self.yield_per_step, iteration, 1)

    def iteration_s(self, decodes: int, seen: list[float], chunks: list[tuple[int, int]]) -> float:
        """One iteration: the target verifies ``decodes`` sequences (keys ``seen`` per attention
        group, as one-token decodes read them) and computes prefill ``chunks``; the proposer
        drafts ``tokens`` steps for the decodes in sequence (its first step also prefills the
        chunks: it needs their context too)."""
        seconds = self._target.verify_step_seconds_of(decodes, seen, chunks, self.queries if decodes else 1)
        proposer = self._proposer
        if proposer is None:
            return seconds
        draft_seen = [seen[g] if decodes else 0.0 for g in self._seen_of]
        for step in range(self.drafts if decodes else 1):
            seconds += proposer.step_seconds_of(decodes, draft_seen, chunks if step == 0 else [])
            draft_seen = [keys + decodes if grows else keys for keys, grows in zip(draft_seen, self._grows, strict=True)]
        return seconds


def speculating(target: LlmReplica, spec: SpeculationSpec, draft: ModelSpec | None) -> tuple[LlmReplica, SpeculativeSteps]:
    """A plan's ``spec`` on ``target`` (``draft``: the draft model's spec, method draft): the
    replica with its proposer's memory (``with_proposer``) and its speculative iterations.

    Raises:
        EstimateError: the proposer does not fit beside the model, or cannot read its keys.
    """
    speculation = speculation_for(target, SpecMethod(spec.method), spec.proposed, spec.rate, draft)
    replica = with_proposer(target, speculation)
    _ = replica.kv_capacity_tokens  # raises when the two leave no KV cache
    return replica, SpeculativeSteps(replica, speculation)
