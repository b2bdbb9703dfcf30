"""A number as the paper prints it, and the tolerance that follows from how it is printed."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Printed:
    """A printed number, kept as its text: ours agrees when it rounds to it, i.e. lies within
    half a unit of the last printed digit ("0.07": +-0.005; "131072": +-0.5)."""

    text: str

    @property
    def value(self) -> float:
        return float(self.text)

    @property
    def tolerance(self) -> float:
        decimals = len(self.text.partition(".")[2])
        return 0.5 * 10.0**-decimals

    def agrees(self, ours: float) -> bool:
        return abs(ours - self.value) <= self.tolerance + 1e-12

    def compare(self, label: str, ours: float) -> str:
        """'label ours vs printed P (agrees within T | off by D)', ours at the printed precision + 1 digit."""
        decimals = len(self.text.partition(".")[2])
        shown = f"{ours:,.{decimals + 1}f}" if decimals else f"{ours:,.1f}"
        verdict = f"agrees within {self.tolerance:g}" if self.agrees(ours) else f"off by {abs(ours - self.value):.3g}"
        return f"{label} {shown} vs printed {self.text} ({verdict})"
