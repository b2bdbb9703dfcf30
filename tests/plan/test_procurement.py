"""The planner answers the procurement question: what to buy, against which alternatives,
and how robust the answer is (issue 17)."""

import math
from pathlib import Path

import pytest
import yaml

from hetsim.api.baselines import baseline_fleets, plan_baselines
from hetsim.api.plan import new_spend_usd_per_h, plan_fleet, result_frames
from hetsim.api.procurement import bill_of_materials, buyer_sentence, workload_results
from hetsim.api.robustness import FLIP_TOLERANCE, _Resolver, robustness

DEFAULT_FLEET = Path(__file__).resolve().parents[2] / "scenarios" / "fleet.yaml"


@pytest.fixture(scope="module")
def planned():
    return plan_fleet(DEFAULT_FLEET)


def test_the_bill_of_materials_accounts_for_every_node_and_the_whole_fleet_cost(planned):
    bom = bill_of_materials(planned)
    assert list(bom["node"]) == [n.name for n in planned.problem.node_types]
    assert (bom["owned_used"] + bom["owned_idle"] == bom["owned"]).all()
    assert (bom["nodes"] == bom["owned"] + bom["buy"] + bom["rent"]).all()
    assert bom["usd_per_h"].sum() == pytest.approx(planned.cost["total_usd_per_h"], rel=1e-9)
    assert bom["usd_per_month"].sum() == pytest.approx(planned.cost["total_usd_per_h"] * 730, rel=1e-9)
    bought = {r.node: r.buy for r in bom.itertuples() if r.buy}
    assert bought == {k: v for k, v in planned.solution.extra_nodes.items() if v}
    hardware = planned.context["hardware"]
    for row in bom.itertuples():  # capex is the profile's purchase price of what is bought
        assert row.capex_usd == pytest.approx(row.buy * hardware.node(row.node).price.purchase.si)


def test_the_buyer_sentence_names_purchases_kept_nodes_money_and_the_verdict(planned):
    bom = bill_of_materials(planned)
    sentence = buyer_sentence(bom, planned.verification["met"], planned.solution.status)
    for row in bom.itertuples():
        if row.buy:
            assert f"{row.buy} x {row.node}" in sentence
        if row.owned_used:
            assert f"keep the {row.owned_used} x {row.node}" in sentence
    assert f"${bom['capex_usd'].sum():,.0f} capex" in sentence
    assert "meets every SLA in simulation" in sentence
    assert "MISSES" in buyer_sentence(bom, False, "optimal")
    assert "not proven optimal" in buyer_sentence(bom, True, "feasible")


def test_each_workload_is_judged_against_its_own_sla_at_its_own_percentile(planned):
    table = workload_results(planned)
    for workload in planned.workloads:
        rows = table[table["workload"] == workload.name].set_index("objective")
        for objective in ("ttft", "tbt"):
            limit = getattr(workload, f"{objective}_s")
            assert rows.loc[objective, "limit_s"] == limit
            assert rows.loc[objective, "percentile"] == getattr(workload, f"{objective}_percentile")
            assert rows.loc[objective, "met"] == (rows.loc[objective, "value_at_percentile_s"] <= limit)
    shares = table.drop_duplicates("workload")["cost_share_usd_per_h"]
    assert shares.sum() == pytest.approx(planned.cost["total_usd_per_h"], rel=1e-9)  # costs split, none lost


def test_baselines_are_the_owned_only_and_one_homogeneous_fleet_per_purchasable_accelerator(planned):
    names = [fleet.name for fleet, _ in baseline_fleets(planned.fleet, planned.context["hardware"])]
    assert names == ["owned-only", "all-hgx-b200-8", "all-gaudi3-8", "all-mi300x-8"]


def test_the_plan_never_spends_more_than_a_feasible_baseline_and_savings_are_computed_from_both(planned):
    rows = plan_baselines(planned)
    spend = new_spend_usd_per_h(planned)
    for row in rows:
        if row["status"] == "infeasible":
            assert math.isnan(row["savings_usd_per_h"]) and row["note"]
            continue
        # a baseline's fleet is a restriction of the plan's: it cannot be cheaper to buy
        assert row["new_spend_usd_per_h"] >= spend - 1e-6
        assert row["savings_usd_per_h"] == pytest.approx(row["new_spend_usd_per_h"] - spend)
        assert row["savings_share"] == pytest.approx(row["savings_usd_per_h"] / row["new_spend_usd_per_h"])
    frames = result_frames(planned, rows)
    assert list(frames["fleets"]["role"]) == ["plan"] + ["baseline"] * len(rows)


