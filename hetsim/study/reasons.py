"""The 'why' of each ordering claim, computed from the frames: the bound the chosen stage
configurations hit, per-$ rates, the fp8 / 16-bit and Table 5 / datasheet peak ratios, cost
shares and each device's FP8 gain. Every number and every comparison word ("double", "equal",
"dearer", "dominates") is decided here from the frames, under the study's tie tolerance; the
typed context (method, the paper's words, unknowns) comes back apart, as ``commentary``. No
verdict reads either. Pure: frames in, text out.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import pandas as pd

from hetsim.perf.transformer import Precision
from hetsim.specs.hardware import DType
from hetsim.specs.study import PairStudySpec

SPARSITY_FACTOR = 2.0  # 2:4 structured sparsity doubles a dense tensor-core peak (NVIDIA's "with sparsity")


@dataclass(frozen=True)
class Reason:
    """Why a claim family comes out as it does: computed text, and typed commentary kept apart."""

    derived: str
    commentary: str = ""


@dataclass(frozen=True)
class Context:
    """What every reason reads: the study, its frames, the two main input sets, the plotted SLAs."""

    study: PairStudySpec
    frames: dict[str, pd.DataFrame]
    main: str
    datasheet: str

    @property
    def slas(self) -> list[str]:
        return [s.name for s in self.study.slas if s.is_plotted]

    @property
    def tolerance(self) -> float:
        return self.study.tie_tolerance


# ---- readings: numbers -> words, under a tolerance ---------------------------------------------


def multiple_of(ratio: float, factor: float, tolerance: float) -> bool:
    """Whether ``ratio`` is ``factor`` within a relative ``tolerance``."""
    return abs(ratio / factor - 1.0) <= tolerance


def ratio_reading(ratio: float, tolerance: float) -> str:
    """'none' (no value), 'equal', 'double', or the ratio itself ('0.91x')."""
    if pd.isna(ratio):
        return "none"
    if multiple_of(ratio, 1.0, tolerance):
        return "equal"
    if multiple_of(ratio, SPARSITY_FACTOR, tolerance):
        return "double"
    return f"{ratio:.2f}x"


def readings(ratios: pd.Series, tolerance: float) -> dict[str, str]:
    """Device -> :func:`ratio_reading` of its ratio."""
    return {str(device): ratio_reading(float(ratio), tolerance) for device, ratio in ratios.items()}


def relation(ratio: float, tolerance: float, words: tuple[str, str, str]) -> str:
    """``words`` = (below, same, above): which one ``ratio`` (this / that) reads as, under ``tolerance``."""
    below, same, above = words
    if multiple_of(ratio, 1.0, tolerance):
        return same
    return above if ratio > 1.0 else below


COST_WORDS = ("cheaper than", "as cheap as", "dearer than")
GAIN_WORDS = ("less than", "as much as", "more than")


def _grouped(reading: dict[str, str]) -> str:
    groups: dict[str, list[str]] = {}
    for device, word in reading.items():
        groups.setdefault(word, []).append(device)
    return "; ".join(f"{word}: {', '.join(devices)}" for word, devices in groups.items())


# ---- numbers from the frames -------------------------------------------------------------------


def _inputs(frames: dict[str, pd.DataFrame], input_set: str) -> pd.DataFrame:
    inputs = frames["inputs"]
    return inputs[inputs.input_set == input_set].set_index("device")


def per_dollar(frames: dict[str, pd.DataFrame], input_set: str, column: str) -> pd.Series:
    """``column`` per $/h of each device, best first."""
    table = _inputs(frames, input_set)
    return (table[column] / table.total_usd_per_h).sort_values(ascending=False)


def fp8_ratios(frames: dict[str, pd.DataFrame], input_set: str) -> pd.Series:
    """Each device's fp8 peak over its 16-bit peak (NaN: no fp8 peak)."""
    table = _inputs(frames, input_set)
    return table.tflops_fp8 / table.tflops_16bit


def peak_ratios(frames: dict[str, pd.DataFrame], printed: str, reference: str) -> pd.Series:
    """Each device's 16-bit peak in ``printed`` over the same device's in ``reference``."""
    return _inputs(frames, printed).tflops_16bit / _inputs(frames, reference).tflops_16bit


def _chosen(ctx: Context, stage: str) -> pd.DataFrame:
    stages = ctx.frames["stages"]
    return stages[(stages.input_set == ctx.main) & (stages.stage == stage) & stages.is_feasible
                  & stages.sla.isin(ctx.slas)]  # fmt: skip


