"""Probability distributions of workload quantities (token counts, seconds, counts).

One small discriminated union, tagged by ``dist``. Every quantity a workload describes is
non-negative, so every distribution is checked to produce only values >= 0; the unit is in
the name of the field that holds the distribution (``latency_s``, ``output_tokens``).
A bare number where a distribution is expected means ``{dist: constant, value: N}``.
Sampling lives in ``hetsim.workload.sampling``; this module only describes.
"""

from __future__ import annotations

import math
from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, Field, field_validator, model_validator

from hetsim.specs.common import FrozenModel

_NEGATIVE = "expected a number >= 0 (durations, token counts and sizes cannot be negative), got {value}"


def _check_non_negative(value: float | None) -> float | None:
    if value is not None and (not math.isfinite(value) or value < 0):
        raise ValueError(_NEGATIVE.format(value=value))
    return value


MAX_MEAN = 1e9
"""The largest mean a distribution may have: a billion tokens, seconds or units, past any agent."""
MAX_CV = 100.0
"""The largest coefficient of variation (as for gamma arrivals): past it, samples are all but
always 0 with a rare value beyond any bound, and the moments overflow."""


class _Dist(FrozenModel):
    """Fields every distribution has: an optional citation of where its numbers come from."""

    source: str | None = Field(default=None, description="key of the file's sources map, or 'derived: ...' text")
    note: str = ""

    @model_validator(mode="after")
    def _bounded(self) -> _Dist:
        """A mean that is finite and at most ``MAX_MEAN``, and a cv within ``MAX_CV`` (a 'cv' of
        1e300 would overflow the moments and every sample)."""
        cv = getattr(self, "cv", None)
        if cv is not None and cv > MAX_CV:
            raise ValueError(f"cv: expected at most {MAX_CV:g}, got {cv:g}")
        try:
            mean = self.mean
        except TypeError:  # a parameterisation left incomplete: the distribution's own check says so
            return self
        except (OverflowError, ZeroDivisionError, ValueError):
            mean = math.inf
        if not math.isfinite(mean) or mean > MAX_MEAN:
            raise ValueError(f"expected parameters with a finite mean of at most {MAX_MEAN:g}, got a mean of {mean:g}")
        return self

    @property
    def mean(self) -> float:  # pragma: no cover - every subclass overrides
        raise NotImplementedError

    def describe(self) -> str:
        """A short human-readable form, e.g. ``lognormal(mean=166, cv=0.73)``."""
        dumped = self.model_dump(by_alias=True, exclude={"source", "note", "dist"})
        shown = {k: v for k, v in dumped.items() if v is not None}
        args = ", ".join(f"{k}={_short(v)}" for k, v in shown.items())
        return f"{self.dist}({args})"  # type: ignore[attr-defined]


def _given(dist: _Dist) -> str:
    fields = dist.model_dump(by_alias=True, exclude={"source", "note", "dist"}, exclude_none=True)
    return ", ".join(fields) or "none"


def _short(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.6g}"
    if isinstance(value, tuple | list):
        return "[" + ", ".join(_short(v) for v in value[:6]) + (", ..." if len(value) > 6 else "") + "]"
    return str(value)


class ConstantDist(_Dist):
    dist: Literal["constant"] = "constant"
    value: float

    _value = field_validator("value")(classmethod(lambda cls, v: _check_non_negative(v)))

    @property
    def mean(self) -> float:
        return self.value


class UniformDist(_Dist):
    dist: Literal["uniform"]
    low: float
    high: float

    _bounds = field_validator("low", "high")(classmethod(lambda cls, v: _check_non_negative(v)))

    @model_validator(mode="after")
    def _ordered(self) -> UniformDist:
        if self.high < self.low:
            raise ValueError(f"high: expected at least low ({self.low}), got {self.high}")
        return self

    @property
    def mean(self) -> float:
        return (self.low + self.high) / 2


class NormalDist(_Dist):
    """A normal distribution truncated to [low, high] (low defaults to 0)."""

    dist: Literal["normal"]
    mean_value: float = Field(alias="mean")
    std: float
    low: float = 0.0
    high: float | None = None

    _positive = field_validator("std", "low", "high")(classmethod(lambda cls, v: _check_non_negative(v)))

    @model_validator(mode="after")
    def _ordered(self) -> NormalDist:
        if self.high is not None and self.high <= self.low:
            raise ValueError(f"high: expected more than low ({self.low}), got {self.high}")
        if self.std == 0 and not self.low <= self.mean_value <= (self.high if self.high is not None else math.inf):
            raise ValueError(f"mean: expected a value inside [low, high] when std is 0, got {self.mean_value}")
        if self.std > 0 and _normal_mass(self) < 1e-6:
            raise ValueError(f"low: expected [low, high] to hold some of the mass, got under 1e-6 of it ({self.low})")
        return self

    @property
    def mean(self) -> float:
        if self.std == 0:
            return self.mean_value
        alpha, beta = _standardised(self)
        mass = _phi_cdf(beta) - _phi_cdf(alpha)
        return self.mean_value + self.std * (_phi_pdf(alpha) - _phi_pdf(beta)) / mass


def _standardised(dist: NormalDist) -> tuple[float, float]:
    high = math.inf if dist.high is None else dist.high
    return (dist.low - dist.mean_value) / dist.std, (high - dist.mean_value) / dist.std


