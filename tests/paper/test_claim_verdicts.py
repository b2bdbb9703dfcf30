"""Every ordering claim's verdict (E7-E9) is computed from the pair benefits and stage costs under
the study's stated tolerance, and flips when one input moves past it.

Each case builds a small pair study frame (every case of the shipped study's grid, one benefit per
pair and one $/request per device and stage), moves one input just inside the tolerance and just
outside it, recomputes the claim and checks the three verdicts.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd
import pytest

from hetsim.io.studies import default_study_path, load_study
from hetsim.study.claims import claims, scope_for, verdict

STUDY = load_study(default_study_path("paper"))
TIE, COMPARABLE, BAND = STUDY.tie_tolerance, STUDY.comparable_ratio, STUDY.blog.tolerance
BENEFIT = {"h100::h100": 1.0, "h100::b200": 1.2, "h100::gaudi3": 1.5, "b200::h100": 1.05, "b200::b200": 1.6,
           "b200::gaudi3": 1.8}  # fmt: skip
COST = {"prefill": {"h100": 1.0, "b200": 0.9, "gaudi3": 0.8, "a100": 2.0, "mi300x": 1.5},
        "decode": {"h100": 1.0, "b200": 0.8, "gaudi3": 0.6, "a100": 1.5, "mi300x": 1.2}}  # fmt: skip


@dataclass(frozen=True)
class Move:
    """Inputs changed from the base: pair benefits, stage $/request, and FP8-only benefit factors."""

    benefit: dict[str, float] = field(default_factory=dict)
    cost: dict[tuple[str, str], float] = field(default_factory=dict)
    fp8_factor: dict[str, float] = field(default_factory=dict)


def frames(move: Move) -> dict[str, pd.DataFrame]:
    """Pairs and stages frames of the input set 'paper' over every case of the study's grid."""
    pairs, stages = [], []
    for shape in STUDY.shapes:
        for model in STUDY.models:
            for dtype in STUDY.dtypes:
                for sla in STUDY.slas:
                    case = {"input_set": "paper", "shape": shape.name, "variant": f"{model.label} {dtype.label}",
                            "sla": sla.name}  # fmt: skip
                    factor = lambda pair: move.fp8_factor.get(pair, 1.0) if dtype.dtype == "fp8" else 1.0  # noqa: E731, B023
                    pairs += [case | {"pair": pair, "tco_benefit": value * factor(pair)}
                              for pair, value in (BENEFIT | move.benefit).items()]  # fmt: skip
                    stages += [case | {"stage": stage, "device": device, "usd_per_request": move.cost.get((stage, device), usd)}
                               for stage, by_device in COST.items() for device, usd in by_device.items()]  # fmt: skip
    return {"pairs": pd.DataFrame(pairs), "stages": pd.DataFrame(stages)}


def verdict_of(claim_id: str, move: Move) -> str:
    claim = next(c for c in claims(STUDY) if c.id == claim_id)
    return verdict(claim.check(frames(move), scope_for(claim, STUDY, "paper"), STUDY), claim.rule)


def within(pair: str, of: float, by: float) -> Move:
    return Move(benefit={pair: of * by})


