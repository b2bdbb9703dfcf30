"""``hetsim reproduce paper``: the paper's Figs. 8 and 9 and a claim-by-claim table.

Loads the study (``scenarios/paper/study.yaml``), prices each input set's devices, evaluates
every prefill::decode pair over the study grid (:mod:`hetsim.study.grid`), places the
voice agent with the planner (E11), solves the worked example (:mod:`hetsim.study.worked_example`),
checks each claim (:mod:`hetsim.study.claims`),
renders figures and the claim table (:mod:`hetsim.report.paper_figures`,
:mod:`hetsim.report.paper_page`) and writes them (:func:`hetsim.io.reports.write_report`).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from hetsim import __version__
from hetsim.api.plan import plan_fleet_spec
from hetsim.api.report import report_date
from hetsim.cost.tco import device_hourly_cost, node_hourly_cost, preset
from hetsim.errors import ScenarioError
from hetsim.io.catalog import load_catalog
from hetsim.io.fleets import load_fleet
from hetsim.io.models import load_models
from hetsim.io.outputs import Provenance, write_folder
from hetsim.io.reports import write_report
from hetsim.io.studies import default_study_path, load_study
from hetsim.perf.kernels import PAPER_KERNELS
from hetsim.perf.roofline import DevicePerf
from hetsim.perf.transformer import Precision
from hetsim.report.paper_figures import benefit_figure, pair_matrix_figure, pair_text
from hetsim.report.paper_page import render_paper_report
from hetsim.specs.calibration import CalibrationProvenance, CalibrationSpec
from hetsim.specs.catalog import HardwareCatalog, ModelCatalog
from hetsim.specs.common import SecondsQ
from hetsim.specs.hardware import AcceleratorSpec, DType
from hetsim.specs.study import InputSet, PairStudySpec
from hetsim.study import claims, worked_example
from hetsim.study.grid import evaluate_study, search_space, tp_scaling
from hetsim.study.inputs import input_device, link_bandwidth_rows
from hetsim.study.pairs import PairWorkload, PricedDevice

Progress = Callable[[str], None]


@dataclass
class Reproduction:
    """Everything ``hetsim reproduce paper`` computed: the study, its frames and run time."""

    study: PairStudySpec
    frames: dict[str, pd.DataFrame]
    wall_s: float
    meta: dict[str, Any] = field(default_factory=dict)


def _input_devices(
    study: PairStudySpec, rules: InputSet, catalogs: dict[str, HardwareCatalog]
) -> list[AcceleratorSpec]:
    reference = catalogs["datasheet"]
    catalog = catalogs[rules.profile_set]
    return [input_device(catalog.accelerator(key), reference.accelerator(key), rules) for key in study.devices]


def paper_calibration(device: str) -> CalibrationSpec:
    """The paper's flat roofline (``PAPER_KERNELS``) as a device's calibration: the reproduction
    reproduces the paper's analysis, not a calibrated stack."""
    return CalibrationSpec(
        schema_version=1,
        device=device,
        provenance=CalibrationProvenance(
            kind="assumed", device_description=device, date="2025-07-25",
            tool="hetsim reproduce paper", versions={"stack": PAPER_KERNELS.stack},
        ),
        launch_overhead=SecondsQ(value=5.0, unit="us"),
        kernels=PAPER_KERNELS,
    )


def paper_perf(device: AcceleratorSpec) -> DevicePerf:
    """The device under the paper's flat roofline."""
    return DevicePerf(device, paper_calibration(device.name))


def priced_devices(
    study: PairStudySpec, catalogs: dict[str, HardwareCatalog]
) -> tuple[dict[str, list[PricedDevice]], pd.DataFrame]:
    """Each input set's devices with performance and $/h; and a frame of the numbers used."""
    priced: dict[str, list[PricedDevice]] = {}
    rows = []
    for rules in study.input_sets:
        devices = _input_devices(study, rules, catalogs)
        priced[rules.name] = []
        for key, device in zip(study.devices, devices, strict=True):
            hourly = device_hourly_cost(device, preset(rules.tco))
            priced[rules.name].append(
                PricedDevice(key, paper_perf(device), hourly.total_usd_per_h)
            )
            rows.append(_device_row(rules, key, device, hourly))
    return priced, pd.DataFrame(rows)


