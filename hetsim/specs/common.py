"""Shared building blocks of the spec models: frozen strict models and sourced quantities."""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Annotated, Any, ClassVar

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator, model_validator

from hetsim.units import Dimension, to_si

SOURCE_PREFIXES = ("derived:", "assumed:", "measured:", "paper:", "http://", "https://")
"""A source is a key of the file's ``sources`` map, or free text starting with one of these."""


MAX_EXACT_INT = 2**53
"""The largest integer a spec accepts: every count and size in hetsim fits far below it, it is
exact as a float, and anything past it (an int64 that wrapped, 10**30) is a typo or an attack:
it would wrap to a negative number in a numpy int64 column or lose its digits as a float."""


class FrozenModel(BaseModel):
    """Base of every spec: immutable, unknown keys are errors (never ignored), a float is a finite
    number (inf and NaN pass every bound otherwise), and an integer is within ``MAX_EXACT_INT``."""

    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True, allow_inf_nan=False)

    @model_validator(mode="before")
    @classmethod
    def _integers_in_range(cls, data: Any) -> Any:
        if isinstance(data, dict):
            for key, value in data.items():
                found = _huge_integer(value)
                if found is not None:
                    where = ".".join(str(part) for part in (key, *found[0]))
                    raise ValueError(f"{where}: expected an integer within +-2**53, got {_digits(found[1])}")
        return data


def _huge_integer(value: Any, path: tuple[Any, ...] = ()) -> tuple[tuple[Any, ...], int] | None:
    """(path, value) of the first integer past ``MAX_EXACT_INT`` in a raw value (lists and plain
    mappings searched; a nested spec checks its own when it is built)."""
    if isinstance(value, int) and not isinstance(value, bool):
        return (path, value) if abs(value) > MAX_EXACT_INT else None
    items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list | tuple) else ()
    for key, item in items:
        found = _huge_integer(item, (*path, key))
        if found is not None:
            return found
    return None


def _digits(value: int) -> str:
    """A long integer shown short: its first digits and how many there are."""
    text = str(value)
    return text if len(text) <= 24 else f"{text[:12]}... ({len(text.lstrip('-'))} digits)"


MAX_RATE_PER_S = 1e6
"""The highest arrival rate a spec accepts: far past any fleet, far below float overflow in queueing math."""

SchemaVersion = Annotated[int, Field(ge=1, le=1, description="the file format's version: 1 is the only one")]


MAX_NAME_CHARS = 100
"""The longest name: it becomes a file or folder name, which file systems cap at 255 bytes."""


def _safe_name(name: str) -> str:
    """A name that becomes a file or folder name: letters, digits, '-', '_', '.'; not hidden,
    never '..' (a name must not write outside the folder it is joined to); at most
    ``MAX_NAME_CHARS`` long."""
    if (
        not name or len(name) > MAX_NAME_CHARS or not all(c.isalnum() or c in "-_." for c in name)
        or name.startswith(".") or ".." in name
    ):  # fmt: skip
        raise ValueError(
            f"expected a name of letters, digits, '-', '_' or '.' (1 to {MAX_NAME_CHARS} of them) that does not start "
            f"with '.' or hold '..', got {name!r:.80}"
        )
    return name


SafeName = Annotated[str, AfterValidator(_safe_name)]
"""A document's name that hetsim joins to an output folder (fleets, comparisons, scenarios)."""


MAX_SI_VALUE = 1e30
"""The largest quantity a profile may state, in SI units: a zettaFLOP/s machine, a petabyte of
memory and a billion dollars are all far below it; 1e300 in it would overflow the arithmetic."""


class Quantity(FrozenModel):
    """A number with an explicit unit, converted to SI by ``si``."""

    dimension: ClassVar[Dimension] = Dimension.RATIO
    value: float
    unit: str

    @field_validator("value")
    @classmethod
    def _finite_non_negative(cls, value: float) -> float:
        if not math.isfinite(value) or value < 0:
            raise ValueError(f"expected a finite number >= 0, got {value}")
        return value

    @field_validator("unit")
    @classmethod
    def _known_unit(cls, unit: str) -> str:
        to_si(1.0, unit, cls.dimension)  # raises ValueError naming the expected unit
        return unit

    @model_validator(mode="after")
    def _si_in_range(self) -> Quantity:
        si = to_si(self.value, self.unit, self.dimension)
        if not si <= MAX_SI_VALUE:
            raise ValueError(f"value: expected at most {MAX_SI_VALUE:g} in SI units once '{self.unit}' is applied, got {self.value:g}")
        return self

    @property
    def si(self) -> float:
        """The value in SI base units."""
        return to_si(self.value, self.unit, self.dimension)


