"""Pair studies: which prefill::decode device pairs serve an LLM at the lowest TCO, for a grid of
models, precisions, request shapes, SLAs and input sets (``scenarios/paper/study.yaml``, the
reproduction of arXiv 2507.19635 Figs. 8 and 9). Declarative and validated; no I/O."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, model_validator

from hetsim.specs.common import MAX_RATE_PER_S, FrozenModel, PositiveInts, SafeName, SchemaVersion


class StudyModel(FrozenModel):
    name: str = Field(description="model name in models/")
    label: str = Field(description="short label in figures, e.g. '8B'")


class StudyDtype(FrozenModel):
    dtype: str = Field(description="weights/GEMM format run (bf16, fp8, ...)")
    label: str = Field(description="the paper's name for it, e.g. 'FP16'")
    note: str = ""


class StudyShape(FrozenModel):
    name: str
    input_tokens: int = Field(ge=1)
    output_tokens: int = Field(ge=1)
    figure: str = Field(default="", description="the paper figure this shape reproduces")


class StudySla(FrozenModel):
    """A latency SLA (bounds set) or a throughput SLA (no bounds: maximise tokens/s per $)."""

    name: str
    label: str
    ttft_s: float | None = Field(default=None, gt=0)
    tbt_s: float | None = Field(default=None, gt=0)
    is_plotted: bool = Field(default=True, description="False: a sensitivity case, in tables only")


class Fp16Override(FrozenModel):
    device: str
    tflops: float = Field(gt=0)
    source: str


class InputSet(FrozenModel):
    """Device numbers and prices: a profile set, a TCO preset, and documented adjustments.

    Adjustments take a number from the device's datasheet profile (the 'reference'):
    ``fp8_from_reference`` adds an fp8 peak = the set's 16-bit peak x the datasheet's
    fp8 / bf16 ratio where the set prints none; ``power_from_reference`` copies the datasheet
    TDP where the set gives none (needed by TCO presets that bill power at TDP).
    """

    name: str
    label: str
    profile_set: str = Field(pattern="^(paper|datasheet)$")
    tco: str = Field(description="TCO preset: paper, paper-printed, enterprise")
    role: str = Field(default="main", pattern="^(main|sensitivity)$")
    fp8_from_reference: bool = False
    power_from_reference: bool = False
    fp16_overrides: tuple[Fp16Override, ...] = ()
    note: str = ""


class StudySearch(FrozenModel):
    tp_options: PositiveInts = Field(default=(1, 2, 4, 8), min_length=1)
    pp_options: PositiveInts = Field(default=(1, 2), min_length=1)
    prefill_batches: PositiveInts = Field(default=(1, 2, 4, 8, 16, 32, 64), min_length=1)
    max_num_seqs: int = Field(default=1024, ge=1)
    max_batch_tokens: int = Field(default=8192, ge=1)
    kv_link: str = Field(default="roce-400", description="link profile carrying KV caches, one per device")


class PlacementCheck(FrozenModel):
    """The voice agent placed by the planner on GPU and CPU nodes, at several session rates."""

    fleet: str = Field(description="fleet file, relative to the study file")
    rates_per_s: tuple[Annotated[float, Field(gt=0, le=MAX_RATE_PER_S)], ...] = Field(min_length=1)


class LinkCheck(FrozenModel):
    """Eq. (1)/(2): peak KV bandwidth at these prompt lengths and instance counts."""

    input_tokens: tuple[int, ...] = (4096, 8192, 16384, 32768)
    instances: tuple[int, ...] = (1, 2, 4, 8)
    claimed_gbps: tuple[float, float] = (200.0, 400.0)


class BlogClaims(FrozenModel):
    """Second-hand numbers from the Oct 2025 blog (paper.md §2.2, E9), with a tolerance."""

    hetero_vs_single_vendor: float = 1.7
    vs_baseline_prefill_heavy: float = 3.0
    vs_baseline_decode_heavy: float = 4.0
    single_vendor_decode_heavy: float = 2.5
    tolerance: float = Field(default=0.15, gt=0, lt=1)


class StudyChoice(FrozenModel):
    """One unknown of the source (paper.md section 6) and the choice made for it."""

    unknown: str
    choice: str


class PairStudySpec(FrozenModel):
    schema_version: SchemaVersion
    name: SafeName
    description: str = ""
    source: str = ""
    models: tuple[StudyModel, ...] = Field(min_length=1)
    dtypes: tuple[StudyDtype, ...] = Field(min_length=1)
    shapes: tuple[StudyShape, ...] = Field(min_length=1)
    slas: tuple[StudySla, ...] = Field(min_length=1)
    devices: tuple[str, ...] = Field(min_length=1, description="device keys (aliases in both profile sets)")
    baseline: str = Field(description="pair the benefit is relative to, 'prefill::decode'")
    paper_pairs: tuple[str, ...] = Field(description="the pairs the paper's figures compare")
    plotted_pairs: tuple[str, ...]
    comparable_ratio: float = Field(default=0.9, gt=0, le=1, description="'comparable' = at least this share")
    tie_tolerance: float = Field(default=0.02, ge=0, lt=1, description="benefits or costs this close count as tied")
    choices: tuple[StudyChoice, ...] = Field(default=(), description="how each unknown of the paper is filled")
    input_sets: tuple[InputSet, ...] = Field(min_length=1)
    search: StudySearch = StudySearch()
    link_check: LinkCheck = LinkCheck()
    placement: PlacementCheck | None = None
    blog: BlogClaims = BlogClaims()

    @model_validator(mode="after")
    def _pairs_name_devices(self) -> PairStudySpec:
        for pair in (self.baseline, *self.paper_pairs, *self.plotted_pairs):
            ends = pair.split("::")
            if len(ends) != 2 or any(end not in self.devices for end in ends):
                raise ValueError(f"pairs: expected 'prefill::decode' over devices {list(self.devices)}, got {pair!r}")
        if not any(s.role == "main" for s in self.input_sets):
            raise ValueError("input_sets: expected at least one set with role 'main', got none")
        return self
