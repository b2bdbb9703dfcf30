"""``hetsim plan``: the cheapest placement that meets the SLA, verified in simulation."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from hetsim.api.day import fleet_has_profile
from hetsim.api.deploy import export_plan
from hetsim.api.horizon import DEFAULT_PERIOD_MONTHS, HorizonRequest
from hetsim.api.plan import model_error_cases, plan_exit_code, plan_fleet, plan_summary, result_frames
from hetsim.api.report import write_plan_outputs
from hetsim.cli.output import JsonOption, percent, print_json, print_table, seconds, usd, usd_per_h
from hetsim.cli.plan_day import run_day
from hetsim.cli.plan_horizon import check_horizon_options, run_horizon
from hetsim.exec.deploy import DEFAULT_ENGINE_IMAGE, DEFAULT_ROUTER_IMAGE, DeployOptions

app = typer.Typer(help="Plan a fleet (hetsim plan --fleet F), or export a plan for deployment (hetsim plan export).")


@app.callback(invoke_without_command=True)
def plan_command(
    ctx: typer.Context,
    fleet: Annotated[
        Path | None, typer.Option("--fleet", "-f", help="Fleet file: inventory, catalog, demand", exists=True, dir_okay=False)
    ] = None,
    out: Annotated[
        Path | None, typer.Option("--out", "-o", help="Plan file to write (default: reports/<fleet>/plan.yaml)")
    ] = None,
    report: Annotated[Path | None, typer.Option("--report", help="Report folder (default: beside the plan)")] = None,
    workload: Annotated[
        str | None, typer.Option("--workload", "-w", help="Plan for this workload instead of the fleet's demand")
    ] = None,
    rate: Annotated[float | None, typer.Option("--rate", "-r", help="Sessions per second (with --workload)")] = None,
    verify: Annotated[bool, typer.Option("--verify/--no-verify", help="Check the plan in simulation")] = True,
    size_for: Annotated[
        str,
        typer.Option("--size-for", help="Size with step times as predicted ('nominal') or at a percentile of the model's "
                     "measured error: p90 = real steps slower than that one time in ten (p10, p50, p90)"),
    ] = "nominal",
    stack: Annotated[
        str | None,
        typer.Option("--stack", help="Serving stack to price devices with where a calibration for it is shipped "
                     "(hardware_profiles/calibration/stacks/<device>--<stack>.yaml), e.g. vllm-0.24.0"),
    ] = None,
    baselines: Annotated[
        bool, typer.Option("--baselines/--no-baselines", help="Also plan the owned-only and homogeneous fleets and report the savings")
    ] = True,
    robust: Annotated[
        bool, typer.Option("--sensitivity/--no-sensitivity", help="Re-solve with each vendor's prices, energy price, demand "
                           "and the model's error moved, and report where the purchase flips")
    ] = True,
    json: JsonOption = False,
    horizon: Annotated[
        int | None, typer.Option("--horizon", help="Plan purchases over N periods as one model (with --growth): "
                                 "what to buy in which period; writes reports/<fleet>/horizon/ (or --report DIR)")
    ] = None,
    growth: Annotated[
        float | None, typer.Option("--growth", help="Demand growth per period with --horizon, e.g. 0.5 = +50%")
    ] = None,
    period_months: Annotated[
        float, typer.Option("--period-months", help="Length of a --horizon period in months")
    ] = DEFAULT_PERIOD_MONTHS,
) -> None:
    """Place every stage of the demand on the fleet at the lowest TCO meeting the SLA; verify and report.

    A fleet whose demand follows a day profile (``profile`` on a demand entry) is planned as
    the owned base plus the rented burst over the day, against all-owned and all-rented.

    Exit status: 0 the plan meets every SLA in simulation (or was not simulated, --no-verify) and
    the solver proved it optimal within the fleet's relative_gap; 4 the plan still misses an SLA
    after every verification round; 5 the solver stopped at its time limit without that proof
    (the incumbent is written, with its gap); 1 an error (bad input, no feasible plan); 130
    interrupted.
    """
    if ctx.invoked_subcommand is not None:
        return
    if fleet is None:
        raise typer.BadParameter("expected --fleet FILE (or a sub-command: export)", param_hint="--fleet")
    if horizon is not None or growth is not None:
        check_horizon_options(horizon, growth, out)
        request = HorizonRequest(fleet, horizon, growth, period_months, workload, rate, verify, size_for, stack)  # type: ignore[arg-type]
        run_horizon(request, report, json)
        return
    if fleet_has_profile(fleet):
        run_day(fleet, workload, rate, verify, size_for, stack, json, report)
        return
    from hetsim.api.baselines import plan_baselines
    from hetsim.api.robustness import robustness

    console = Console(stderr=True)
    with console.status("planning") as status:
        say = lambda text: status.update(text)  # noqa: E731
        result = plan_fleet(fleet, workload, rate, verify, progress=say, size_for=size_for, stack=stack)
        baseline_rows = plan_baselines(result, say) if baselines else None
        say("sensitivity: performance model error")
        model_error = model_error_cases(result)  # shared by the sensitivity scan and the frames
        robustness_frame = robustness(result, say, model_error) if robust else None
        status.update("writing plan and report")
        frames = result_frames(result, baseline_rows, robustness_frame, model_error)
        written = write_plan_outputs(result, frames, out, report, {"fleet": fleet, "workload": workload, "rate": rate,
                                     "verify": verify, "size_for": size_for, "stack": stack})  # fmt: skip
    code = plan_exit_code(result)
    summary = plan_summary(result, frames, written, size_for, code)
    if json:
        print_json(summary)
    else:
        _print_plan(result, frames, summary)
    if code:
        raise typer.Exit(code)


def _print_plan(result, frames, summary) -> None:
    from hetsim.report.procurement import energy_sentence  # plain pandas; matplotlib stays unloaded

    typer.echo(summary["headline"])
    bom = frames["bom"]
    kept = bom[(bom["nodes"] > 0) | (bom["owned"] > 0)]
    print_table("What to buy (bill of materials)", ("node", "accelerators", "owned, used", "owned, idle", "buy", "rent",
                                                    "capex", "$/h", "$/month"),
                [(r.node, r.accelerator, r.owned_used, r.owned_idle, r.buy, r.rent, usd(r.capex_usd), usd_per_h(r.usd_per_h),
                  usd(r.usd_per_month)) for r in kept.itertuples()])  # fmt: skip
    print_table(f"Placement for fleet {result.fleet.name}",
                ("stage", "device", "node", "replicas", "serving", "traffic share", "sim. utilisation"),
                [(r["stage"], r["device"], r["node"], r["replicas"], r["serving"], f"{r['weight']:.0%}",
                  percent(r["utilization"])) for r in summary["placement"]])  # fmt: skip
    workloads = frames["workloads"]
    if len(workloads):
        print_table("Every workload against its own SLA", ("workload", "objective", "limit", "measured at percentile",
                                                           "within", "verdict", "cost share", "$/1M tokens"),
                    [(r.workload, f"{r.objective.upper()} p{r.percentile:g}", seconds(r.limit_s),
                      seconds(r.value_at_percentile_s), percent(r.attained),
                      "not simulated" if r.met is None else "met" if r.met else "MISSED", usd_per_h(r.cost_share_usd_per_h),
                      usd(r.usd_per_million_tokens)) for r in workloads.itertuples()])  # fmt: skip
    fleets = frames["fleets"]
    if (fleets["role"] == "baseline").any():
        print_table("Against the homogeneous fleets (savings on new spend; owned nodes are paid for either way)",
                    ("fleet", "nodes", "new spend", "fleet TCO", "$/1M tokens", "SLA met", "plan saves"),
                    [(r.fleet, r.nodes or r.note, usd_per_h(r.new_spend_usd_per_h), usd_per_h(r.total_usd_per_h),
                      usd(r.usd_per_million_tokens), "n/a" if r.status == "infeasible" else ("yes" if r.sla_met else "no"),
                      _saving(getattr(r, "savings_usd_per_h", None), getattr(r, "savings_share", None)))
                     for r in fleets.itertuples()])  # fmt: skip
    cost, solution = result.cost, result.solution
    lines = [
        f"fleet TCO {usd_per_h(cost['total_usd_per_h'])} (capex {usd_per_h(cost['capex_usd_per_h'])}, power "
        f"{usd_per_h(cost['power_usd_per_h'])}, hosting {usd_per_h(cost['hosting_usd_per_h'])}); new spend "
        f"{usd_per_h(summary['new_spend_usd_per_h'])}",
        f"solver {solution.solver}: {summary['solver_verdict']}",
        "performance model: " + ", ".join(f"{d} {s}" for d, s in summary["performance_model"].items())
        + (f"; sized for step times at model error {summary['sized_for']}" if summary["sized_for"] != "nominal" else ""),
    ]
    lines.append(energy_sentence(frames["fleets"].iloc[0]))
    lines += [f"sensitivity: {s}" for s in summary["robustness"]]
    lines.append("wrote " + ", ".join(summary["written"][:3]) + (" ..." if len(summary["written"]) > 3 else ""))
    for line in lines:
        typer.echo(line)


def _saving(value: float | None, share: float | None) -> str:
    if value is None or share is None or value != value:  # NaN: the plan row, or no baseline plan
        return ""
    return f"{usd_per_h(value)} ({share:.0%})"


@app.command("export")
def export_command(
    plan: Annotated[Path, typer.Option("--plan", "-p", help="Plan file to export", exists=True, dir_okay=False)],
    export_format: Annotated[str, typer.Option("--format", help="k8s (Kubernetes manifests), ray-serve (a Ray Serve config) "
                                                                "or engine-commands (vLLM and SGLang launch commands per pool)")],
    out: Annotated[Path, typer.Option("--out", "-o", help="YAML file to write")],
    weights: Annotated[Path | None, typer.Option("--weights", help="YAML: model name -> weights (path or hub id)", exists=True, dir_okay=False)] = None,
    engine_image: Annotated[str, typer.Option("--engine-image", help="Container image of the engine (k8s)")] = DEFAULT_ENGINE_IMAGE,
    router_image: Annotated[str, typer.Option("--router-image", help="Container image of each pool's router (k8s)")] = DEFAULT_ROUTER_IMAGE,
    namespace: Annotated[str, typer.Option("--namespace", help="Kubernetes namespace")] = "default",
    json: JsonOption = False,
) -> None:
    """Write a plan as Kubernetes manifests (engine Deployment, Service and router per LLM pool)
    or as a Ray Serve config (Ray Serve LLM's OpenAI app), with the engine arguments hetsim run uses."""
    summary = export_plan(plan, export_format, out, weights, DeployOptions(engine_image, router_image, namespace))
    if json:
        print_json(summary)
        return
    Console().print(f"wrote {summary['written']}: {summary['documents']} documents ({', '.join(summary['kinds'])}) for plan {summary['plan']}")
    if summary["pools_not_exported"]:
        Console().print(f"not exported (no serving engine; deploy them as your own services): {', '.join(summary['pools_not_exported'])}")