class SourcedQuantity(Quantity):
    """A datasheet number: value, unit and where it comes from."""

    source: str
    note: str = ""


def _quantity_types(dimension: Dimension) -> tuple[type[Quantity], type[SourcedQuantity]]:
    name = dimension.name.title().replace("_", "")
    plain = type(f"{name}Quantity", (Quantity,), {"dimension": dimension, "__module__": __name__})
    sourced = type(f"Sourced{name}", (SourcedQuantity,), {"dimension": dimension, "__module__": __name__})
    # under their own names too, so that pickle (specs sent to worker processes) finds them
    globals().update({plain.__name__: plain, sourced.__name__: sourced})
    return plain, sourced


BytesQ, SourcedBytes = _quantity_types(Dimension.BYTES)
BandwidthQ, SourcedBandwidth = _quantity_types(Dimension.BYTES_PER_S)
FlopsQ, SourcedFlops = _quantity_types(Dimension.FLOPS)
SecondsQ, SourcedSeconds = _quantity_types(Dimension.SECONDS)
WattsQ, SourcedWatts = _quantity_types(Dimension.WATTS)
UsdQ, SourcedUsd = _quantity_types(Dimension.USD)
UsdPerHourQ, SourcedUsdPerHour = _quantity_types(Dimension.USD_PER_S)
UsdPerKwhQ, SourcedUsdPerKwh = _quantity_types(Dimension.USD_PER_JOULE)
UsdPerKwMonthQ, SourcedUsdPerKwMonth = _quantity_types(Dimension.USD_PER_W_PER_S)


def iter_sourced(model: BaseModel, path: str = "") -> Iterator[tuple[str, SourcedQuantity]]:
    """Yield (dotted path, quantity) for every sourced quantity inside ``model``."""
    for field_name in type(model).model_fields:
        value = getattr(model, field_name)
        here = f"{path}.{field_name}" if path else field_name
        yield from _iter_value(value, here)


def _iter_value(value: Any, path: str) -> Iterator[tuple[str, SourcedQuantity]]:
    if isinstance(value, SourcedQuantity):
        yield path, value
    elif isinstance(value, BaseModel):
        yield from iter_sourced(value, path)
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from _iter_value(item, f"{path}.{key}")
    elif isinstance(value, list | tuple):
        for index, item in enumerate(value):
            yield from _iter_value(item, f"{path}.{index}")


class SourcedDocument(FrozenModel):
    """A profile file: ``schema_version``, ``name``, a ``sources`` map, and sourced numbers.

    Every sourced quantity's ``source`` must be a key of ``sources`` or a free-text citation
    that says what it is (``derived: ...``, ``assumed: ...``, ``measured: ...``, a URL).
    """

    schema_version: SchemaVersion
    name: str
    sources: dict[str, str] = {}

    @field_validator("name")
    @classmethod
    def _slug(cls, name: str) -> str:
        if name != name.lower():
            raise ValueError(f"expected a lower-case slug of letters, digits, '-', '_' or '.', got {name!r}")
        return _safe_name(name)

    @model_validator(mode="after")
    def _sources_resolve(self) -> SourcedDocument:
        for path, quantity in iter_sourced(self):
            if quantity.source not in self.sources and not quantity.source.startswith(SOURCE_PREFIXES):
                known = ", ".join(sorted(self.sources)) or "none"
                raise ValueError(
                    f"{path}.source: expected a key of 'sources' ({known}) or text starting with "
                    f"{'/'.join(SOURCE_PREFIXES)}, got {quantity.source!r}"
                )
        return self

    def cite(self, source: str) -> str:
        """Resolve a source key to its citation text (URLs, notes)."""
        return self.sources.get(source, source)


PositiveInts = tuple[Annotated[int, Field(ge=1)], ...]
"""A tuple of options that are counts (parallel degrees, batch sizes): each at least 1."""
