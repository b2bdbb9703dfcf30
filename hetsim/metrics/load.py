"""Was the run overloaded? A verdict computed from the records, with the numbers behind it.

A fleet keeps up when the work in it stops growing: over any stretch of the arrivals about as
many steps end as become ready (Little's law: the backlog stays put). An overloaded fleet falls
behind, and its backlog grows for as long as sessions keep arriving. So the rule compares, over
the second half of the arrival window (the first half lets the fleet fill), the steps that became
ready with the steps that ended (completed or dropped): the run is **overloaded** when the ones
that ended fall short by more than ``TOLERANCE`` of the arrivals *and* by more than
``BURST_SIGMAS`` standard deviations of a Poisson count (``3 * sqrt(arrivals)``), so that a burst
in a short run is not mistaken for overload. Calls the run never finished (a run cut at a horizon
or interrupted) are counted beside the verdict.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

TOLERANCE = 0.10
BURST_SIGMAS = 3.0
MIN_ARRIVALS = 20
RULE = (
    f"overloaded when, over the second half of the arrival window, the steps that ended fall short of "
    f"the steps that became ready by more than {TOLERANCE:.0%} of them and by more than "
    f"{BURST_SIGMAS:g} x sqrt(ready steps) (a random burst)"
)


def load_verdict(steps: pd.DataFrame, utilization: dict[str, float], unfinished_calls: int = 0) -> dict[str, Any]:
    """The overload verdict of a run (``steps``: its step records; ``utilization``: busy share per pool).

    ``overloaded`` is True, False, or None when the run is too short to tell (fewer than
    ``MIN_ARRIVALS`` steps in the window, or every session arriving at one instant)."""
    busiest = max(utilization.items(), key=lambda item: item[1], default=None)
    result: dict[str, Any] = {"overloaded": None, "rule": RULE, "tolerance": TOLERANCE, "unfinished_calls": unfinished_calls,
                              "busiest_pool": None if busiest is None else {"pool": busiest[0], "busy": busiest[1]}}  # fmt: skip
    if not len(steps):
        return result | {"verdict": "not assessed: no steps ran"}
    ready = steps["ready_s"].to_numpy(dtype=float)
    ended = steps["end_s"].to_numpy(dtype=float)
    sessions = pd.Series(ready).groupby(steps["session_id"].to_numpy(), sort=False).min().to_numpy()
    first, last = float(np.nanmin(sessions)), float(np.nanmax(sessions))
    middle = first + (last - first) / 2.0
    arrived = int(((ready >= middle) & (ready <= last)).sum())
    done = int(((ended >= middle) & (ended <= last)).sum())
    backlog = int(((ready <= last) & ~(ended <= last)).sum())
    drain = float(np.nanmax(ended)) - last
    result |= {
        "window_s": [middle, last],
        "ready_in_window": arrived,
        "ended_in_window": done,
        "backlog_at_last_arrival": backlog,
        "drain_s": drain,
    }
    if last <= first or arrived < MIN_ARRIVALS:
        why = "every session arrives at one instant" if last <= first else f"{arrived} steps in the window (fewer than {MIN_ARRIVALS})"
        return result | {"verdict": f"not assessed: {why}{_unfinished(unfinished_calls)}"}
    shortfall = arrived - done
    overloaded = shortfall > TOLERANCE * arrived and shortfall > BURST_SIGMAS * math.sqrt(arrived)
    share = done / arrived
    numbers = (
        f"from {middle:.4g} s to the last arrival at {last:.4g} s, {arrived} steps became ready and {done} ended "
        f"({share:.0%}); {backlog} were queued or running when arrivals stopped, and the run took {drain:.4g} s more to drain"
    )
    if busiest is not None:
        numbers += f"; busiest pool {busiest[0]} ({busiest[1]:.0%} busy)"
    verdict = ("overloaded: " if overloaded else "not overloaded: ") + numbers + _unfinished(unfinished_calls)
    return result | {"overloaded": bool(overloaded), "verdict": verdict}


def _unfinished(count: int) -> str:
    return f"; {count} calls never finished (the run stopped first)" if count else ""