# (claim, move just inside the tolerance, move just outside it, verdicts at base / inside / outside)
FLIPS = [
    # best pair: b200::gaudi3 (1.8) ties when a rival leads by less than the tie tolerance
    ("E7-best", within("h100::gaudi3", 1.8, 1 / (1 - TIE / 2)), within("h100::gaudi3", 1.8, 1 / (1 - 1.5 * TIE)),
     ("agree", "agree", "disagree")),
    ("E8-best", within("b200::b200", 1.8, 1 / (1 - TIE / 2)), within("b200::b200", 1.8, 1 / (1 - 1.5 * TIE)),
     ("agree", "agree", "disagree")),
    # 'beats': at least equal
    ("E7-vs-B200", within("b200::b200", 1.8, 1.0), within("b200::b200", 1.8, 1.001), ("agree", "agree", "disagree")),
    # 'comparable': at least comparable_ratio of B200::B200 (1.6)
    ("E7-H100-Gaudi3", within("h100::gaudi3", 1.6, COMPARABLE * 1.001), within("h100::gaudi3", 1.6, COMPARABLE * 0.999),
     ("agree", "agree", "disagree")),
    # cheapest device: gaudi3 ($0.6 decode, $0.8 prefill) within the tie tolerance of the cheapest
    ("E7-decode", Move(cost={("decode", "b200"): 0.6 * (1 - TIE / 2)}), Move(cost={("decode", "b200"): 0.6 * (1 - 1.5 * TIE)}),
     ("agree", "agree", "disagree")),
    ("E8-prefill", Move(cost={("prefill", "h100"): 0.8 * (1 - TIE / 2)}), Move(cost={("prefill", "h100"): 0.8 * (1 - 1.5 * TIE)}),
     ("agree", "agree", "disagree")),
    # B200 prefills cheaper than Gaudi 3 ($0.8) in the latency and FP8 cases
    ("E8-B200-prefill", Move(cost={("prefill", "b200"): 0.8 * 0.999}), Move(cost={("prefill", "b200"): 0.8 * 1.001}),
     ("disagree", "agree", "disagree")),
    # above the 1.0 line: strictly
    ("E7-above-1", within("b200::h100", 1.0, 1.001), within("b200::h100", 1.0, 1.0), ("agree", "agree", "partly")),
    # FP8 raises b200::gaudi3's benefit
    ("E7-FP8", Move(fp8_factor={"b200::gaudi3": 1.001}), Move(fp8_factor={"b200::gaudi3": 0.999}),
     ("disagree", "agree", "disagree")),
    # the blog's multiples, within +-BAND: over the better NVIDIA pair (1.6), and over H100::H100 (1.0)
    ("E9-1.7x", within("b200::gaudi3", 1.6 * 1.7, 1 - 0.9 * BAND), within("b200::gaudi3", 1.6 * 1.7, 1 - 1.1 * BAND),
     ("disagree", "agree", "disagree")),
    ("E9-decode", within("b200::gaudi3", 4.0, 1 + 0.9 * BAND), within("b200::gaudi3", 4.0, 1 + 1.1 * BAND),
     ("disagree", "agree", "disagree")),
    ("E9-prefill", within("b200::gaudi3", 3.0, 1 - 0.9 * BAND), within("b200::gaudi3", 3.0, 1 - 1.1 * BAND),
     ("disagree", "agree", "disagree")),
    ("E9-B200", within("b200::b200", 2.5, 1 + 0.9 * BAND), within("b200::b200", 2.5, 1 + 1.1 * BAND),
     ("disagree", "agree", "disagree")),
]  # fmt: skip


@pytest.mark.parametrize(("claim_id", "inside", "outside", "verdicts"), FLIPS, ids=[f[0] for f in FLIPS])
def test_ordering_verdicts_flip_past_their_tolerance(claim_id: str, inside: Move, outside: Move, verdicts) -> None:
    assert (verdict_of(claim_id, Move()), verdict_of(claim_id, inside), verdict_of(claim_id, outside)) == verdicts


def test_every_ordering_claim_has_a_flip() -> None:
    assert sorted(f[0] for f in FLIPS) == sorted(c.id for c in claims(STUDY))


def test_a_claim_hedged_with_often_agrees_in_half_its_cases_and_a_plain_one_needs_all() -> None:
    """E7-H100-Gaudi3 ('often') counts both shapes: comparable only decode-heavy is half its cases."""
    decode_only = Move(benefit={"h100::gaudi3": 1.6 * COMPARABLE * 0.999})
    claim = next(c for c in claims(STUDY) if c.id == "E7-H100-Gaudi3")
    table = frames(decode_only)
    heavy = table["pairs"]["shape"] == "decode-heavy"
    table["pairs"].loc[heavy & (table["pairs"].pair == "h100::gaudi3"), "tco_benefit"] = 1.5
    outcome = claim.check(table, scope_for(claim, STUDY, "paper"), STUDY)
    assert (outcome.holds * 2, verdict(outcome, "most"), verdict(outcome, "all")) == (outcome.cases, "agree", "partly")
