"""The engine against queueing theory, on a single-server tool pool.

M/M/1: mean time in system W = 1 / (mu - lambda). M/D/1 (Pollaczek-Khinchine): W = 1/mu +
rho / (2 mu (1 - rho)). Little's law: L = lambda W, with L measured independently as the
number in system that Poisson arrivals see (PASTA: arrivals see time averages).
"""

import numpy as np
import pytest

from hetsim.workload.trace import NodeType, TraceStep
from tests.sim.conftest import plan, trace_frame

RATE, MU = 0.5, 1.0


def _tool_trace(rng, n, service):
    arrivals = np.cumsum(rng.exponential(1 / RATE, n))
    return trace_frame(
        [
            TraceStep(f"s{i}", 0, float(a), "tool", NodeType.TOOL, duration_s=float(d))
            for i, (a, d) in enumerate(zip(arrivals, service, strict=True))
        ]
    )


def _single_server():
    return plan({"name": "cpu", "device": "xeon-8480", "replicas": 1, "concurrency": 1, "node_types": ["tool"]})


def _batch_means_interval(values, batches=50):
    """95% confidence half-width of the mean from batch means (sojourns are autocorrelated)."""
    means = np.array([b.mean() for b in np.array_split(values, batches)])
    return 1.96 * means.std(ddof=1) / np.sqrt(batches)


def _sojourns(frames):
    steps = frames["steps"]
    return (steps.end_s - steps.ready_s).to_numpy()


@pytest.mark.slow
def test_mm1_mean_time_in_system_matches_theory(simulate):
    rng = np.random.default_rng(11)
    n = 60_000
    sojourn = _sojourns(simulate(_single_server(), _tool_trace(rng, n, rng.exponential(1 / MU, n))))[5_000:]
    theory = 1 / (MU - RATE)
    assert abs(sojourn.mean() - theory) <= max(_batch_means_interval(sojourn), 0.02 * theory)


@pytest.mark.slow
def test_md1_mean_time_in_system_matches_pollaczek_khinchine(simulate):
    rng = np.random.default_rng(12)
    n = 60_000
    sojourn = _sojourns(simulate(_single_server(), _tool_trace(rng, n, np.full(n, 1 / MU))))[5_000:]
    rho = RATE / MU
    theory = 1 / MU + rho / (2 * MU * (1 - rho))
    assert abs(sojourn.mean() - theory) <= max(_batch_means_interval(sojourn), 0.02 * theory)


def test_short_mm1_run_is_within_a_loose_band(simulate):
    rng = np.random.default_rng(13)
    n = 4_000
    sojourn = _sojourns(simulate(_single_server(), _tool_trace(rng, n, rng.exponential(1 / MU, n))))
    assert 1.6 < sojourn.mean() < 2.4  # theory 2.0; a short run, a wide band


def test_littles_law_holds_within_two_percent(simulate):
    rng = np.random.default_rng(14)
    n = 30_000
    steps = simulate(_single_server(), _tool_trace(rng, n, rng.exponential(1 / MU, n)))["steps"]
    arrive, leave = steps.ready_s.to_numpy(), steps.end_s.to_numpy()
    order = np.argsort(arrive, kind="stable")
    arrive, leave = arrive[order], leave[order]
    # Number in system seen by each arrival: earlier arrivals that have not left yet.
    departed = np.searchsorted(np.sort(leave), arrive, side="right")
    seen = np.arange(n) - departed
    lam = n / (arrive[-1] - arrive[0])
    w = (leave - arrive).mean()
    assert seen[1000:].mean() == pytest.approx(lam * w, rel=0.02)


def test_every_step_completes_or_is_dropped_with_a_reason(simulate):
    trace = trace_frame(
        [
            TraceStep("s", 0, 0.0, "tool", NodeType.TOOL, duration_s=1.0),
            TraceStep("s", 1, 0.0, "wait", NodeType.EXTERNAL, parents=(0,)),
            TraceStep("s", 2, 0.0, "tool2", NodeType.TOOL, parents=(1,), duration_s=0.5),
        ]
    )
    steps = simulate(_single_server(), trace)["steps"].set_index("step_id")
    assert len(steps) == 3
    assert steps.loc[1, "status"] == "dropped" and "no duration_s" in steps.loc[1, "reason"]
    assert (steps.loc[[0, 2], "status"] == "completed").all()
    assert steps.loc[2, "ready_s"] == pytest.approx(1.0)  # a child starts when its parent ends


def test_fan_out_runs_in_parallel_and_fan_in_waits_for_all(simulate):
    the_plan = plan({"name": "cpu", "device": "xeon-8480", "replicas": 1, "concurrency": 4, "node_types": ["tool"]})
    trace = trace_frame(
        [
            TraceStep("s", 0, 0.0, "plan", NodeType.TOOL, duration_s=1.0),
            TraceStep("s", 1, 0.0, "a", NodeType.TOOL, parents=(0,), duration_s=2.0),
            TraceStep("s", 2, 0.0, "b", NodeType.TOOL, parents=(0,), duration_s=3.0),
            TraceStep("s", 3, 0.0, "join", NodeType.TOOL, parents=(1, 2), duration_s=1.0),
        ]
    )
    steps = simulate(the_plan, trace)["steps"].set_index("step_id")
    assert steps.loc[1, "start_s"] == steps.loc[2, "start_s"] == pytest.approx(1.0)
    assert steps.loc[3, "start_s"] == pytest.approx(4.0)
    assert steps.loc[3, "end_s"] == pytest.approx(5.0)