def _device_row(rules: InputSet, key: str, device: AcceleratorSpec, hourly) -> dict[str, Any]:
    peak = lambda d: (device.peak_flops(d) or math.nan) / 1e12  # noqa: E731
    return {
        "input_set": rules.name, "device": key, "profile": device.name,
        "tflops_16bit": peak(DType.BF16) if device.compute.bf16 else peak(DType.FP16),
        "tflops_fp8": peak(DType.FP8), "fp8_source": device.compute.fp8.source if device.compute.fp8 else "none: runs at 16-bit rate",
        "memory_gb": device.memory_bytes / 1e9, "bandwidth_gb_s": device.memory_bandwidth_bytes_per_s / 1e9,
        "price_usd": device.price.purchase.si if device.price.purchase else math.nan,
        "tdp_w": device.tdp_w or math.nan, "capex_usd_per_h": hourly.capex_usd_per_h,
        "operating_usd_per_h": hourly.power_usd_per_h, "total_usd_per_h": hourly.total_usd_per_h,
        "cost_basis": hourly.provenance,
    }  # fmt: skip


def link_frame(study: PairStudySpec, models: ModelCatalog) -> pd.DataFrame:
    """E6: Eq. (1)/(2) peak KV bandwidth for every model x precision, at the latency SLA."""
    sla = next(s for s in study.slas if s.ttft_s and s.tbt_s)
    variants = []
    for model in study.models:
        arch = models.model(model.name).architecture
        for dtype in study.dtypes:
            bpe = Precision.uniform(DType(dtype.dtype)).kv_cache.bytes_per_element
            variants.append((model.label, dtype.label, arch, bpe))
    check = study.link_check
    return pd.DataFrame(link_bandwidth_rows(variants, check.input_tokens, check.instances, sla.ttft_s, sla.tbt_s))


def tp_frame(
    study: PairStudySpec, models: ModelCatalog, priced: dict[str, list[PricedDevice]], space
) -> pd.DataFrame:
    """E10: decode of the largest model, 16-bit, decode-heavy shape, latency SLA, at every TP x PP,
    with each main input set's devices."""
    model, dtype = study.models[-1], study.dtypes[0]
    shape, sla = study.shapes[0], next(s for s in study.slas if s.tbt_s)
    workload = PairWorkload(models.model(model.name), DType(dtype.dtype), shape.input_tokens, shape.output_tokens,
                            sla.ttft_s, sla.tbt_s)  # fmt: skip
    labels = {"variant": f"{model.label} {dtype.label}", "shape": shape.name, "sla": sla.name}
    rows = [{"input_set": rules.name} | labels | row
            for rules in study.input_sets if rules.role == "main"
            for row in tp_scaling(workload, priced[rules.name], space)]  # fmt: skip
    return pd.DataFrame(rows)


def placement_frames(study: PairStudySpec, study_path: Path, progress: Progress) -> dict[str, pd.DataFrame]:
    """E11: the planner's placement of the voice agent at each rate (one row per stage), and the
    marginal $/request of each non-LLM stage on every device the planner could use."""
    if study.placement is None:
        return {"placement": pd.DataFrame(), "nonllm_unit_cost": pd.DataFrame()}
    fleet = load_fleet(study_path.parent / study.placement.fleet)
    rows, unit_costs = [], []
    for rate in study.placement.rates_per_s:
        progress(f"placing the voice agent at {rate:g} sessions/s")
        demand = tuple(d.model_copy(update={"rate_per_s": rate}) for d in fleet.demand)
        result = plan_fleet_spec(fleet.model_copy(update={"demand": demand}), verify=False, calibration_of=paper_calibration)
        rows += _placement_rows(rate, result, result.context["hardware"], preset(fleet.tco))
        if not unit_costs:
            unit_costs = _unit_costs(result, result.context["hardware"], preset(fleet.tco))
    return {"placement": pd.DataFrame(rows), "nonllm_unit_cost": pd.DataFrame(unit_costs)}


