"""Routing: the registry the plan names policies from (token-weighted join-shortest-queue among
them), policies of your own by dotted path, and each pool's own policy on a disaggregated route."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from hetsim.errors import ScenarioError
from hetsim.sim.engine import WorkQueue
from hetsim.sim.policies import POLICIES, RouterState, least_outstanding_tokens
from hetsim.specs.plan import RoutingPolicy
from hetsim.workload.trace import NodeType, TraceStep
from tests.sim.conftest import llm_pool, plan, trace_frame


def always_last(replicas, prefix_keys, state, hint):
    """A routing policy of your own: every call to the last replica."""
    return len(replicas) - 1


class EveryOther:
    """A policy class of your own: one instance per pool, alternating from the last replica down."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, replicas, prefix_keys, state, hint):
        self.calls += 1
        return (len(replicas) - self.calls) % len(replicas)


def out_of_range(replicas, prefix_keys, state, hint):
    return len(replicas)


def _calls(steps: list[tuple[str, float, int, int]]):
    """LLM calls (name, arrival, prompt, output), far enough apart or not as the test needs."""
    return trace_frame(
        [TraceStep(name, 0, arrival, "chat", NodeType.LLM, model="llama-3-8b", input_tokens=prompt, output_tokens=output)
         for name, arrival, prompt, output in steps]
    )  # fmt: skip


def _routed(routing: str, **pool) -> dict:
    """An LLM pool of llama-3-8b routed by ``routing``."""
    return {**llm_pool(**pool), "routing": routing}


def _split(prefill_routing: str | None = None, decode_routing: str | None = None, decode_replicas: int = 3):
    prefill = {**llm_pool("prefill", stage="prefill")}
    decode = {**llm_pool("decode", stage="decode", replicas=decode_replicas)}
    if prefill_routing:
        prefill["routing"] = prefill_routing
    if decode_routing:
        decode["routing"] = decode_routing
    transfer = {"model": "llama-3-8b", "prefill_pool": "prefill", "decode_pool": "decode", "link": "roce-400"}
    return plan(prefill, decode, kv_transfers=(transfer,))


def test_the_plan_names_the_policies_the_simulator_registers():
    assert set(POLICIES) == {policy.value for policy in RoutingPolicy}


def test_token_weighted_queue_prefers_fewer_outstanding_tokens_then_fewer_calls():
    router = RouterState()
    for _ in range(3):
        router.register()
    router.token_loads[:] = [9000, 300, 300]
    router.loads[:] = [1, 2, 1]
    assert least_outstanding_tokens([None] * 3, (), router) == 2  # equal tokens: fewer calls
    router.token_loads[2] = 301
    assert least_outstanding_tokens([None] * 3, (), router) == 1


def test_non_llm_replicas_carry_no_tokens_so_token_routing_falls_back_to_calls():
    router = RouterState()
    queues = [WorkQueue(1, router) for _ in range(2)]
    queues[0].add_outstanding(1)
    assert router.token_loads == [0, 0] and least_outstanding_tokens(queues, (), router) == 1


def test_token_weighted_routing_sends_calls_away_from_a_replica_busy_with_a_long_one(simulate):
    """One long call on replica 0, then two short ones: counting calls, the third goes back to
    replica 0 (one call each); counting tokens, it joins the short one on replica 1."""
    trace = _calls([("long", 0.0, 6000, 500), ("short1", 0.01, 100, 50), ("short2", 0.02, 100, 50)])
    by_tokens = simulate(plan(_routed("least-outstanding-tokens", replicas=2)), trace)["llm_calls"]
    by_calls = simulate(plan(_routed("least-outstanding", replicas=2)), trace)["llm_calls"]
    assert by_tokens.set_index("session_id")["replica"].to_dict() == {"long": 0, "short1": 1, "short2": 1}
    assert by_calls.set_index("session_id")["replica"].to_dict() == {"long": 0, "short1": 1, "short2": 0}


def test_a_routing_policy_of_your_own_is_named_by_dotted_path(simulate):
    trace = _calls([(f"c{i}", i * 0.01, 200, 20) for i in range(6)])
    replicas = simulate(plan(_routed(f"{__name__}:always_last", replicas=3)), trace)["llm_calls"]["replica"]
    assert set(replicas) == {2}
    alternating = simulate(plan(_routed(f"{__name__}:EveryOther", replicas=3)), trace)["llm_calls"]
    assert alternating.sort_values("arrival_s")["replica"].tolist() == [2, 1, 0, 2, 1, 0]


def test_the_decode_pool_routes_by_its_own_policy(simulate):
    """Calls far apart, so every replica is idle when the next arrives: least-outstanding (the
    prefill pool's policy) would always pick decode replica 0; the decode pool's round robin
    and a policy of your own are what place them."""
    trace = _calls([(f"c{i}", float(i), 300, 20) for i in range(6)])
    round_robin = simulate(_split(decode_routing="round-robin"), trace)["llm_calls"].sort_values("arrival_s")
    assert round_robin["decode_replica"].tolist() == [0, 1, 2, 0, 1, 2]
    assert round_robin["replica"].tolist() == [0] * 6
    own = simulate(_split(prefill_routing="round-robin", decode_routing=f"{__name__}:always_last"), trace)["llm_calls"]
    assert set(own["decode_replica"]) == {2}
    default = simulate(_split(prefill_routing="round-robin"), trace)["llm_calls"]
    assert set(default["decode_replica"]) == {0}  # the decode pool's default, not the prefill pool's round robin


def test_a_policy_of_yours_that_answers_out_of_range_is_named_in_one_line(simulate):
    trace = _calls([("c", 0.0, 200, 20)])
    with pytest.raises(
        ScenarioError, match=r"routing policy '.*:out_of_range': expected a replica index from 0 to 1, got 2"
    ):
        simulate(plan(_routed(f"{__name__}:out_of_range", replicas=2)), trace)


def test_a_policy_path_that_does_not_resolve_fails_before_the_run_naming_the_pool(simulate):
    trace = _calls([("c", 0.0, 200, 20)])
    with pytest.raises(
        ScenarioError, match=r"plan pool 'decode': routing policy 'nowhere:policy': expected an importable"
    ):
        simulate(_split(decode_routing="nowhere:policy"), trace)
    with pytest.raises(ScenarioError, match=r"plan pool 'llm': routing policy '.*:POLICIES': expected a function"):
        simulate(plan(_routed("hetsim.sim.policies:POLICIES")), trace)


def test_the_plan_refuses_a_routing_that_is_neither_a_policy_nor_a_dotted_path():
    with pytest.raises(
        ValidationError, match=r"routing\n.*expected one of round-robin, .*adapter-affinity or a dotted path"
    ):
        plan(_routed("fastest"))
    assert plan(_routed("my.module:policy")).pools[0].routing == "my.module:policy"
