"""The paper's worked example (arXiv 2507.19635 §3.1, Table 3; paper.md E1/E2), as the study
builds it (:mod:`hetsim.study.worked_example`), solved by the planner's solver.

Prefill and decode of one request (1000 input, 500 output tokens) each go to a
high-performance (HP) or cost-optimised (CO) device; a KV transfer (10 ms, $0.000005 per
prefill token) applies when they differ; T_SLA = 120 ms, inclusive.
"""

import pytest

from hetsim.errors import InfeasiblePlanError
from hetsim.study.worked_example import TABLE_3, evaluate, price_option, problem, solve_example


def test_e1_option_b_hp_prefill_co_decode_at_120ms_and_0_095():
    chosen = solve_example(problem())
    assert (chosen.label, chosen.usd, chosen.latency_s) == ("HP::CO", pytest.approx(0.095), pytest.approx(0.120))


def test_e1_each_option_is_priced_from_table_3_on_its_own():
    options = evaluate().options
    assert {name: (o.label, round(o.latency_s, 3), round(o.usd, 3)) for name, o in options.items()} == {
        "A": ("HP::HP", 0.105, 0.110), "B": ("HP::CO", 0.120, 0.095), "C": ("CO::CO", 0.160, 0.060),
    }  # fmt: skip
    assert price_option(TABLE_3, "CO", "HP").usd == pytest.approx(1000 * 0.00005 + 500 * 0.00006 + 1000 * 0.000005)


def test_e2_sla_of_105ms_leaves_only_option_a():
    chosen = solve_example(problem(sla_s=0.105))
    assert (chosen.label, chosen.usd) == ("HP::HP", pytest.approx(0.110))


def test_e2_sla_of_160ms_or_more_makes_option_c_optimal_at_0_06_not_the_printed_0_07():
    chosen = solve_example(problem(sla_s=0.160))
    assert (chosen.label, chosen.usd) == ("CO::CO", pytest.approx(0.06))  # the paper prints $0.07, an arithmetic slip


def test_e2_sla_below_every_option_is_infeasible():
    with pytest.raises(InfeasiblePlanError):
        solve_example(problem(sla_s=0.100))