def _normal_mass(dist: NormalDist) -> float:
    alpha, beta = _standardised(dist)
    return _phi_cdf(beta) - _phi_cdf(alpha)


def _phi_pdf(x: float) -> float:
    return 0.0 if math.isinf(x) else math.exp(-x * x / 2) / math.sqrt(2 * math.pi)


def _phi_cdf(x: float) -> float:
    return 0.5 * (1 + math.erf(x / math.sqrt(2)))


class LognormalDist(_Dist):
    """Either ``mean`` and ``cv`` (of the variable itself) or ``mu`` and ``sigma`` (of its log)."""

    dist: Literal["lognormal"]
    mean_value: float | None = Field(default=None, alias="mean")
    cv: float | None = None
    mu: float | None = None
    sigma: float | None = None

    _positive = field_validator("mean_value", "cv", "sigma")(classmethod(lambda cls, v: _check_non_negative(v)))

    @model_validator(mode="after")
    def _one_parameterisation(self) -> LognormalDist:
        by_moments = self.mean_value is not None and self.cv is not None
        by_log = self.mu is not None and self.sigma is not None
        others = (self.mu, self.sigma) if by_moments else (self.mean_value, self.cv)
        if by_moments == by_log or any(v is not None for v in others):
            raise ValueError(f"mean: expected either 'mean' and 'cv', or 'mu' and 'sigma', got {_given(self)}")
        if by_moments and self.mean_value == 0:
            raise ValueError("mean: expected a number > 0 for a lognormal, got 0")
        return self

    @property
    def log_params(self) -> tuple[float, float]:
        """(mu, sigma) of the underlying normal."""
        if self.mu is not None and self.sigma is not None:
            return self.mu, self.sigma
        sigma2 = math.log1p(self.cv**2)  # type: ignore[operator]
        return math.log(self.mean_value) - sigma2 / 2, math.sqrt(sigma2)  # type: ignore[arg-type]

    @property
    def mean(self) -> float:
        mu, sigma = self.log_params
        return math.exp(mu + sigma**2 / 2)


class GammaDist(_Dist):
    """Either ``mean`` and ``cv`` or ``shape`` and ``scale``."""

    dist: Literal["gamma"]
    mean_value: float | None = Field(default=None, alias="mean")
    cv: float | None = None
    shape: float | None = None
    scale: float | None = None

    _positive = field_validator("mean_value", "cv", "shape", "scale")(
        classmethod(lambda cls, v: _check_non_negative(v))
    )

    @model_validator(mode="after")
    def _one_parameterisation(self) -> GammaDist:
        by_moments = self.mean_value is not None and self.cv is not None
        by_shape = self.shape is not None and self.scale is not None
        others = (self.shape, self.scale) if by_moments else (self.mean_value, self.cv)
        if by_moments == by_shape or any(v is not None for v in others):
            raise ValueError(f"mean: expected either 'mean' and 'cv', or 'shape' and 'scale', got {_given(self)}")
        if by_moments and (self.mean_value == 0 or self.cv == 0):
            raise ValueError(f"cv: expected mean > 0 and cv > 0 (a constant has its own dist), got {self.cv}")
        if by_shape and self.shape == 0:
            raise ValueError("shape: expected a number > 0, got 0")
        return self

    @property
    def shape_scale(self) -> tuple[float, float]:
        if self.shape is not None and self.scale is not None:
            return self.shape, self.scale
        shape = 1.0 / self.cv**2  # type: ignore[operator]
        return shape, self.mean_value / shape  # type: ignore[operator]

    @property
    def mean(self) -> float:
        shape, scale = self.shape_scale
        return shape * scale


class EmpiricalDist(_Dist):
    """A discrete distribution over ``values`` with ``weights`` (equal when left out)."""

    dist: Literal["empirical"]
    values: tuple[float, ...] = Field(min_length=1)
    weights: tuple[float, ...] | None = None

    @field_validator("values", "weights")
    @classmethod
    def _all_non_negative(cls, values: tuple[float, ...] | None) -> tuple[float, ...] | None:
        for value in values or ():
            _check_non_negative(value)
        return values

    @model_validator(mode="after")
    def _weights_match(self) -> EmpiricalDist:
        if self.weights is not None:
            if len(self.weights) != len(self.values):
                raise ValueError(
                    f"weights: expected {len(self.values)} weights (one per value), got {len(self.weights)}"
                )
            if sum(self.weights) <= 0:
                raise ValueError(f"weights: expected a positive total, got {sum(self.weights)}")
        return self

    @property
    def probabilities(self) -> tuple[float, ...]:
        weights = self.weights or (1.0,) * len(self.values)
        total = sum(weights)
        return tuple(w / total for w in weights)

    @property
    def mean(self) -> float:
        return sum(v * p for v, p in zip(self.values, self.probabilities, strict=True))


def _number_is_constant(value: Any) -> Any:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return {"dist": "constant", "value": value}
    return value


Distribution = Annotated[
    ConstantDist | UniformDist | NormalDist | LognormalDist | GammaDist | EmpiricalDist,
    Field(discriminator="dist"),
    BeforeValidator(_number_is_constant),
]
"""Any distribution; in YAML ``{dist: lognormal, mean: 166, cv: 0.73}`` or a bare number."""

AnyDist = ConstantDist | UniformDist | NormalDist | LognormalDist | GammaDist | EmpiricalDist
