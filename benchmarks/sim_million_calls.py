"""Benchmark: a synthetic agent run with one million LLM calls.

The workload is the shipped ``react-tool-agent`` (tau-bench retail ReAct agent: LLM <-> tool
loops inside multi-turn conversations, prefix caching of the growing conversation, a human
think time between turns), about 19.5 LLM calls and 12 tool/user steps per session. It is
served by Llama 3.1 70B at tp=4 on H100 replicas with prefix-aware routing, plus a CPU pool
for the tools. The default plan (24 replicas, 8 sessions/s) serves the load stably over the whole
run: each replica's prefix cache holds what its KV memory holds, and with fewer replicas it
thrashes once queues build up (16 replicas: fine for 100k calls, then 20% of prompt tokens
from the cache and TTFT in minutes by 1M calls; 12 replicas: 12% from the start).

Target (issue 4): at least 25,000 simulated LLM calls per wall-second of the simulation on one
core, with peak memory at most 2 GB.

Usage: python benchmarks/sim_million_calls.py [--calls N] [--replicas R] [--rate SESSIONS_PER_S] [--compiled]

``--compiled`` runs it on the opt-in mypyc build (README, "Faster simulation"); the records
are identical, only the speed differs. Per LLM call the run fires about 4.3 timers (a prefill
step, a decode run that ends at a finish, a run cut by an arrival and its stale end, a tool or a
think delay). They are timers of the environment's calendar (``hetsim.sim.calendar``), merged
with SimPy's events in SimPy's order: as SimPy timeouts (about 4,000 machine instructions to
create, as much again to process) they were a quarter of the compiled run.

The trace is synthesized in a child process (reported separately: its time and peak memory)
and handed over as a pickled frame, so the parent's peak RSS is the simulation's own.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import pickle
import resource
import tempfile
import time

from compiled_build import describe_build, rerun_compiled

CALLS_PER_SESSION = 19.5  # react-tool-agent: measured over 3,450 synthesized sessions
WORKLOAD = "react-tool-agent"
MODEL = "llama-3.1-70b"


def _rss_mb() -> float:
    """Peak resident memory of this process so far."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


