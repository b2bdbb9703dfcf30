"""The paper's result claims (Figs. 8 and 9, §5.3, the blog's headline numbers) checked against
the pair study, one row each: what the paper says, what we get with each input set, agree or
not, and which input or modelling choice moves it (paper.md E7-E10). Pure: frames in, frame out.

Every ordering claim is counted over *cases* (model x precision x SLA, per request shape): a
claim 'holds in k/n cases'. Verdicts: ``agree`` (all cases, or most for claims the paper itself
hedges with 'often'), ``partly`` (some), ``disagree`` (none). Sensitivity input sets and the
relaxed-TBT SLA show what moves each count.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import pandas as pd

from hetsim.specs.study import PairStudySpec
from hetsim.study.facts import ClaimRow, fact_rows
from hetsim.study.reasons import Reason, reasons
from hetsim.study.worked_example import ExampleResult

PAPER_DEVICES = ("h100", "b200", "gaudi3")  # the devices of the paper's pairs
CLAIM_COLUMNS = ("id", "experiment", "claim", "source", "ours_paper", "ours_datasheet", "verdict_paper",
                 "verdict_datasheet", "why", "commentary", "test")  # fmt: skip
TEST_FILE = "tests/paper/test_claim_verdicts.py"


@dataclass(frozen=True)
class Scope:
    """The cases a claim is counted over: one input set, some shapes, some SLAs."""

    input_set: str
    shapes: tuple[str, ...]
    slas: tuple[str, ...]


@dataclass(frozen=True)
class Outcome:
    holds: int
    cases: int
    detail: str

    def text(self) -> str:
        return f"{self.holds}/{self.cases} cases; {self.detail}"


Check = Callable[[dict[str, pd.DataFrame], Scope, PairStudySpec], Outcome]


def benefits(frames: dict[str, pd.DataFrame], scope: Scope) -> pd.DataFrame:
    """TCO benefit by case (rows: shape, variant, sla) and pair (columns)."""
    pairs = frames["pairs"]
    mine = pairs[(pairs.input_set == scope.input_set) & pairs["shape"].isin(scope.shapes) & pairs.sla.isin(scope.slas)]
    return mine.pivot_table(index=["shape", "variant", "sla"], columns="pair", values="tco_benefit", dropna=False)


def stage_costs(frames: dict[str, pd.DataFrame], scope: Scope, stage: str) -> pd.DataFrame:
    """$/request of a stage's best configuration by case (rows) and device (columns)."""
    stages = frames["stages"]
    mine = stages[(stages.input_set == scope.input_set) & stages["shape"].isin(scope.shapes)
                  & stages.sla.isin(scope.slas) & (stages.stage == stage)]  # fmt: skip
    return mine.pivot_table(index=["shape", "variant", "sla"], columns="device", values="usd_per_request", dropna=False)


def _tally(labels: Sequence[str]) -> str:
    return ", ".join(f"{label} x{count}" for label, count in Counter(labels).most_common())


def _range(values: pd.Series) -> str:
    values = values.dropna()
    return f"{values.min():.2f}-{values.max():.2f} (median {values.median():.2f})" if len(values) else "none feasible"


# ---- checks ------------------------------------------------------------------------------


def _best_pair(target: str) -> Check:
    def check(frames: dict[str, pd.DataFrame], scope: Scope, study: PairStudySpec) -> Outcome:
        table = benefits(frames, scope)[list(study.paper_pairs)]
        tied = table[target] >= table.max(axis=1) * (1 - study.tie_tolerance)
        winners = table.idxmax(axis=1)
        detail = f"best of the paper's pairs: {_tally(winners)}; {target} within {study.tie_tolerance:.0%} of the best in {int(tied.sum())}"
        return Outcome(int(tied.sum()), len(table), detail)

    return check


def _beats(better: str, worse: str, share: float = 1.0) -> Check:
    def check(frames: dict[str, pd.DataFrame], scope: Scope, study: PairStudySpec) -> Outcome:
        table = benefits(frames, scope)
        ratio = table[better] / table[worse]
        return Outcome(int((ratio >= share).sum()), len(table), f"{better} / {worse} = {_range(ratio)}")

    return check


def _comparable(better: str, worse: str) -> Check:
    def check(frames: dict[str, pd.DataFrame], scope: Scope, study: PairStudySpec) -> Outcome:
        return _beats(better, worse, study.comparable_ratio)(frames, scope, study)

    return check


def _cheapest(stage: str, target: str) -> Check:
    def check(frames: dict[str, pd.DataFrame], scope: Scope, study: PairStudySpec) -> Outcome:
        costs = stage_costs(frames, scope, stage)
        paper = costs[list(PAPER_DEVICES)]
        tied = paper[target] <= paper.min(axis=1) * (1 + study.tie_tolerance)
        detail = (f"cheapest {stage} of {'/'.join(PAPER_DEVICES)}: {_tally(paper.idxmin(axis=1))}; of all five: "
                  f"{_tally(costs.idxmin(axis=1))}")  # fmt: skip
        return Outcome(int(tied.sum()), len(costs), detail)

    return check


