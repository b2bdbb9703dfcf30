"""``hetsim reproduce paper``: reproduce a paper's results and check its claims one by one."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from hetsim.cli.output import JsonOption, print_json, print_table

app = typer.Typer(help="Reproduce published results and check each claim.", no_args_is_help=True)


@app.command("paper")
def paper(
    report: Annotated[Path, typer.Option("--report", help="Report folder")] = Path("reports/paper"),
    study: Annotated[
        Path | None,
        typer.Option(
            "--study", help="Study file (default: the shipped scenarios/paper/study.yaml)", exists=True, dir_okay=False
        ),
    ] = None,
    json: JsonOption = False,
) -> None:
    """arXiv 2507.19635 (heterogeneous prefill::decode TCO): Figs. 8 and 9 and a claim table."""
    from hetsim.api.reproduce import reproduce_paper, write_reproduction  # matplotlib: only when used

    progress = (lambda _: None) if json else (lambda text: typer.echo(text, err=True))
    result = reproduce_paper(study, progress)
    written = write_reproduction(result, report)
    claims = result.frames["claims"]
    if json:
        print_json({"claims": claims.to_dict(orient="records"), "wall_s": result.wall_s,
                    "written": [str(p) for p in written]})  # fmt: skip
        return
    rows = [(r.id, r.claim[:70], r.verdict_paper, r.verdict_datasheet) for r in claims.itertuples()]
    print_table("Paper claims", ("id", "claim", "Table 5 inputs", "datasheet inputs"), rows,
                caption=f"computed in {result.wall_s:.0f} s")  # fmt: skip
    typer.echo(f"report: {report / 'report.html'} (claim table: {report / 'claims.md'})")