def bound_counts(ctx: Context, stage: str) -> Counter[str]:
    """How many chosen configurations of ``stage`` (main input set, plotted SLAs) hit each bound."""
    return Counter(_chosen(ctx, stage).bound)


def prefill_shares(ctx: Context) -> pd.DataFrame:
    """Min and max share of prefill in the baseline pair's $/request, by shape."""
    pairs = ctx.frames["pairs"]
    base = pairs[(pairs.input_set == ctx.main) & (pairs.pair == ctx.study.baseline) & pairs.sla.isin(ctx.slas)]
    return (base.prefill_usd_per_request / base.usd_per_request).groupby(base["shape"]).agg(["min", "max"])


def fp8_gains(ctx: Context, stage: str) -> pd.Series:
    """Each device's median FP16 / FP8 $/request of ``stage`` over the cases (above 1: FP8 is cheaper)."""
    chosen = _chosen(ctx, stage)
    wide = chosen.pivot_table(index=["shape", "model", "sla", "device"], columns="precision", values="usd_per_request")
    labels = {d.dtype: d.label for d in ctx.study.dtypes}
    sixteen, fp8 = labels.get("bf16", "FP16"), labels.get("fp8", "FP8")
    return (wide[sixteen] / wide[fp8]).groupby(level="device").median().sort_values(ascending=False)


def _listing(values: pd.Series, digits: int = 0) -> str:
    return ", ".join(f"{device} {value:.{digits}f}" for device, value in values.dropna().items())


def _bound_text(ctx: Context, stage: str) -> str:
    counts = bound_counts(ctx, stage)
    if not counts:
        return f"No {stage} configuration is feasible ({ctx.main})."
    bound, most = counts.most_common(1)[0]
    return f"{stage.capitalize()} is {bound}-bound in {most}/{sum(counts.values())} chosen configurations ({ctx.main})."


def _differences(ctx: Context) -> str:
    """Where the datasheet set's price and operating $/h differ from the main set's."""
    mine, sheet = _inputs(ctx.frames, ctx.main), _inputs(ctx.frames, ctx.datasheet)
    parts = []
    for column, label, fmt in (("price_usd", "price", "${:,.0f}"), ("operating_usd_per_h", "operating $/h", "{:.2f}")):
        moved = [f"{d} {fmt.format(sheet[column][d])} vs {fmt.format(mine[column][d])}" for d in sheet.index
                 if not multiple_of(sheet[column][d], mine[column][d], ctx.tolerance)]  # fmt: skip
        parts.append(f"{label} {', '.join(moved) if moved else 'equal'}")
    return f"{ctx.datasheet} vs {ctx.main}: {'; '.join(parts)}."


# ---- the reasons -------------------------------------------------------------------------------


def prefill_reason(ctx: Context) -> Reason:
    sixteen = per_dollar(ctx.frames, ctx.main, "tflops_16bit")
    fp8 = per_dollar(ctx.frames, ctx.main, "tflops_fp8")
    sheet = per_dollar(ctx.frames, ctx.datasheet, "tflops_16bit")
    peaks = peak_ratios(ctx.frames, ctx.main, ctx.datasheet)
    peak_words = readings(peaks, ctx.tolerance)
    sparse = [d for d, word in peak_words.items() if word == "double"]
    sparse_text = (f" {', '.join(sparse)}: double the datasheet's dense peak, the 2:4 structured-sparsity factor, "
                   f"so {ctx.main} carries {'its' if len(sparse) == 1 else 'their'} with-sparsity figure."
                   if sparse else "")  # fmt: skip
    derived = (f"{_bound_text(ctx, 'prefill')} 16-bit TFLOP/s per $/h, {ctx.main}: {_listing(sixteen)}; fp8: "
               f"{_listing(fp8)}; {ctx.datasheet}: {_listing(sheet)}. 16-bit peak, {ctx.main} over {ctx.datasheet}: "
               f"{_grouped(peak_words)}.{sparse_text} fp8 peak over 16-bit peak ({ctx.main}): "
               f"{_grouped(readings(fp8_ratios(ctx.frames, ctx.main), ctx.tolerance))}.")  # fmt: skip
    return Reason(derived, "A device with no fp8 peak runs fp8 models at its 16-bit rate (weights up-cast).")