def _unit_costs(result, hardware: HardwareCatalog, tco) -> list[dict[str, Any]]:
    rows = []
    for stage in result.problem.stages:
        if stage.name.startswith("llm:"):
            continue
        for option in stage.options:
            device = hardware.accelerator(option.device)
            usd_per_h = device_hourly_cost(device, tco).total_usd_per_h * option.devices_per_replica
            rows.append({"kind": stage.name.split(":")[0], "device": device.name, "device_kind": device.kind.value,
                         "requests_per_s": option.capacity_per_replica,
                         "usd_per_request": usd_per_h / 3600.0 / option.capacity_per_replica})  # fmt: skip
    return rows


def _placement_rows(rate: float, result, hardware: HardwareCatalog, tco) -> list[dict[str, Any]]:
    nodes = {name: count for name, count in result.solution.extra_nodes.items() if count}
    bought: dict[str, int] = {}
    per_node: dict[str, int] = {}
    cpu_nodes_usd = 0.0
    for name, count in nodes.items():
        node = hardware.node(name)
        if node.accelerators is None:
            cpu_nodes_usd += count * node_hourly_cost(node, hardware.accelerators, tco).total_usd_per_h
            continue
        bought[node.accelerators.device] = bought.get(node.accelerators.device, 0) + count * node.accelerators.count
        per_node[node.accelerators.device] = node.accelerators.count
    rows = []
    for choice in result.solution.choices:
        device = hardware.accelerator(choice.option.device)
        devices = choice.replicas * choice.option.devices_per_replica
        rows.append({
            "rate_per_s": rate, "stage": choice.stage, "kind": choice.stage.split(":")[0],
            "is_llm": choice.stage.startswith("llm:"), "device": device.name, "device_kind": device.kind.value,
            "replicas": choice.replicas, "devices": devices, "devices_bought_of_type": bought.get(device.name, 0),
            "devices_per_node": per_node.get(device.name, 0),
            "usd_per_h": devices * device_hourly_cost(device, tco).total_usd_per_h,
            "fleet_usd_per_h": result.cost["total_usd_per_h"], "cpu_nodes_usd_per_h": cpu_nodes_usd,
            "nodes_bought": ", ".join(f"{c} x {n}" for n, c in nodes.items()),
        })  # fmt: skip
    return rows


def reproduce_paper(study_path: Path | None = None, progress: Progress | None = None) -> Reproduction:
    """Run the whole reproduction; nothing is written (see :func:`write_reproduction`)."""
    say = progress or (lambda _: None)
    start = time.perf_counter()
    path = study_path or default_study_path("paper")
    study = load_study(path)
    catalogs = {name: load_catalog(name) for name in ("paper", "datasheet")}
    models = load_models()
    space = search_space(study, catalogs["datasheet"].link(study.search.kv_link).bandwidth.si)
    priced, inputs = priced_devices(study, catalogs)
    say("evaluating prefill::decode pairs")
    frames = evaluate_study(study, priced, models, space)
    frames["inputs"] = inputs
    frames["link_bandwidth"] = link_frame(study, models)
    frames["tp_scaling"] = tp_frame(study, models, priced, space)
    frames |= placement_frames(study, path, say)
    say("checking claims")
    frames["claims"] = claims.evaluate_claims(study, frames, worked_example.evaluate())
    meta = {"study": str(path), "version": __version__, "provenance": provenance(priced)}
    return Reproduction(study, frames, time.perf_counter() - start, meta)


