"""Vectorised sampling of the workload distributions; every function takes a numpy Generator."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from statistics import NormalDist as _StdNormal
from typing import Any

import numpy as np

from hetsim.specs.distribution import (
    AnyDist,
    ConstantDist,
    EmpiricalDist,
    GammaDist,
    LognormalDist,
    NormalDist,
    UniformDist,
)

_REJECTION_ROUNDS = 50  # truncated normal: rejection rounds before falling back to the inverse CDF
_FIRST_BLOCK, _MAX_BLOCK = 64, 16384  # stream block sizes: small traces stay cheap, big ones amortise


def sample(dist: AnyDist, rng: np.random.Generator, size: int) -> np.ndarray:
    """``size`` independent draws of ``dist`` as a float array (all values >= 0)."""
    if isinstance(dist, ConstantDist):
        return np.full(size, dist.value, dtype=float)
    if isinstance(dist, UniformDist):
        return rng.uniform(dist.low, dist.high, size)
    if isinstance(dist, NormalDist):
        return _truncated_normal(dist, rng, size)
    if isinstance(dist, LognormalDist):
        mu, sigma = dist.log_params
        return rng.lognormal(mu, sigma, size)
    if isinstance(dist, GammaDist):
        shape, scale = dist.shape_scale
        return rng.gamma(shape, scale, size)
    if isinstance(dist, EmpiricalDist):
        values = np.asarray(dist.values, dtype=float)
        return values[rng.choice(len(values), size=size, p=np.asarray(dist.probabilities))]
    raise TypeError(f"unknown distribution {type(dist).__name__}")  # pragma: no cover


def _truncated_normal(dist: NormalDist, rng: np.random.Generator, size: int) -> np.ndarray:
    if dist.std == 0:
        return np.full(size, dist.mean_value, dtype=float)
    high = np.inf if dist.high is None else dist.high
    out = rng.normal(dist.mean_value, dist.std, size)
    bad = (out < dist.low) | (out > high)
    for _ in range(_REJECTION_ROUNDS):
        if not bad.any():
            return out
        out[bad] = rng.normal(dist.mean_value, dist.std, int(bad.sum()))
        bad = (out < dist.low) | (out > high)
    # Narrow interval far in a tail: invert the CDF for what is left (rare, scalar loop).
    normal = _StdNormal(dist.mean_value, dist.std)
    lo, hi = normal.cdf(dist.low), normal.cdf(high) if np.isfinite(high) else 1.0
    for index in np.flatnonzero(bad):
        u = float(np.clip(rng.uniform(lo, hi), 1e-15, 1 - 1e-15))
        out[index] = min(max(normal.inv_cdf(u), dist.low), high)
    return out


Draw = Callable[[], Any]
"""A zero-argument callable returning successive draws of one distribution."""


def make_stream(
    dist: AnyDist, rng: np.random.Generator, integer: bool = False, low: float = 0.0, high: float = np.inf
) -> Draw:
    """Successive draws of ``dist``, clipped to [low, high] and rounded when ``integer``.

    Values are sampled a block at a time (blocks double up to a cap) and handed out by a
    generator's ``__next__``: synthesis draws millions of values one by one, and a C-level
    iterator step costs a fraction of a Python method call. A constant uses no random numbers.
    """
    if isinstance(dist, ConstantDist):
        value = min(max(dist.value, low), high)
        return itertools.repeat(round(value) if integer else value).__next__
    return _blocks(dist, rng, integer, low, high).__next__


def _blocks(dist: AnyDist, rng: np.random.Generator, integer: bool, low: float, high: float) -> Iterator[Any]:
    block = _FIRST_BLOCK
    while True:
        values = np.clip(sample(dist, rng, block), low, high)
        yield from (np.rint(values).astype(np.int64).tolist() if integer else values.tolist())
        block = min(block * 2, _MAX_BLOCK)