def _cheapest_when_latency_or_fp8(frames: dict[str, pd.DataFrame], scope: Scope, study: PairStudySpec) -> Outcome:
    costs = stage_costs(frames, scope, "prefill")
    latency_slas = {s.name for s in study.slas if s.ttft_s is not None}
    fp8 = {f"{m.label} {d.label}" for m in study.models for d in study.dtypes if d.dtype == "fp8"}
    keep = [i for i in costs.index if i[2] in latency_slas or i[1] in fp8]
    winners = costs.loc[keep, ["b200", "gaudi3"]].idxmin(axis=1)
    return Outcome(int((winners == "b200").sum()), len(keep), f"cheaper prefill of b200/gaudi3: {_tally(winners)}")


def _all_above_baseline(frames: dict[str, pd.DataFrame], scope: Scope, study: PairStudySpec) -> Outcome:
    shown = [p for p in study.paper_pairs if p != study.baseline]
    values = benefits(frames, scope)[shown].stack(future_stack=True)
    worst = values.idxmin()
    detail = f"lowest {values.min():.2f} ({worst[3]}, {worst[1]} {worst[0]} {worst[2]})"
    return Outcome(int((values > 1.0).sum()), len(values), detail)


def _fp8_larger(target: str) -> Check:
    def check(frames: dict[str, pd.DataFrame], scope: Scope, study: PairStudySpec) -> Outcome:
        table = benefits(frames, scope)[target].reset_index()
        table["model"] = table.variant.str.split(" ").str[0]
        table["precision"] = table.variant.str.split(" ").str[1]
        wide = table.pivot_table(index=["shape", "model", "sla"], columns="precision", values=target)
        gain = wide["FP8"] / wide["FP16"]
        return Outcome(int((gain > 1.0).sum()), len(wide), f"{target} FP8 / FP16 benefit = {_range(gain)}")

    return check


def _band(pair: str, against: tuple[str, ...], target: float) -> Check:
    def check(frames: dict[str, pd.DataFrame], scope: Scope, study: PairStudySpec) -> Outcome:
        table = benefits(frames, scope)
        ratio = table[pair] / table[list(against)].max(axis=1)
        low, high = target * (1 - study.blog.tolerance), target * (1 + study.blog.tolerance)
        inside = int(((ratio >= low) & (ratio <= high)).sum())
        return Outcome(
            inside, len(table), f"{pair} / best of {'/'.join(against)} = {_range(ratio)}; band {low:.2f}-{high:.2f}"
        )

    return check


# ---- the claims --------------------------------------------------------------------------


@dataclass(frozen=True)
class Claim:
    id: str
    experiment: str
    claim: str
    source: str
    shapes: str  # 'decode-heavy', 'prefill-heavy' or 'both'
    rule: str  # 'all' (every case) or 'most' (at least half: 'often', or a second-hand number of unknown case)
    check: Check
    why: str


def claims(study: PairStudySpec) -> list[Claim]:
    """The paper's ordering claims, in the order the paper states them."""
    blog = study.blog
    nvidia = ("h100::h100", "b200::b200")
    return [
        Claim("E7-best", "E7", "B200::Gaudi3 has the best TCO benefit (of the paper's pairs), decode-heavy", "§5.1, Fig. 8",
              "decode-heavy", "all", _best_pair("b200::gaudi3"), "best-pair"),
        Claim("E7-vs-B200", "E7", "B200::Gaudi3 beats B200::B200, decode-heavy", "§5.1, Fig. 8", "decode-heavy", "all",
              _beats("b200::gaudi3", "b200::b200"), "decode"),
        Claim("E7-H100-Gaudi3", "E7/E8", "H100::Gaudi3 is often comparable to or slightly better than B200::B200",
              "abstract, §5.1", "both", "most", _comparable("h100::gaudi3", "b200::b200"), "h100-gaudi3"),
        Claim("E7-decode", "E7", "Gaudi 3 is chosen for decode (decode-intensive)", "§5.3, Fig. 8", "decode-heavy", "all",
              _cheapest("decode", "gaudi3"), "decode"),
        Claim("E7-above-1", "E7/E8", "Every pair shown beats H100::H100 (bars above the dashed 1.0 line; implied)",
              "Figs. 8, 9", "both", "all", _all_above_baseline, "above-1"),
        Claim("E8-prefill", "E8", "Gaudi 3 is the most cost-effective prefill device for long inputs", "§5.3, Fig. 9",
              "prefill-heavy", "all", _cheapest("prefill", "gaudi3"), "prefill"),
        Claim("E8-B200-prefill", "E8", "B200 is picked for prefill when latency or FP8 performance matters most",
              "§5.3, Fig. 9", "prefill-heavy", "all", _cheapest_when_latency_or_fp8, "prefill"),
        Claim("E8-best", "E8", "B200::Gaudi3 has the best TCO benefit (of the paper's pairs), prefill-heavy",
              "§5.1, Fig. 9", "prefill-heavy", "all", _best_pair("b200::gaudi3"), "best-pair"),
        Claim("E7-FP8", "E7/E8", "B200::Gaudi3's benefit is largest for FP8 models", "§5.1", "both", "all",
              _fp8_larger("b200::gaudi3"), "fp8"),
        Claim("E9-1.7x", "E9", f"Blog (2nd-hand): B200::Gaudi3 ~{blog.hetero_vs_single_vendor}x over single-vendor "
              "(NVIDIA) disaggregation", "blog Oct 2025 via Momento", "both", "most",
              _band("b200::gaudi3", nvidia, blog.hetero_vs_single_vendor), "blog"),
        Claim("E9-decode", "E9", f"Blog (2nd-hand): B200::Gaudi3 up to ~{blog.vs_baseline_decode_heavy}x over H100::H100, "
              "decode-heavy", "blog via Momento", "decode-heavy", "most",
              _band("b200::gaudi3", ("h100::h100",), blog.vs_baseline_decode_heavy), "blog"),
        Claim("E9-prefill", "E9", f"Blog (2nd-hand): B200::Gaudi3 ~{blog.vs_baseline_prefill_heavy}x over H100::H100, "
              "prefill-heavy", "blog via Momento", "prefill-heavy", "most",
              _band("b200::gaudi3", ("h100::h100",), blog.vs_baseline_prefill_heavy), "blog"),
        Claim("E9-B200", "E9", f"Blog (2nd-hand): B200::B200 ~{blog.single_vendor_decode_heavy}x over H100::H100, "
              "decode-heavy", "blog via Momento", "decode-heavy", "most",
              _band("b200::b200", ("h100::h100",), blog.single_vendor_decode_heavy), "blog"),
    ]  # fmt: skip


