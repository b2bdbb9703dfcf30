"""LLM calls from SimPy processes of your own: agents written as SimPy code against the plan.

``Simulation.llm_call(model, prompt_tokens, output_tokens)`` sends a call to the model's pools
(routed, scheduled, disaggregated, prefix-cached as the trace's calls are) and returns a SimPy
event; a process that yields it resumes when the call is over, with its ``LlmCallRecord``::

    sim = agent_simulation("plan.yaml")          # hetsim.api.agents
    env = sim.env

    def agent(env):
        plan = yield sim.llm_call("llama-3-8b", prompt_tokens=900, output_tokens=120)
        yield env.timeout(2.0)                   # a tool runs
        answer = yield sim.llm_call("llama-3-8b", 1300, 80, continues=plan)
        print(answer.ttft_s, answer.done_s)

    env.process(agent(env))
    sim.run()

A dropped call (too long for the replica) resumes the process too, with ``status`` "dropped"
and the reason: the process decides what to do. The records are also kept, in the order the
calls finished, in ``sim.process_calls``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Final

_BLOCK_BITS: Final = 24  # as a trace's synthetic keys: call << 24 | block


@dataclass(frozen=True)
class LlmCallRecord:
    """One finished LLM call of a process: where it ran, when, and what it cost."""

    call_id: int
    model: str
    pool: str
    replica: int
    decode_pool: str  # disaggregated: the decode pool ("" otherwise)
    decode_replica: int
    prompt_tokens: int
    output_tokens: int
    cached_tokens: int  # prompt tokens found in the prefix cache
    preemptions: int
    issued_s: float  # when the process issued it
    admitted_s: float
    first_token_s: float
    done_s: float  # its last token (or when it was dropped)
    kv_transfer_s: float
    tbt_max_s: float  # its longest gap between two output tokens
    status: str  # "completed" or "dropped"
    reason: str
    prefix_keys: tuple = field(default=(), repr=False)  # its prompt's prefix-block keys
    adapter: str | None = None  # the LoRA adapter it named
    adapter_loaded: bool = False  # whether its adapter was loaded for it (absent from the replica)
    adapter_wait_s: float = 0.0  # how long it waited for its adapter's slot and load

    @property
    def is_completed(self) -> bool:
        return self.status == "completed"

    @property
    def ttft_s(self) -> float:
        """Time to first token, from when the process issued the call."""
        return self.first_token_s - self.issued_s

    @property
    def latency_s(self) -> float:
        """From issue to the last token."""
        return self.done_s - self.issued_s


def prompt_keys(call_id: int, prompt_tokens: int, block_tokens: int, continues: LlmCallRecord | None) -> tuple:
    """The prefix-block keys of a process's prompt: those of the call it ``continues`` (its
    prompt and output are this prompt's beginning; the full blocks of them that call's prompt
    held), then keys of its own. Its own keys are negative, so they never equal a trace's."""
    blocks = -(-prompt_tokens // block_tokens)
    earlier: tuple = ()
    reused = 0
    if continues is not None:
        earlier = continues.prefix_keys
        shared = (continues.prompt_tokens + continues.output_tokens) // block_tokens
        reused = min(shared, len(earlier), blocks)
    base = -((call_id + 1) << _BLOCK_BITS)
    return earlier[:reused] + tuple(base - block for block in range(reused, blocks))
