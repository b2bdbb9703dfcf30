"""The planner weighs speculative decoding against none, per model, where the fleet allows it."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from hetsim.api.plan import plan_fleet
from hetsim.errors import InfeasiblePlanError
from hetsim.perf.speculative import expected_tokens, mixed_yield
from hetsim.plan.build import _merge
from hetsim.plan.candidates import decode_options
from hetsim.specs.plan import SpeculationSpec
from tests.conftest import write_fleet

EAGLE = {"model": "llama-3-8b", "method": "eagle", "tokens": 3, "acceptance_rate": 0.8}


def _fleet(folder: Path, speculation: list[dict], sla: dict | None = None) -> Path:
    demand = {"workload": "chat", "rate_per_s": 4.0, **({"sla": sla} if sla else {})}
    return write_fleet(folder, "t", [{"node": "l4-8-pcie", "max_count": 8}], [demand],
                       {"sample_sessions": 300, "verify_duration_s": 30, "verify_rounds": 0, "speculation": speculation},
                       tco="paper")  # fmt: skip


def _llm_pools(result):
    return [pool for pool in result.plan.pools if pool.llm is not None]


def test_the_planner_chooses_speculation_where_it_serves_the_demand_for_less(tmp_path):
    """Chat with a 4 s end-to-end objective on L4s: without speculation a call's 200-odd tokens
    need a short batch on many devices; EAGLE's ~2.95 tokens per step let fewer devices meet it."""
    plain = plan_fleet(_fleet(tmp_path, [], {"e2e_s": 4.0}), verify=False)
    chosen = plan_fleet(_fleet(tmp_path, [EAGLE], {"e2e_s": 4.0}), verify=False)
    speculating = [pool for pool in _llm_pools(chosen) if pool.llm.speculation is not None]
    assert speculating and all(pool.llm.stage.value in ("decode", "aggregated") for pool in speculating)
    spec = speculating[0].llm.speculation
    assert (spec.method, spec.tokens, spec.acceptance_rate) == ("eagle", 3, 0.8)
    assert chosen.solution.objective < plain.solution.objective
    assert all(pool.llm.speculation is None for pool in _llm_pools(plain))


def test_speculative_options_are_priced_by_tokens_per_step_and_their_wider_steps(tmp_path):
    """At batch 1 an option's capacity grows with the yield; its token gap is a whole iteration
    (verification and drafting), longer than a plain step."""
    result = plan_fleet(_fleet(tmp_path, [EAGLE]), verify=False)
    key = next(s.name for s in result.problem.stages if s.name.endswith(":decode")).rsplit(":", 1)[0]
    merged = _merge(result.workloads)[key]
    models = result.context["models"]
    targets = replace(merged.targets(result.context["headroom"], result.fleet), speculation=((SpeculationSpec(
        method="eagle", tokens=3, acceptance_rate=0.8), None),))  # fmt: skip
    options = decode_options(models.model(merged.model), list(result.context["perfs"].values()), merged.mean_demand(key), targets)
    by_key = {option.key: option for option in options}
    pairs = [(k, k.replace(" eagle3 b1 ", " b1 ")) for k in by_key if " eagle3 b1 " in k]
    assert pairs and all(plain in by_key for _, plain in pairs)
    for speculative, plain in pairs:
        s, p = by_key[speculative], by_key[plain]
        assert s.detail["speculation"] == {"method": "eagle", "tokens": 3, "acceptance_rate": 0.8}
        assert s.detail["tbt_s"] > p.detail["tbt_s"]  # an iteration's gap
        assert 1.8 < s.capacity_per_replica / p.capacity_per_replica < expected_tokens(3, 0.8)  # E over the drafting's cost


def test_speculation_that_accepts_little_is_not_chosen_without_a_latency_objective(tmp_path):
    poor = {**EAGLE, "tokens": 5, "acceptance_rate": 0.2}
    result = plan_fleet(_fleet(tmp_path, [poor]), verify=False)
    assert all(pool.llm.speculation is None for pool in _llm_pools(result))


