"""Benchmark: import the full Mooncake conversation trace (12,031 requests) and compute its statistics.

Run ``python benchmarks/trace_import_stats.py [TRACE]``. Without TRACE it reads
``../shared/data/mooncake_fast25/conversation_trace.jsonl`` next to the repository root. Prints the
wall seconds of each phase and in total (target: under 5 s on a 2-core machine).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from hetsim.api.traces import import_trace
from hetsim.workload.frame import steps_to_frame
from hetsim.workload.stats import trace_stats

DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "data"
DEFAULT = DATA / "mooncake_fast25" / "conversation_trace.jsonl"


def main() -> None:
    path = Path(sys.argv[1]) if len(sys.argv) > 1 else DEFAULT
    if not path.is_file():
        sys.exit(f"trace not found: {path} (pass the path of a Mooncake JSONL trace)")
    start = time.perf_counter()
    steps, _ = import_trace(path, "mooncake")
    imported = time.perf_counter()
    frame = steps_to_frame(steps)
    framed = time.perf_counter()
    stats = trace_stats(frame)
    done = time.perf_counter()
    print(f"trace: {path.resolve()} ({stats.llm_calls} requests, block hit ratio {stats.block_hit_ratio:.3f})")
    print(f"import {imported - start:.3f} s, frame {framed - imported:.3f} s, stats {done - framed:.3f} s")
    print(f"wall seconds (import + stats): {done - start:.3f}")


if __name__ == "__main__":
    main()