def test_a_vendor_price_change_flips_the_purchase_at_the_reported_point(planned):
    frame = robustness(planned)
    flips = frame[(frame["kind"] == "flip") & frame["dimension"].str.endswith("node prices")]
    assert len(flips), "the default fleet's purchase flips when some vendor's prices move"
    resolver = _Resolver(planned)
    base = resolver.priced(lambda _: 1.0).mix
    for flip in flips.itertuples():
        vendor = flip.dimension.split()[0]
        at = lambda f, v=vendor: resolver.priced(lambda n: f if resolver.vendor[n] == v else 1.0).mix  # noqa: E731
        # the bisection brackets the flip within FLIP_TOLERANCE: just past it, towards 1, the plan holds
        inside = flip.factor + math.copysign(1.05 * FLIP_TOLERANCE * max(flip.factor, 1.0), 1.0 - flip.factor)
        assert at(inside) == base and at(flip.factor) != base


def test_a_fleet_whose_decode_needs_two_device_types_gets_both_and_the_simulation_routes_them(tmp_path):
    fleet = {
        "schema_version": 1, "name": "split", "inventory": [{"node": "hgx-h100-8", "count": 1}],
        "catalog": [{"node": "gaudi3-8", "max_count": 6}, {"node": "cpu-2x-xeon-8480", "max_count": 8}],
        "demand": [{"workload": "rag-chatbot", "rate_per_s": 80, "sla": {"ttft_s": 1.0, "tbt_s": 0.05}}],
        "options": {"verify_duration_s": 20, "verify_rounds": 0, "sample_sessions": 500},
    }  # fmt: skip
    path = tmp_path / "fleet.yaml"
    path.write_text(yaml.safe_dump(fleet))
    result = plan_fleet(path)
    decode = [c for c in result.solution.choices if c.stage.endswith(":decode")]
    assert len({c.option.device for c in decode}) == 2, "decode spans the owned H100s and bought Gaudi 3s"
    fleet["options"]["max_pools_per_stage"] = 1
    path.write_text(yaml.safe_dump(fleet))
    single = plan_fleet(path, verify=False)
    assert single.solution.objective > result.solution.objective  # the split is what makes it cheaper
    shared = [p for p in result.plan.pools if p.llm and p.llm.stage.value == "decode"]
    assert sum(p.weight for p in shared) == pytest.approx(1.0)
    calls = result.verification["frames"]["llm_calls"]
    assert set(calls["decode_pool"]) == {p.name for p in shared}  # both pools served calls


def test_exit_codes_tell_a_missed_sla_and_an_unproven_solve_apart(planned):
    from dataclasses import replace

    from hetsim.api.plan import EXIT_NOT_PROVEN, EXIT_SLA_MISSED, plan_exit_code, solver_verdict

    assert plan_exit_code(planned) == 0
    timed_out = replace(planned, solution=replace(planned.solution, status="feasible", gap=0.034))
    assert plan_exit_code(timed_out) == EXIT_NOT_PROVEN
    verdict = solver_verdict(timed_out)
    assert verdict.startswith("TIME LIMIT") and "gap 3.40%" in verdict and f"${timed_out.solution.objective:,.2f}/h" in verdict
    missed = replace(planned, verification={**planned.verification, "met": False})
    assert plan_exit_code(missed) == EXIT_SLA_MISSED
    assert plan_exit_code(replace(missed, solution=timed_out.solution)) == EXIT_SLA_MISSED  # the SLA comes first


def test_the_cli_exits_non_zero_and_says_time_limit_when_the_solver_stops_without_proof(planned, monkeypatch, tmp_path):
    from dataclasses import replace

    from typer.testing import CliRunner

    import hetsim.cli.plan as cli_plan
    from hetsim.cli import app

    timed_out = replace(planned, solution=replace(planned.solution, status="feasible", gap=0.05))
    monkeypatch.setattr(cli_plan, "plan_fleet", lambda *args, **kwargs: timed_out)
    result = CliRunner().invoke(app, ["plan", "--fleet", str(DEFAULT_FLEET), "--no-baselines", "--no-sensitivity",
                                      "--out", str(tmp_path / "plan.yaml")])  # fmt: skip
    assert result.exit_code == 5, result.output
    assert "TIME LIMIT" in result.output and "not proven optimal" in result.output


