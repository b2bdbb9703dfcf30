"""``hetsim models list|show|import``: the model catalog."""

from __future__ import annotations

from pathlib import Path
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


@app.command("import")
def import_model(
    config: Annotated[
        Path, typer.Argument(help="A Hugging Face config.json (Llama, Mistral, Mixtral, Qwen or DeepSeek style)")
    ],
    name: Annotated[
        str | None, typer.Option("--name", help="Catalog name (default: from _name_or_path or the folder)")
    ] = None,
    out: Annotated[
        Path | None, typer.Option("-o", "--out", help="Where to write the entry (default: models/NAME.yaml)")
    ] = None,
    source: Annotated[
        str | None, typer.Option("--source", help="Where the config came from, e.g. its Hugging Face URL")
    ] = None,
    force: Annotated[bool, typer.Option("--force", help="Replace an existing file")] = False,
    json: JsonOption = False,
) -> None:
    """Turn a Hugging Face config.json into a model catalog entry, so the model can be simulated."""
    spec, written = api.import_model(config, name, out, source, force)
    described = api.describe_model(spec)
    if json:
        print_json({"written": str(written), "model": described})
        return
    active = f", {fmt(spec.active_parameters / 1e9)} B active" if spec.active_parameters else ""
    kv = described["derived"]["kv_bytes_per_token"]["bf16"]
    print(
        f"wrote {written}: {spec.name} ({fmt(spec.parameters / 1e9)} B parameters{active}, {kv:,.0f} KV bytes per token in bf16)"
    )