def test_a_speculation_choice_for_a_model_nobody_calls_is_refused_in_one_line(tmp_path):
    with pytest.raises(InfeasiblePlanError, match=r"options.speculation\[0\].model: expected one of the LLMs .*llama-3-8b.*got 'llama-3-70b'"):
        plan_fleet(_fleet(tmp_path, [{**EAGLE, "model": "llama-3-70b"}]), verify=False)


def test_an_unknown_draft_model_is_refused_in_one_line(tmp_path):
    draft = {"model": "llama-3-8b", "method": "draft", "tokens": 3, "acceptance_rate": 0.7, "draft_model": "no-such"}
    with pytest.raises(InfeasiblePlanError, match=r"options.speculation\[0\].draft_model: .*no-such"):
        plan_fleet(_fleet(tmp_path, [draft]), verify=False)


def test_calls_that_name_their_acceptance_rate_price_the_option_at_their_rates(tmp_path):
    """A stage whose calls all name rate 0.2 prices an EAGLE choice of rate 0.8 exactly as a
    choice of rate 0.2 for calls naming none; a half-and-half mix between the two."""
    result = plan_fleet(_fleet(tmp_path, [EAGLE]), verify=False)
    key = next(s.name for s in result.problem.stages if s.name.endswith(":decode")).rsplit(":", 1)[0]
    merged = _merge(result.workloads)[key]
    models, perfs = result.context["models"], list(result.context["perfs"].values())

    def capacities(rate: float, call_rates: tuple) -> dict[str, float]:
        choice = SpeculationSpec(method="eagle", tokens=3, acceptance_rate=rate)
        targets = replace(merged.targets(result.context["headroom"], result.fleet), speculation=((choice, None),))
        demand = replace(merged.mean_demand(key), acceptance_rates=call_rates)
        options = decode_options(models.model(merged.model), perfs, demand, targets)
        return {o.key: o.capacity_per_replica for o in options if " eagle3 " in o.key}

    low_calls, low_pool = capacities(0.8, ((0.2, 1.0),)), capacities(0.2, ())
    assert low_calls and low_calls == low_pool
    high = capacities(0.8, ())
    mixed = capacities(0.8, ((0.2, 0.5),))
    assert all(low_pool[k] < mixed[k] < high[k] for k in high)
    assert all(mixed[k] / high[k] == pytest.approx(mixed_yield(3, 0.8, ((0.2, 0.5),)) / expected_tokens(3, 0.8), rel=1e-12)
               for k in high)  # fmt: skip


def test_the_mixed_yield_is_the_token_weighted_harmonic_mean_of_the_calls_yields():
    e_high, e_low = expected_tokens(3, 0.9), expected_tokens(3, 0.1)
    assert mixed_yield(3, 0.9) == e_high
    assert mixed_yield(3, 0.5, ((0.9, 1.0),)) == pytest.approx(e_high, rel=1e-12)
    assert mixed_yield(3, 0.9, ((0.1, 0.25),)) == pytest.approx(1 / (0.75 / e_high + 0.25 / e_low), rel=1e-12)


def test_a_speculative_option_says_the_tokens_an_iteration_yields_over_its_calls(tmp_path):
    result = plan_fleet(_fleet(tmp_path, [EAGLE]), verify=False)
    key = next(s.name for s in result.problem.stages if s.name.endswith(":decode")).rsplit(":", 1)[0]
    merged = _merge(result.workloads)[key]
    targets = replace(merged.targets(result.context["headroom"], result.fleet), speculation=((SpeculationSpec(
        method="eagle", tokens=3, acceptance_rate=0.8), None),))  # fmt: skip
    demand = replace(merged.mean_demand(key), acceptance_rates=((0.5, 0.4),))
    options = decode_options(result.context["models"].model(merged.model), list(result.context["perfs"].values()), demand, targets)
    speculative = [o for o in options if "speculation" in o.detail]
    assert speculative and all("tokens_per_iteration" not in o.detail for o in options if "speculation" not in o.detail)
    assert {o.detail["tokens_per_iteration"] for o in speculative} == {mixed_yield(3, 0.8, ((0.5, 0.4),))}
