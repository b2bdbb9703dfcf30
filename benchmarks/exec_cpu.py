"""Benchmark: execute the shipped CPU scenario on real vLLM engines and print what was measured:
engine start-up, output tokens per second, latency percentiles, and the same with an engine
killed mid-run (restart time, retries).

Needs vLLM's CPU build (README, "Executing a plan"): HETSIM_ENGINE_PYTHON names its interpreter.
Usage: python benchmarks/exec_cpu.py [--duration 30] [--rate R] [--kill-at 8] [--no-kill]
About 1 min a run on the project's 2-core machine (engines start in 20-70 s).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from hetsim.api.run import RunRequest, run
from hetsim.exec.runtime import Fault

REPO = Path(__file__).resolve().parents[1]
SCENARIO = REPO / "scenarios" / "exec" / "light.yaml"


def _ms(value: float) -> str:
    return f"{value * 1e3:8.1f}"


def report(title: str, summary: dict) -> None:
    calls, run_info, sessions = summary["llm_calls"], summary["run"], summary["sessions"]
    print(f"\n== {title}")
    print(f"engine: {run_info['engine']} on {run_info['host']}; models: {next(iter(run_info['models'].values()))['size']}")
    starts = ", ".join(f"{r['pool']}[{r['replica']}] {r['startup_s']:.1f} s (lost {r['lost']}, restarted {r['restarts']})" for r in run_info["replicas"])
    print(f"engine start-up (to /health): {starts}")
    print(f"sessions {sessions['completed']} completed / {sessions['failed']} failed of {sessions['count']}; "
          f"calls {calls['completed']} of {calls['count']} completed, {calls['retried_calls']} retried; "
          f"token counts as asked {calls['token_counts_exact']} of {calls['count']}")  # fmt: skip
    print(f"output tokens/s {calls['output_tokens_per_s']:.1f} over {summary['duration_s']:.1f} s; busy {summary['utilization']}")
    print("metric                 p50 ms   p90 ms   p99 ms")
    for name in ("ttft_s", "tbt_mean_s", "tbt_max_s", "e2e_s"):
        values = calls[name]
        print(f"{name:<20} {_ms(values['p50'])} {_ms(values['p90'])} {_ms(values['p99'])}")
    print(f"session e2e p50 {sessions['e2e_s']['p50']:.2f} s; wall {run_info.get('wall_s', float('nan')):.1f} s incl. engine start")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=30.0, help="seconds of session arrivals")
    parser.add_argument("--rate", type=float, default=None, help="sessions per second (default: the scenario's 0.5)")
    parser.add_argument("--kill-at", type=float, default=8.0, help="second of the run at which llm[0]'s engine is killed")
    parser.add_argument("--no-kill", action="store_true", help="skip the fault-injection run")
    args = parser.parse_args()
    if not os.environ.get("HETSIM_ENGINE_PYTHON"):
        print("HETSIM_ENGINE_PYTHON is not set: install vLLM's CPU build (README, 'Executing a plan')", file=sys.stderr)
        return 2
    plain = run(RunRequest(scenario=SCENARIO, duration_s=args.duration, rate_per_s=args.rate))
    report(f"{SCENARIO.name}, {args.duration:.0f} s of arrivals", plain.summary)
    code = plain.exit_code
    if not args.no_kill:
        killed = run(RunRequest(scenario=SCENARIO, duration_s=args.duration, rate_per_s=args.rate, faults=(Fault(args.kill_at, "llm", 0),)))
        report(f"same, llm[0]'s engine killed at {args.kill_at:.0f} s", killed.summary)
        code = code or killed.exit_code
    return code


if __name__ == "__main__":
    sys.exit(main())
