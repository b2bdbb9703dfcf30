"""Fact verdicts are computed from numbers against the paper's printed ones, with a stated
tolerance (half a unit of the last printed digit), and flip when an input moves past it."""

import pandas as pd
import pytest

from hetsim.cost.tco import preset
from hetsim.plan.paper_facts import PAPER_E4, _e4, _e5, _row, _within

PRICES = {"h100": 25_000.0, "b200": 40_000.0, "gaudi3": 12_500.0}  # Table 5 purchase prices (paper.md)


def _inputs(scale: float = 1.0) -> pd.DataFrame:
    return pd.DataFrame([{"input_set": "paper", "device": d, "price_usd": p * scale} for d, p in PRICES.items()])


def _link(kv_scale: float = 1.0) -> pd.DataFrame:
    rows = []
    for model, per_token in (("8B", 131_072), ("70B", 327_680)):
        for tokens in (1024, 32_768):
            rows.append({"model": model, "instances": 1, "precision": "fp16", "input_tokens": tokens,
                         "kv_gb": per_token * tokens / 1e9 * kv_scale})  # fmt: skip
    return pd.DataFrame(rows)


def test_within_is_half_a_unit_of_the_last_printed_digit():
    assert _within(0.0954, 0.095, 3) and not _within(0.0956, 0.095, 3)
    assert _within(131_072.4, 131_072, 0) and not _within(131_073, 131_072, 0)


def test_e4_agrees_at_table_5_prices_and_flips_past_the_tolerance():
    assert preset("paper").capital_recovery_factor == pytest.approx(PAPER_E4["factor"], abs=5e-7)
    assert _e4(_inputs(), "paper")["verdict_paper"] == "agree"
    assert _e4(_inputs(1.001), "paper")["verdict_paper"] == "partly"  # capex moves, the annuity factor does not


def test_e5_agrees_at_the_architectures_kv_size_and_flips_when_it_moves():
    assert _e5(_link())["verdict_paper"] == "agree"
    assert _e5(_link(1.0001))["verdict_paper"] == "disagree"


def test_a_datasheet_verdict_is_never_borrowed_from_the_paper_inputs():
    computed_once = _row("X", "X", "claim", "src", "ours", "agree", "why", "test", ours_datasheet="not computed")
    assert computed_once["verdict_datasheet"] == "not computed"
    input_free = _row("Y", "Y", "claim", "src", "ours", "agree", "why", "test")
    assert input_free["verdict_datasheet"] == "agree"  # the same computation: it does not use device inputs