def verdict(outcome: Outcome, rule: str) -> str:
    if outcome.cases == 0:
        return "not testable"
    if outcome.holds == outcome.cases or (rule == "most" and outcome.holds * 2 >= outcome.cases):
        return "agree"
    return "partly" if outcome.holds else "disagree"


def scope_for(claim: Claim, study: PairStudySpec, input_set: str, relaxed: bool = False) -> Scope:
    shapes = tuple(s.name for s in study.shapes) if claim.shapes == "both" else (claim.shapes,)
    slas = [s for s in study.slas if s.is_plotted]
    if relaxed:  # the latency SLA replaced by the relaxed-TBT sensitivity SLA
        relaxed_sla = next(s for s in study.slas if not s.is_plotted and s.tbt_s)
        slas = [relaxed_sla if s.tbt_s else s for s in slas]
    return Scope(input_set, shapes, tuple(s.name for s in slas))


def _sensitivity(claim: Claim, frames: dict[str, pd.DataFrame], study: PairStudySpec, main: str) -> str:
    parts = []
    for rules in study.input_sets:
        if rules.role == "sensitivity":
            outcome = claim.check(frames, scope_for(claim, study, rules.name), study)
            parts.append(f"{rules.name}: {outcome.holds}/{outcome.cases}")
    relaxed = next((s for s in study.slas if not s.is_plotted and s.tbt_s), None)
    if relaxed is not None and relaxed.tbt_s is not None:
        outcome = claim.check(frames, scope_for(claim, study, main, relaxed=True), study)
        parts.append(f"{main} with TBT {relaxed.tbt_s * 1e3:g} ms: {outcome.holds}/{outcome.cases}")
    return "Holds in: " + "; ".join(parts) + "." if parts else ""


def ordering_rows(study: PairStudySpec, frames: dict[str, pd.DataFrame], why: dict[str, Reason]) -> list[ClaimRow]:
    """One claim-table row per ordering claim."""
    mains = [s.name for s in study.input_sets if s.role == "main"]
    paper_set, sheet_set = mains[0], mains[-1]
    rows = []
    for claim in claims(study):
        ours = {name: claim.check(frames, scope_for(claim, study, name), study) for name in (paper_set, sheet_set)}
        reason = why[claim.why]
        rows.append(ClaimRow(
            claim.id, claim.experiment, claim.claim, claim.source, ours[paper_set].text(),
            verdict(ours[paper_set], claim.rule), f"{reason.derived} {_sensitivity(claim, frames, study, paper_set)}".strip(),
            reason.commentary, f"{TEST_FILE}::test_ordering_verdicts_flip_past_their_tolerance",
            ours[sheet_set].text(), verdict(ours[sheet_set], claim.rule),
        ))  # fmt: skip
    return rows


def evaluate_claims(study: PairStudySpec, frames: dict[str, pd.DataFrame], example: ExampleResult) -> pd.DataFrame:
    """The claim table: facts (E1, E3-E6, E10, E11; ``example`` is the solved worked example)
    then the result orderings (E7-E9)."""
    rows = fact_rows(study, frames, example) + ordering_rows(study, frames, reasons(study, frames))
    return pd.DataFrame([row.record() for row in rows], columns=list(CLAIM_COLUMNS))
