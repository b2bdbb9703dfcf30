"""``hetsim plan``: the cheapest placement that meets the SLA, verified in simulation."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from hetsim.api.deploy import export_plan
from hetsim.api.horizon import DEFAULT_PERIOD_MONTHS, HorizonRequest
from hetsim.api.plan import plan_fleet, result_frames, sla_summary
from hetsim.api.report import write_plan_outputs
from hetsim.cli.output import JsonOption, fmt, print_json, print_table
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
    """Place every stage of the demand on the fleet at the lowest TCO meeting the SLA; verify and report."""
    if ctx.invoked_subcommand is not None:
        return
    if fleet is None:
        raise typer.BadParameter("expected --fleet FILE (or a sub-command: export)", param_hint="--fleet")
    if horizon is not None or growth is not None:
        check_horizon_options(horizon, growth, out)
        request = HorizonRequest(fleet, horizon, growth, period_months, workload, rate, verify, size_for, stack)  # type: ignore[arg-type]
        run_horizon(request, report, json)
        return
    console = Console(stderr=True)
    with console.status("planning") as status:
        result = plan_fleet(fleet, workload, rate, verify, progress=lambda text: status.update(text), size_for=size_for,
                             stack=stack)
        status.update("writing plan and report")
        frames = result_frames(result)
        written = write_plan_outputs(result, frames, out, report, {"fleet": fleet, "workload": workload, "rate": rate,
                                     "verify": verify, "size_for": size_for, "stack": stack})  # fmt: skip
    summary = {
        "fleet": result.fleet.name, "status": result.solution.status, "gap": result.solution.gap,
        "solve_wall_s": result.solution.wall_s, "cost": result.cost, "rounds": result.rounds,
        "sla_met_in_simulation": result.verification.get("met"), "written": [str(p) for p in written],
        "placement": frames["placement"].to_dict(orient="records"), "sla": sla_summary(result),
        "sized_for": size_for, "performance_model": result.plan.provenance.get("performance_model", {}),
        "step_time_factors": result.plan.provenance.get("step_time_factors", {}),
        "model_error": frames["model_error"].to_dict(orient="records"),
    }  # fmt: skip
    if json:
        print_json(summary)
        return
    rows = [
        (r["stage"], r["device"], r["node"], r["replicas"], f"tp{r['tp']}", fmt(r["utilization"], 2))
        for r in summary["placement"]
    ]
    print_table(
        f"Plan for fleet {result.fleet.name}",
        ("stage", "device", "node", "replicas", "parallel", "sim. utilisation"),
        rows,
    )
    cost = result.cost
    met = result.verification.get("met")
    lines = [
        f"fleet TCO {fmt(cost['total_usd_per_h'], 4)} $/h (capex {fmt(cost['capex_usd_per_h'], 3)}, power {fmt(cost['power_usd_per_h'], 3)}, "
        f"hosting {fmt(cost['hosting_usd_per_h'], 3)}); nodes {cost['nodes']}",
        f"solver {result.solution.solver}: {result.solution.status}, gap {result.solution.gap:.2%}, {fmt(result.solution.wall_s)} s",
        "SLA in simulation: " + ("met" if met else "not checked" if met is None else "MISSED (see the report)"),
        "performance model: " + ", ".join(f"{d} {s}" for d, s in summary["performance_model"].items())
        + (f"; sized for step times at model error {size_for}" if size_for != "nominal" else ""),
        "wrote " + ", ".join(str(p) for p in written[:3]) + (" ..." if len(written) > 3 else ""),
    ]
    for case in summary["model_error"]:
        nodes = ", ".join(f"{n} x{c}" for n, c in sorted(case["nodes"].items())) or "no feasible fleet"
        total = f"{fmt(case['total_usd_per_h'], 4)} $/h" if case["feasible"] else "infeasible"
        lines.append(f"if {case['case']}: {total}; nodes {nodes}")
    for workload, item in summary["sla"].items():
        lines.append(f"SLA {workload}: {item['objectives']}")
        for name, objective in (item["simulated"] or {}).items():
            if isinstance(objective, dict):
                lines.append(f"  {name.upper()} p{objective['percentile']:g}: {objective['attained']:.1%} within "
                             f"{fmt(objective['objective_s'])} s ({'met' if objective['met'] else 'MISSED'}; {objective['measure']})")  # fmt: skip
    for line in lines:
        typer.echo(line)


@app.command("export")
def export_command(
    plan: Annotated[Path, typer.Option("--plan", "-p", help="Plan file to export", exists=True, dir_okay=False)],
    export_format: Annotated[str, typer.Option("--format", help="k8s (Kubernetes manifests) or ray-serve (a Ray Serve config)")],
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