def decode_reason(ctx: Context) -> Reason:
    study = ctx.study
    bandwidth = per_dollar(ctx.frames, ctx.main, "bandwidth_gb_s")
    sheet = per_dollar(ctx.frames, ctx.datasheet, "bandwidth_gb_s")
    latency = next(s for s in study.slas if s.tbt_s and s.is_plotted)
    big = f"{study.models[-1].label} {study.dtypes[0].label}"
    chosen = _chosen(ctx, "decode")
    rows = chosen[(chosen["shape"] == study.shapes[0].name) & (chosen.sla == latency.name) & (chosen.variant == big)]
    rows = rows.set_index("device")
    gb_s = _inputs(ctx.frames, ctx.main).bandwidth_gb_s

    def pick(device: str) -> str:
        row = rows.loc[device]
        return (f"{device} ({gb_s[device]:.0f} GB/s) TP{row.tp:.0f}xPP{row.pp:.0f} batch {row.batch:.0f} "
                f"(${row.usd_per_request * 1e3:.3f}/1k requests)")  # fmt: skip

    ratio = rows.usd_per_request["gaudi3"] / rows.usd_per_request["b200"]
    word = relation(ratio, ctx.tolerance, COST_WORDS)
    derived = (f"{_bound_text(ctx, 'decode')} GB/s per $/h, {ctx.main}: {_listing(bandwidth)}; {ctx.datasheet}: "
               f"{_listing(sheet)}. {_differences(ctx)} At TBT <= {latency.tbt_s * 1e3:g} ms, {big} "
               f"{study.shapes[0].name}: {pick('gaudi3')} against {pick('b200')}: gaudi3 decodes {word} b200 "
               f"({ratio:.2f}x).")  # fmt: skip
    commentary = ("Where bandwidth per $ decides, the ranking follows these lists; a larger TP adds all-reduce time and "
                  "leaves less of the TBT budget for KV reads. Datasheet power is TDP x $0.40/kWh; Gaudi 3 is at "
                  "Intel's kit price there. The paper picks Gaudi 3 'assuming the workload can accommodate slightly "
                  "longer token-to-token latency' (§5.3).")  # fmt: skip
    return Reason(derived, commentary)


def _dominant(low: float, high: float) -> str:
    """Which stage is the larger part of $/request, given prefill's lowest and highest share."""
    if high < 0.5:
        return "decode dominates"
    return "prefill dominates" if low > 0.5 else "either dominates"


def _share_text(ctx: Context) -> str:
    shares = prefill_shares(ctx)
    parts = [f"{shape} {row['min']:.0%}-{row['max']:.0%} ({_dominant(row['min'], row['max'])})"
             for shape, row in shares.iterrows()]  # fmt: skip
    return f"Prefill's share of {ctx.study.baseline}'s $/request: {'; '.join(parts)}."


def _below_baseline(ctx: Context) -> str:
    """The shown pairs at or below 1.0, and how many of those prefill dearer than the baseline."""
    pairs, study = ctx.frames["pairs"], ctx.study
    mine = pairs[(pairs.input_set == ctx.main) & pairs.is_feasible & pairs.sla.isin(ctx.slas)]
    shown = mine[mine.pair.isin([p for p in study.paper_pairs if p != study.baseline])]
    below = shown[shown.tco_benefit <= 1.0]
    if below.empty:
        return f"No pair shown is at or below 1.0 with {ctx.main} inputs."
    base = mine[mine.pair == study.baseline].set_index(["shape", "variant", "sla"]).prefill_usd_per_request
    dearer = (
        below.prefill_usd_per_request.to_numpy()
        > base.loc[list(zip(below["shape"], below.variant, below.sla, strict=True))].to_numpy()
    )
    tally = ", ".join(f"{pair} x{count}" for pair, count in below.pair.value_counts().items())
    return (
        f"At or below 1.0 with {ctx.main} inputs: {tally}; its prefill is dearer than {study.baseline}'s in "
        f"{int(dearer.sum())}/{len(below)} of them."
    )


