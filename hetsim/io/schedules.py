"""Write a plan's report folder (``hetsim plan --horizon``, a day plan): its texts, figures and plans, whole."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from hetsim.errors import ScenarioError
from hetsim.io.outputs import Provenance, texts_into, write_folder
from hetsim.io.plans import plan_text
from hetsim.specs.plan import PlanSpec


def write_schedule_folder(
    folder: Path, option: str, texts: Mapping[str, str], plans: Mapping[str, PlanSpec], inputs: Mapping[str, Any],
    blobs: Mapping[str, bytes] | None = None,
) -> list[Path]:
    """``texts`` (relative path -> content), ``blobs`` (relative path -> bytes: figures) and
    ``plans`` (relative path -> plan, as YAML) in ``folder``, staged beside it and moved in at the
    end with a manifest (``hetsim.io.outputs``): the folder holds the previous schedule or this
    one, never a mix. ``option`` names the folder in messages; ``inputs`` (name -> file or
    option) are hashed into the manifest."""
    fill = texts_into({**texts, **{relative: plan_text(plan) for relative, plan in plans.items()}}, blobs)
    return write_folder(folder, option, fill, ScenarioError, Provenance("plan --horizon", inputs))
