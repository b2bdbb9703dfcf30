"""Benchmark: synthesize 10,000 sessions of each shipped workload and print the wall time
against the target (10 s each on the project's 2-core machine; SWE sessions have ~40 steps).

Usage: python benchmarks/synth_sessions.py [--sessions 10000]
(The wall-clock check left the test suite, where a loaded machine failed it: figures belong here.)
"""

from __future__ import annotations

import argparse
import sys
import time

from hetsim.io.workloads import load_workload
from hetsim.workload.synth import synthesize

WORKLOADS = ("voice-agent", "rag-chatbot", "swe-coding-agent")
TARGET_S = 10.0
RATE_PER_S = 5.0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, default=10_000)
    args = parser.parse_args()
    missed = 0
    print(f"{'workload':<20}{'sessions':>10}{'steps':>10}{'wall s':>9}  target {TARGET_S:g} s")
    for name in WORKLOADS:
        spec = load_workload(name)
        started = time.perf_counter()
        trace = synthesize(spec, args.sessions / RATE_PER_S, 0, rate_per_s=RATE_PER_S)
        elapsed = time.perf_counter() - started
        missed += elapsed > TARGET_S
        print(f"{name:<20}{trace.meta.extra['sessions']:>10}{len(trace.steps):>10}{elapsed:>9.2f}  {'met' if elapsed <= TARGET_S else 'MISSED'}")
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