def fp8_reason(ctx: Context) -> Reason:
    formats = {d.label: Precision.uniform(DType(d.dtype)) for d in ctx.study.dtypes}
    (sixteen, wide), (eight, narrow) = next(iter(formats.items())), list(formats.items())[-1]
    bytes_text = (f"{eight} over {sixteen} bytes per element: weights x{narrow.weights.bytes_per_element / wide.weights.bytes_per_element:.2f}, "
                  f"KV x{narrow.kv_cache.bytes_per_element / wide.kv_cache.bytes_per_element:.2f} (every device)")  # fmt: skip
    gains = {stage: fp8_gains(ctx, stage) for stage in ("prefill", "decode")}
    gain_text = "; ".join(f"{stage} {_listing(g, 2)}" for stage, g in gains.items())
    base = ctx.study.baseline.split("::")[0]
    compare = []
    for stage, g in gains.items():
        for device in ("b200", "gaudi3"):
            if device in g and base in g:
                word = relation(g[device] / g[base], ctx.tolerance, GAIN_WORDS)
                compare.append(f"{device} {stage} gains {word} {base}")
    derived = (f"{bytes_text}. fp8 peak over 16-bit peak ({ctx.main}): "
               f"{_grouped(readings(fp8_ratios(ctx.frames, ctx.main), ctx.tolerance))}. {sixteen} / {eight} $/request, "
               f"median over cases ({ctx.main}): {gain_text}: {', '.join(compare)}.")  # fmt: skip
    return Reason(derived, f"The benefit is a ratio to {ctx.study.baseline}: a pair gains from FP8 only where its "
                           f"devices gain more than {ctx.study.baseline}'s.")  # fmt: skip


def bandwidth_bound(ctx: Context) -> float:
    """Gaudi 3's decode GB/s per $/h over H100's: the most a bandwidth-bound decode can gain."""
    bandwidth = per_dollar(ctx.frames, ctx.main, "bandwidth_gb_s")
    return float(bandwidth["gaudi3"] / bandwidth["h100"])


def blog_reason(ctx: Context) -> Reason:
    pairs, blog = ctx.frames["pairs"], ctx.study.blog
    mine = pairs[(pairs.input_set == ctx.main) & pairs.is_feasible & pairs.sla.isin(ctx.slas)]
    top = mine.loc[mine.tco_benefit.idxmax()]
    bound = bandwidth_bound(ctx)
    low = blog.vs_baseline_decode_heavy * (1 - blog.tolerance)
    derived = (f"Decode GB/s per $/h of gaudi3 is {bound:.2f}x h100's ({ctx.main}), "
               f"{'below' if bound < low else 'within or above'} the blog's decode-heavy band "
               f"({low:.2f}-{blog.vs_baseline_decode_heavy * (1 + blog.tolerance):.2f}x); the largest benefit of any "
               f"pair in our model is {top.tco_benefit:.2f} ({top.pair}, {top.variant} {top['shape']} {top.sla}).")  # fmt: skip
    return Reason(derived, "The blog's models, lengths, SLAs and prices are unknown and its numbers are second-hand "
                           "(paper.md §2.2); a multiple beyond the bandwidth-per-$ bound needs capacity or batch "
                           "effects on top.")  # fmt: skip


def reasons(study: PairStudySpec, frames: dict[str, pd.DataFrame]) -> dict[str, Reason]:
    """Reason per claim family (keys of :attr:`hetsim.study.claims.Claim.why`)."""
    mains = [s.name for s in study.input_sets if s.role == "main"]
    ctx = Context(study, frames, mains[0], mains[-1])
    prefill, shares = prefill_reason(ctx), _share_text(ctx)
    best_pair = ("A pair's $/request is its prefill $/request plus its decode $/request (fractional instances), so "
                 "B200::Gaudi3 leads the paper's pairs when Gaudi 3 is the cheapest decode device of the three and "
                 "B200 prefills no dearer than H100.")  # fmt: skip
    return {
        "best-pair": Reason(f"{shares} {prefill.derived}", f"{best_pair} {prefill.commentary}"),
        "decode": decode_reason(ctx),
        "h100-gaudi3": Reason(shares, "H100::Gaudi3 vs B200::B200 = H100 vs B200 prefill (see E8-prefill) plus Gaudi 3 "
                                      "vs B200 decode (see E7-decode), weighted by each stage's share."),
        "above-1": Reason(f"{_below_baseline(ctx)} {prefill.derived}",
                          "An X::H100 pair differs from the baseline only in its prefill device, so it drops below 1.0 "
                          f"wherever X prefills dearer than H100. {prefill.commentary}"),
        "prefill": prefill,
        "fp8": fp8_reason(ctx),
        "blog": blog_reason(ctx),
    }  # fmt: skip