def test_the_reports_first_section_answers_what_to_buy_the_cost_the_savings_and_every_verdict(planned):
    from hetsim.report.build import render_report
    from hetsim.report.procurement import buyer_sentence

    frames = result_frames(planned, plan_baselines(planned), robustness(planned))
    extras = {k: frames[k] for k in ("bom", "workloads", "robustness")}
    rendered = render_report(frames["fleets"], frames["placement"], frames["sensitivity"], {"title": "t"}, extras)
    summary = rendered.html.split('<section id="summary">')[1].split("</section>")[0]
    assert buyer_sentence(frames["bom"], True, planned.solution.status) in summary.replace("<strong>", "").replace("</strong>", "")
    for baseline in ("owned-only", "all-hgx-b200-8", "all-gaudi3-8", "all-mi300x-8"):
        assert baseline in summary
    for workload in planned.workloads:
        assert f"<strong>{workload.name}</strong>: TTFT p99" in summary
    assert "flips at x" in summary
    sections = [s.split('"')[0] for s in rendered.html.split('<section id="')[1:]]
    assert sections[:4] == ["summary", "buy", "workloads", "baselines"]
    assert "robustness" in rendered.figures and "robustness" in sections
    assert "## What to buy" in rendered.markdown and "| Node |" in rendered.markdown


def test_simulate_reports_the_plans_cost_as_plan_did_and_the_traffic_weighted_cost_apart(planned, tmp_path):
    from hetsim.api.simulate import SimulateRequest, simulate
    from hetsim.io.plans import write_plan

    write_plan(tmp_path / "plan.yaml", planned.plan)
    (tmp_path / "scenario.yaml").write_text(yaml.safe_dump({
        "schema_version": 1, "name": "check", "plan": "plan.yaml",
        "trace": {"workload": "voice-agent", "rate_per_s": 2.0, "duration_s": 30, "seed": 3},
    }))  # fmt: skip
    cost = simulate(SimulateRequest(tmp_path / "scenario.yaml"))["cost"]
    assert cost["tco"] == planned.fleet.tco  # the plan's preset, not a default
    bom = bill_of_materials(planned)
    if not bom["owned_idle"].sum():  # no idle owned node: the plan's figure is the planner's
        assert cost["fleet_usd_per_h"] == pytest.approx(planned.cost["total_usd_per_h"], rel=1e-9)
    assert cost["planner_usd_per_h"] == pytest.approx(planned.cost["total_usd_per_h"], rel=1e-9)
    assert cost["nodes"] == {name: n for name, n in planned.cost["nodes"].items()}
    assert 0 < cost["traffic_weighted_usd_per_h"] <= cost["pools_usd_per_h"] <= cost["fleet_usd_per_h"] + 1e-9


@pytest.mark.parametrize("budget_kw", [None, "tight", "loose"])
def test_a_site_power_budget_changes_the_purchase_only_when_it_binds_and_says_what_it_costs(planned, tmp_path, budget_kw):
    from hetsim.api.procurement import energy
    from hetsim.errors import InfeasiblePlanError
    from hetsim.plan.explain import least_power_w

    base = energy(planned)
    least_kw = least_power_w(planned.problem) / 1e3
    assert least_kw <= base["provisioned_kw"] + 1e-9 and base["kwh_per_day"] > 0 and base["joules_per_output_token"] > 0
    # the same draw per LLM call and per session (each workload's sessions/s and LLM visits)
    sessions_per_s = sum(w.rate_per_s for w in planned.workloads)
    calls_per_s = sum(w.rate_per_s * d.visits_per_session for w in planned.workloads for d in w.nodes if d.node_type == "llm")
    assert base["joules_per_session"] * sessions_per_s == pytest.approx(base["average_kw"] * 1e3, rel=1e-9)
    assert base["joules_per_llm_call"] * calls_per_s == pytest.approx(base["average_kw"] * 1e3, rel=1e-9)
    if budget_kw is None:  # below the least power any fleet needs: refused, naming that figure
        budget = least_kw - 1.0
    else:
        budget = (least_kw + base["provisioned_kw"]) / 2 if budget_kw == "tight" else base["provisioned_kw"] + 1.0
    fleet = yaml.safe_load(DEFAULT_FLEET.read_text()) | {"site_power_kw": budget}
    fleet["options"] |= {"verify_rounds": 0}
    path = tmp_path / "fleet.yaml"
    path.write_text(yaml.safe_dump(fleet))
    if budget_kw is None:
        with pytest.raises(InfeasiblePlanError, match=f"least power .* is {least_kw:,.1f} kW"):
            plan_fleet(path, verify=False)
        return
    result = plan_fleet(path)
    power = energy(result)
    assert power["provisioned_kw"] <= budget + 1e-9
    if budget_kw == "tight":  # the cheapest fleet does not fit: another one is bought, at a price
        assert power["power_budget_binds"] and power["power_budget_costs_usd_per_h"] > 0
        assert result.solution.extra_nodes != planned.solution.extra_nodes
    else:
        assert not power["power_budget_binds"] and result.solution.extra_nodes == planned.solution.extra_nodes