def _current_mb() -> float:
    """Resident memory now (Linux; 0 elsewhere)."""
    try:
        with open("/proc/self/statm") as file:
            return int(file.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    except OSError:
        return 0.0


def _synthesize(calls: int, rate: float, seed: int, out: str) -> None:
    """Child process: synthesize whole sessions until ``calls`` LLM calls, pickle the frame."""
    from hetsim.api.workloads import synthesize_trace
    from hetsim.workload.frame import steps_to_frame

    started = time.perf_counter()
    duration = calls / (rate * CALLS_PER_SESSION) * 1.1 + 1.0
    steps = synthesize_trace(WORKLOAD, duration, seed=seed, rate_per_s=rate).steps
    synthesized = time.perf_counter() - started
    kept, llm = 0, 0
    for kept, step in enumerate(steps):  # noqa: B007 - the index is the result
        if step.step_id == 0 and llm >= calls:
            break
        llm += step.node_type == "llm"
    else:
        kept = len(steps)
    frame = steps_to_frame(steps[:kept])
    del steps
    with open(out, "wb") as file:
        pickle.dump(
            {"frame": frame, "llm_calls": llm, "synth_s": synthesized, "frame_s": time.perf_counter() - started,
             "peak_mb": _rss_mb()},
            file,
            protocol=pickle.HIGHEST_PROTOCOL,
        )  # fmt: skip


def _plan(replicas: int, tool_replicas: int):
    from hetsim.specs.plan import PlanSpec

    return PlanSpec.model_validate(
        {
            "schema_version": 1,
            "name": "million-calls",
            "pools": [
                {"name": "agent", "device": "h100-sxm", "replicas": replicas, "tp": 4, "routing": "prefix-aware",
                 "llm": {"model": MODEL}},
                {"name": "tools", "device": "xeon-8480", "replicas": tool_replicas, "concurrency": 56,
                 "node_types": ["tool"]},
            ],
        }
    )  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=1_000_000, help="LLM calls to simulate (whole sessions)")
    parser.add_argument("--rate", type=float, default=8.0, help="session arrivals per second")
    parser.add_argument("--replicas", type=int, default=24, help="LLM replicas (tp=4 H100 each)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--profile", action="store_true", help="print the top of a cProfile of the run")
    parser.add_argument("--compiled", action="store_true", help="run on the compiled (mypyc) build")
    args = parser.parse_args()
    rerun_compiled(args.compiled, __file__)  # exits with the compiled rerun's status when --compiled

    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "trace.pkl")
        child = multiprocessing.get_context("fork").Process(
            target=_synthesize, args=(args.calls, args.rate, args.seed, path)
        )
        child.start()
        child.join()
        if child.exitcode:
            raise SystemExit(f"synthesis failed with exit code {child.exitcode}")
        with open(path, "rb") as file:
            synthetic = pickle.load(file)
    trace = synthetic["frame"]
    print(
        f"synthesis: {WORKLOAD}, {synthetic['llm_calls']:,} LLM calls in {len(trace):,} steps; "
        f"sampling {synthetic['synth_s']:.1f} s, with frame {synthetic['frame_s']:.1f} s, "
        f"child peak RSS {synthetic['peak_mb']:.0f} MB"
    )
    print(describe_build())  # imports hetsim only now: the synthesis child forks from a lean parent

    from hetsim.io.catalog import load_catalog
    from hetsim.io.models import load_models
    from hetsim.sim.build import build_simulation

    hardware, models = load_catalog(), load_models()
    before = _current_mb()
    started = time.perf_counter()
    sim = build_simulation(_plan(args.replicas, 4), trace, hardware, models, block_size_tokens=None)
    built, cpu_built, built_mb = time.perf_counter(), time.process_time(), _current_mb()
    if args.profile:
        import cProfile
        import pstats

        profile = cProfile.Profile()
        profile.runcall(sim.run)
        pstats.Stats(profile).sort_stats("tottime").print_stats(25)
    else:
        sim.run()
    ran, cpu_ran, ran_mb = time.perf_counter(), time.process_time(), _current_mb()
    frames = sim.frames()
    done = time.perf_counter()

    calls, replicas = frames["llm_calls"], frames["replicas"]
    llm = replicas[replicas["pool"] == "agent"]
    end_s = float(frames["meta"]["end_s"].iloc[0])
    completed = int((calls["status"] == "completed").sum())
    print(
        f"plan: {args.replicas} x {MODEL} tp=4 on h100-sxm (prefix-aware) + tools; simulated {end_s / 3600:.2f} h; "
        f"completed {completed:,} of {len(calls):,} calls; TTFT p50 {calls['ttft_s'].median() * 1e3:.0f} ms, "
        f"p99 {calls['ttft_s'].quantile(0.99) * 1e3:.0f} ms; prompt tokens from the prefix cache "
        f"{calls['cached_tokens'].sum() / calls['input_tokens'].sum():.0%}"
    )
    print(
        f"LLM replicas: busy {llm['busy_s'].sum() / (len(llm) * end_s):.0%}, mean batch "
        f"{(llm['mean_batch_size'] * llm['busy_s']).sum() / llm['busy_s'].sum():.1f}, "
        f"server events {int(llm['events'].sum()):,}, iterations {int(llm['steps'].sum()):,}"
    )
    run_s = ran - built
    print(
        f"wall: build {built - started:.2f} s, run {run_s:.2f} s, records {done - ran:.2f} s  ->  "
        f"{len(calls) / run_s:,.0f} LLM calls per wall-second of the run "
        f"({len(calls) / (done - started):,.0f} including build and records); run CPU time {cpu_ran - cpu_built:.2f} s "
        f"({len(calls) / (cpu_ran - cpu_built):,.0f} calls per CPU-second)"
    )
    print(
        f"peak RSS {_rss_mb():.0f} MB; resident before building {before:.0f} MB (the trace), after building "
        f"{built_mb:.0f} MB, after the run {ran_mb:.0f} MB, with the record frames {_current_mb():.0f} MB"
    )


if __name__ == "__main__":
    main()
