"""A day's demand profile: how a workload's rate varies by hour of day.

Given inline on a fleet's demand entry (``profile: {hourly: [...]}``) or as a file
(``profile: day.yaml``, written by ``hetsim trace profile``). Either 24 values, one per hour
(00:00-01:00 first), or ``points``: (hour, value) pairs, each value holding from its hour until
the next point's (the last wraps round to the first). Values are a *shape*: the planner scales
them so the largest is 1 and multiplies by the demand's ``rate_per_s``, which is therefore the
peak hour's rate (sessions/s). A trace's profile stores sessions/s per hour (``unit``), used the
same way.
"""

from __future__ import annotations

import itertools

from pydantic import Field, model_validator

from hetsim.specs.common import FrozenModel

HOURS_PER_DAY = 24


class DayProfile(FrozenModel):
    """A rate shape over a day's 24 hours; see the module docstring."""

    name: str = ""
    unit: str = Field(default="multiplier", description="what the values are: 'multiplier' or 'sessions/s'")
    source: str = Field(default="", description="where the shape comes from (a trace file, a measurement)")
    hourly: tuple[float, ...] | None = Field(default=None, description="24 values > 0, hour 0 first")
    points: tuple[tuple[float, float], ...] | None = Field(
        default=None, description="(hour in [0, 24), value > 0) pairs, hours increasing; piecewise constant"
    )

    @model_validator(mode="after")
    def _one_shape(self) -> DayProfile:
        if (self.hourly is None) == (self.points is None):
            raise ValueError("profile: expected either hourly (24 values) or points ((hour, value) pairs), "
                             f"got {'both' if self.hourly is not None else 'neither'}")  # fmt: skip
        if self.hourly is not None:
            if len(self.hourly) != HOURS_PER_DAY:
                raise ValueError(f"profile.hourly: expected {HOURS_PER_DAY} values (one per hour), got {len(self.hourly)}")
            bad = [(h, v) for h, v in enumerate(self.hourly) if not v > 0]
            if bad:
                raise ValueError(f"profile.hourly: expected every value > 0, got {bad[0][1]} at hour {bad[0][0]}")
        if self.points is not None:
            if not self.points:
                raise ValueError("profile.points: expected at least one (hour, value) pair, got none")
            hours = [h for h, _ in self.points]
            if any(not 0 <= h < HOURS_PER_DAY for h in hours) or any(b <= a for a, b in itertools.pairwise(hours)):
                raise ValueError(f"profile.points: expected hours increasing within [0, 24), got {hours}")
            bad_values = [v for _, v in self.points if not v > 0]
            if bad_values:
                raise ValueError(f"profile.points: expected every value > 0, got {bad_values[0]}")
        return self

    def hourly_values(self) -> tuple[float, ...]:
        """The value of each hour 0..23; a point's value holds over the hours whose start is at or
        after it (a point at 7.5 takes effect at hour 8), the last point's wrapping round midnight."""
        if self.hourly is not None:
            return self.hourly
        assert self.points is not None
        values = []
        for hour in range(HOURS_PER_DAY):
            earlier = [v for h, v in self.points if h <= hour]
            values.append(earlier[-1] if earlier else self.points[-1][1])
        return tuple(values)

    def multipliers(self) -> tuple[float, ...]:
        """Each hour's rate as a fraction of the peak hour's (the largest is 1)."""
        values = self.hourly_values()
        peak = max(values)
        return tuple(v / peak for v in values)