def provenance(priced: dict[str, list[PricedDevice]]) -> list[str]:
    """Where every number of the report comes from."""
    sources = sorted(
        {f"{device.perf.provenance.value} ({device.perf.device.name})" for ds in priced.values() for device in ds}
    )
    return [
        "Pair benefits (figures, pairs/stages tables): hetsim's roofline step model (LlmReplica.step / step_seconds, "
        "vLLM-style chunked prefill and paged KV), the same model the simulator prices steps with. Efficiency provenance "
        f"per device: {', '.join(sources)}; 'datasheet' = peak x hetsim's documented default efficiencies.",
        "Device numbers: Table 5 as printed (hardware_profiles/paper/) and vendor datasheets (hardware_profiles/accelerators/), "
        "every number with its source; derived fp8 peaks and copied TDPs carry a 'derived:' source (inputs table).",
        "Costs: hetsim.cost.tco presets 'paper' (4-year 8% annuity, 8760 h, full TDP at $0.40/kWh) and 'paper-printed' "
        "(annuity + Table 5's printed operating $/h).",
        "E1: the planner's solver (SCIP) on the paper's Table 3. E11: hetsim plan (SCIP) on datasheet node SKUs, no simulation.",
        "E9: the Gimlet blog's numbers as summarised by Momento (second-hand; paper.md section 2.2).",
    ]


def _variants(study: PairStudySpec) -> list[str]:
    return [f"{m.label} {d.label}" for m in study.models for d in study.dtypes]


def build_figures(reproduction: Reproduction) -> dict[str, tuple[str, Any]]:
    """Figure name -> (caption, Figure): Fig. 8/9-style bars and an all-pairs map per main input set."""
    study, pairs = reproduction.study, reproduction.frames["pairs"]
    slas = [(s.name, s.label) for s in study.slas if s.is_plotted]
    figures: dict[str, tuple[str, Any]] = {}
    for rules in (s for s in study.input_sets if s.role == "main"):
        mine = pairs[pairs.input_set == rules.name]
        for shape in study.shapes:
            rows = mine[(mine["shape"] == shape.name) & mine.pair.isin(study.plotted_pairs)]
            title = (f"{shape.figure} reproduction: {shape.name} (ISL {shape.input_tokens} / OSL {shape.output_tokens}); "
                     f"{rules.label}; baseline {pair_text(study.baseline)}")  # fmt: skip
            name = f"{shape.figure.lower().replace('. ', '').replace(' ', '')}-{rules.name}"
            figures[name] = (title, benefit_figure(rows, study.plotted_pairs, _variants(study), slas, title))
        panels = [(shape.name, sla, f"{shape.name}, {sla}") for shape in study.shapes for sla, _ in slas]
        title = f"Every prefill::decode pair; {rules.label}"
        figures[f"pairs-{rules.name}"] = (title, pair_matrix_figure(mine, list(study.devices), panels, title))
    return figures


def write_reproduction(reproduction: Reproduction, folder: Path) -> list[Path]:
    """Write the report (Markdown, HTML, claim table, figures) and every frame as CSV under ``folder``, whole."""
    study = reproduction.study
    meta = {
        "title": f"hetsim reproduce {study.name}: {study.description}",
        "subtitle": f"{report_date()} - hetsim {__version__} - study {reproduction.meta.get('study', '')} - "
                    f"computed in {reproduction.wall_s:.0f} s",
        "choices": [(c.unknown, c.choice) for c in study.choices],
        "provenance": reproduction.meta.get("provenance", []),
    }  # fmt: skip
    files = render_paper_report(reproduction.frames, meta, build_figures(reproduction))
    inputs = {"study": Path(reproduction.meta["study"])} if reproduction.meta.get("study") else {}
    return write_folder(folder, "--report", lambda staged: write_report(staged, files, reproduction.frames), ScenarioError,
                        Provenance("reproduce paper", inputs))  # fmt: skip
