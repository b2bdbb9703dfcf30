"""``hetsim models list|show``: the model catalog."""

from __future__ import annotations

from typing import Annotated

import typer

from hetsim.api import models as api
from hetsim.cli.output import JsonOption, fmt, print_json, print_table

app = typer.Typer(help="Model catalog: LLMs and the non-LLM models agents use.", no_args_is_help=True)


@app.command("list")
def list_models(json: JsonOption = False) -> None:
    """List every model with its size and KV bytes per token."""
    described = [api.describe_model(m) for m in api.models().models.values()]
    if json:
        print_json({"models": described})
        return
    rows = [
        (
            m["name"],
            m["kind"],
            fmt(m["parameters"] / 1e9),
            fmt((m["active_parameters"] or m["parameters"]) / 1e9),
            fmt(m.get("derived", {}).get("kv_bytes_per_token", {}).get("bf16")),
            m.get("unit_cost", {}).get("unit", "token (LLM)"),
        )
        for m in described
    ]
    print_table("Model catalog", ("model", "kind", "params B", "active B", "KV B/token (bf16)", "unit"), rows)


@app.command("show")
def show_model(
    name: Annotated[str, typer.Argument(help="Model name or alias, e.g. llama-3-70b")], json: JsonOption = False
) -> None:
    """Show one model: architecture, derived parameter count and KV size, sources."""
    described = api.describe_model(api.models().model(name))
    if json:
        print_json(described)
        return
    flat = {**described.get("architecture", {}), **described.get("unit_cost", {}), **described.get("derived", {})}
    rows = [(k, v) for k, v in flat.items() if not isinstance(v, dict)]
    rows += [(f"{k}.{kk}", vv) for k, v in flat.items() if isinstance(v, dict) for kk, vv in v.items()]
    print_table(
        f"{described['display_name']} ({described['name']})",
        ("field", "value"),
        rows,
        caption="; ".join(described["sources"].values()),
    )
