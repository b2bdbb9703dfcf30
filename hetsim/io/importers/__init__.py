"""Importers from public trace formats to canonical trace steps, one module per format.

Each module has pure functions from parsed records to ``TraceStep`` objects and a
``read(path, skip_bad)`` that parses the file(s) and returns ``(steps, TraceMeta)``.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from hetsim.errors import WorkloadError
from hetsim.io.importers import azure, lmcache, mooncake, tracelab, trtllm
from hetsim.workload.trace import TraceMeta, TraceStep

Importer = Callable[[Path, bool], tuple[list[TraceStep], TraceMeta]]

IMPORTERS: dict[str, Importer] = {
    azure.FORMAT: azure.read,
    mooncake.FORMAT: mooncake.read,
    lmcache.FORMAT: lmcache.read,
    trtllm.FORMAT: trtllm.read,
    tracelab.FORMAT: tracelab.read,
}
"""Format name (as ``--format`` spells it) -> reader."""


def importer(name: str) -> Importer:
    """The reader of format ``name``; an unknown name raises ``WorkloadError`` listing the formats."""
    try:
        return IMPORTERS[name]
    except KeyError:
        raise WorkloadError(f"unknown trace format {name!r}; expected one of: {', '.join(IMPORTERS)}") from None
