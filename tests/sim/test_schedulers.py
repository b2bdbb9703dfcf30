"""Iteration schedulers: the engines' policies, and yours by dotted path.

Each policy decides only what an iteration computes; the server's bookkeeping (KV blocks, token
gaps, event skipping) is shared, so skipping decode runs changes no record for any policy, and
the token gaps of every replica add up to its calls' time from first to last token.
"""

from __future__ import annotations

from collections import deque

import pandas as pd
import pytest
from pydantic import ValidationError

from hetsim.errors import ScenarioError
from hetsim.sim.scheduler import SCHEDULERS, ChunkedPrefill
from hetsim.specs.plan import SCHEDULERS as SCHEDULER_NAMES
from hetsim.workload.trace import NodeType, TraceStep
from tests.sim.conftest import llm_pool, plan, poisson_llm_trace, trace_frame

CALL_COLUMNS = [
    "first_token_s",
    "done_s",
    "admitted_s",
    "tbt_max_s",
    "stall_max_s",
    "preemptions",
    "cached_tokens",
    "replica",
]


class ShortestPromptFirst:
    """A scheduler of your own: vLLM's chunked prefill, the shortest queued prompt admitted first
    (composed with the built-in one, not subclassed: compiled, it is a native class)."""

    def __init__(self) -> None:
        self.inner = ChunkedPrefill()

    def schedule(self, server, now):
        if len(server.waiting) > 1:
            server.waiting = deque(sorted(server.waiting, key=lambda state: state.call.prompt_tokens))
        return self.inner.schedule(server, now)


class OneTokenTooMany:
    """A broken scheduler: asks for one more prompt token than it took KV blocks for."""

    def __init__(self) -> None:
        self.inner = ChunkedPrefill()

    def schedule(self, server, now):
        chunks, decoding = self.inner.schedule(server, now)
        return [(state, take + 1) for state, take in chunks], decoding


class ReturnsNothing:
    def schedule(self, server, now):
        return None


OWN = f"{__name__}:ShortestPromptFirst"


def _calls(frames) -> pd.DataFrame:
    return frames["llm_calls"].set_index("session_id")


def _gap_total(frames) -> float:
    gaps = frames["token_gaps"]
    return float((gaps["gap_s"] * gaps["count"]).sum())


def _decode_time(frames) -> float:
    calls = frames["llm_calls"]
    done = calls[calls.status == "completed"]
    return float((done["done_s"] - done["first_token_s"]).sum())


def test_the_plan_names_the_schedulers_the_simulator_ships():
    assert tuple(SCHEDULERS) == SCHEDULER_NAMES


@pytest.mark.parametrize("scheduler", [*SCHEDULER_NAMES, OWN])
@pytest.mark.parametrize("preemption", ["recompute", "swap"])
def test_skipping_decode_runs_changes_no_record_for_any_scheduler(simulate, rng, scheduler, preemption):
    """Small KV memory: admissions, preemptions and holds all happen; the fast mode (decode runs
    priced at once) and the per-iteration reference agree on every call and every step."""
    trace = poisson_llm_trace(rng, 300, rate=30.0)
    the_plan = plan(llm_pool(replicas=2, memory_utilization=0.25, preemption=preemption, max_num_seqs=64,
                             scheduler=scheduler))  # fmt: skip
    fast, slow = simulate(the_plan, trace), simulate(the_plan, trace, max_skip=1)
    pd.testing.assert_frame_equal(
        fast["llm_calls"][CALL_COLUMNS], slow["llm_calls"][CALL_COLUMNS], rtol=1e-9, atol=1e-9
    )
    pd.testing.assert_frame_equal(fast["steps"], slow["steps"], rtol=1e-9)
    assert fast["replicas"]["steps"].sum() == slow["replicas"]["steps"].sum()
    assert fast["replicas"]["events"].sum() < slow["replicas"]["events"].sum()
    assert (fast["llm_calls"].status == "completed").all()
    assert _gap_total(fast) == pytest.approx(_gap_total(slow), rel=1e-9)


@pytest.mark.parametrize("scheduler", SCHEDULER_NAMES)
def test_token_gaps_add_up_to_each_calls_time_from_first_to_last_token(simulate, rng, scheduler):
    """Every output token after the first has one gap, so a replica's gaps sum to its calls'
    decode time: held decoders (prefill-first), stalls and preemptions included."""
    trace = poisson_llm_trace(rng, 200, rate=40.0)
    frames = simulate(plan(llm_pool(memory_utilization=0.25, scheduler=scheduler)), trace)
    assert _gap_total(frames) == pytest.approx(_decode_time(frames), rel=1e-9)
    assert frames["token_gaps"]["count"].sum() == (frames["llm_calls"]["output_tokens"] - 1).sum()


def _decoding_then_a_long_prompt() -> pd.DataFrame:
    """A call decoding when a long prompt arrives."""
    return trace_frame(
        [
            TraceStep("a", 0, 0.0, "chat", NodeType.LLM, model="llama-3-8b", input_tokens=1000, output_tokens=400),
            TraceStep("b", 0, 1.0, "chat", NodeType.LLM, model="llama-3-8b", input_tokens=6000, output_tokens=10),
        ]
    )


def test_prefill_first_holds_decoding_sequences_for_a_prefill_only_batch(simulate):
    trace = _decoding_then_a_long_prompt()
    held = _calls(simulate(plan(llm_pool(scheduler="prefill-first")), trace))
    mixed = _calls(simulate(plan(llm_pool()), trace))
    prefill_alone = held.loc["b", "first_token_s"] - held.loc["b", "admitted_s"]
    mixed_step = mixed.loc["b", "first_token_s"] - mixed.loc["b", "admitted_s"]
    assert prefill_alone < mixed_step  # the prompt ran without the decode beside it: an earlier first token
    # a's next token waited for the whole prefill and then its own decode step
    assert held.loc["a", "tbt_max_s"] > prefill_alone
    assert held.loc["a", "tbt_max_s"] > mixed.loc["a", "tbt_max_s"]


def test_decode_priority_keeps_token_gaps_short_under_its_token_budget(simulate):
    trace = _decoding_then_a_long_prompt()
    budgeted = _calls(simulate(plan(llm_pool(scheduler="decode-priority", token_budget=256)), trace))
    chunked = _calls(simulate(plan(llm_pool()), trace))
    # vLLM's 8192-token chunk holds a's next token for the whole prompt; 255 prompt tokens a step do not
    assert budgeted.loc["a", "tbt_max_s"] < chunked.loc["a", "tbt_max_s"] / 3
    assert budgeted.loc["b", "ttft_s"] > chunked.loc["b", "ttft_s"]  # the prompt takes 24 steps instead of one


def test_a_scheduler_of_your_own_is_named_by_dotted_path(simulate):
    """One sequence at a time and four prompts at once: yours admits the shortest first."""
    lengths = {"p4000": 4000, "p3000": 3000, "p2000": 2000, "p1000": 1000}
    trace = trace_frame(
        [TraceStep(name, 0, 0.0, "chat", NodeType.LLM, model="llama-3-8b", input_tokens=tokens, output_tokens=20)
         for name, tokens in lengths.items()]
    )  # fmt: skip
    own = _calls(simulate(plan(llm_pool(max_num_seqs=1, scheduler=OWN)), trace))
    default = _calls(simulate(plan(llm_pool(max_num_seqs=1)), trace))
    assert list(own.sort_values("admitted_s").index) == ["p1000", "p2000", "p3000", "p4000"]
    assert list(default.sort_values("admitted_s").index) == list(lengths)


def test_a_scheduler_of_yours_that_breaks_the_contract_is_named_in_one_line(simulate, rng):
    trace = poisson_llm_trace(rng, 5, rate=10.0)
    with pytest.raises(
        ScenarioError,
        match=r"scheduler '.*:OneTokenTooMany': chunk of call \d+: expected 1 to \d+ tokens with their KV blocks taken",
    ):
        simulate(plan(llm_pool(scheduler=f"{__name__}:OneTokenTooMany")), trace)
    with pytest.raises(
        ScenarioError, match=r"scheduler '.*:ReturnsNothing': schedule\(\) must return \(chunks, decoding\)"
    ):
        simulate(plan(llm_pool(scheduler=f"{__name__}:ReturnsNothing")), trace)


def test_a_scheduler_path_that_does_not_import_fails_before_the_run_naming_the_pool(simulate, rng):
    trace = poisson_llm_trace(rng, 5, rate=10.0)
    with pytest.raises(
        ScenarioError, match=r"plan pool 'llm': scheduler 'no_such_module:X': expected an importable module"
    ):
        simulate(plan(llm_pool(scheduler="no_such_module:X")), trace)
    with pytest.raises(
        ScenarioError, match=r"plan pool 'llm': scheduler '.*:Missing': expected '.*' to define 'Missing'"
    ):
        simulate(plan(llm_pool(scheduler=f"{__name__}:Missing")), trace)


def test_the_plan_refuses_an_unknown_scheduler_and_a_budget_without_decode_priority():
    with pytest.raises(
        ValidationError, match="expected one of chunked-prefill, prefill-first, decode-priority or a dotted path"
    ):
        plan(llm_pool(scheduler="fastest"))
    with pytest.raises(ValidationError, match="token_budget: expected only with scheduler 'decode-priority'"):
        plan(llm_pool(token_budget=512))
    assert plan(llm_pool()).pools[0].llm.scheduler == "chunked-prefill"
