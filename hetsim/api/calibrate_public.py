"""``hetsim calibrate public``: fit kernel models to public measurements, score them held out.

For each device a source covers, the kernel model (``hetsim.perf.kernels``) is fitted per
class on the rows of one serving stack (AIConfigurator's vLLM 0.14.0 kernels and its custom
all-reduce; Vidur's element-wise kernels where it measured the device) and written as the
device's calibration file. The score table says, per source, device, stack and op class:
rows, median and p90 |error| and the signed bias (median of predicted/measured - 1), for the
datasheet defaults and for the calibrated model, the latter always on rows its parameters
were not fitted on (two folds by group; whole serving steps and whole generations by model:
engine overheads, or for a source whose kernels no kernel-level rows cover its kernel
parameters, fitted on the other models' runs, the kernel fits never on them).
"""

from __future__ import annotations

import datetime as _dt
from collections.abc import Iterable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from hetsim import __version__
from hetsim.errors import CalibrationError
from hetsim.io.calibration import stack_slug
from hetsim.io.catalog import load_catalog, profiles_root
from hetsim.io.models import load_models
from hetsim.io.outputs import Provenance, Target, texts_into, write_outputs
from hetsim.io.public_measurements import load_public_measurements
from hetsim.perf.kernel_fit import (
    RUN_PARAMETERS,
    STEP_TERMS,
    cross_validated,
    fit_class,
    fit_class_of,
    fit_step_overheads,
    fit_through_runs,
    golden_log,
    with_parameter,
)
from hetsim.perf.kernels import DEFAULT_KERNELS, default_kernels
from hetsim.perf.public_rows import (
    GENERATION_CLASS,
    STEP_CLASSES,
    fits_without_preemption,
    generation_features,
    predict_generations,
    predict_ops,
    predict_steps,
    slower_than_a_larger_batch,
)
from hetsim.perf.roofline import DevicePerf, serving_perf
from hetsim.perf.transformer import unpartitioned_after
from hetsim.specs.calibration import CalibrationProvenance, CalibrationSpec, EngineOverheads, KernelModel
from hetsim.specs.common import SecondsQ

# The stack each device's shipped calibration describes, and where each class is fitted from.
KERNEL_STACK = "vllm==0.14.0"
ELEMENTWISE_STACK = "sarathi-serve (vidur profiler)"
FIT_CLASSES = ("gemm", "gemm_fp8", "attention_prefill", "attention_decode", "all_reduce", "elementwise")
STEP_MODELS = ("llama-2-70b", "bloom-176b")


@dataclass(frozen=True)
class PublicFit:
    """Fitted calibrations (one per device and stack) and the scored rows behind the table."""

    calibrations: dict[tuple[str, str], CalibrationSpec]
    scored: pd.DataFrame  # every row with default and calibrated (held-out) predictions

    def table(self) -> pd.DataFrame:
        return score_table(self.scored)


def fit_public(root: Path | None = None, devices: Iterable[str] | None = None, workers: int = 1) -> PublicFit:
    """Fit every covered device's kernel model and score default and calibrated predictions;
    ``workers`` > 1 fits devices in that many processes (the same result, in device order)."""
    rows = load_public_measurements(root)
    wanted = set(devices) if devices is not None else None
    parts = [(str(d), part) for d, part in rows.groupby("device", sort=True) if wanted is None or d in wanted]
    if workers > 1 and len(parts) > 1:
        # the largest devices first, so that no process is left with a long fit at the end
        order = sorted(range(len(parts)), key=lambda i: -len(parts[i][1]))
        with ProcessPoolExecutor(max_workers=min(workers, len(parts))) as pool:
            futures = {i: pool.submit(_fit_device_rows, root, *parts[i]) for i in order}
            results = [futures[i].result() for i in range(len(parts))]
    else:
        results = [_fit_device_rows(root, device, part) for device, part in parts]
    calibrations: dict[tuple[str, str], CalibrationSpec] = {}
    scored: list[pd.DataFrame] = []
    for device_calibrations, frames in results:
        calibrations.update(device_calibrations)
        scored.extend(frames)
    if not scored:
        raise CalibrationError("devices: none of the requested devices is covered by a public measurement set")
    frame = pd.concat(scored, ignore_index=True)
    return PublicFit(_with_kernel_bands(calibrations, frame), frame)


def _fit_device_rows(
    root: Path | None, device: str, everything: pd.DataFrame
) -> tuple[dict[tuple[str, str], CalibrationSpec], list[pd.DataFrame]]:
    """One device's calibrations (per stack) and its scored rows."""
    catalog = load_catalog(root=root)
    models = load_models()
    step_models = {name: models.model(name) for name in STEP_MODELS}
    calibrations: dict[tuple[str, str], CalibrationSpec] = {}
    scored = []
    accelerator = catalog.accelerator(device)
    default = DevicePerf(accelerator)
    generations = everything[everything["op_class"] == GENERATION_CLASS]
    part = everything[everything["op_class"] != GENERATION_CLASS]
    part = part.assign(fit_class=fit_class_of(part).to_numpy())
    stacks = sorted(s for s in part["stack"].unique() if s.startswith("vllm==") and s != KERNEL_STACK)
    held_out = pd.Series(np.nan, index=part.index)
    for stack in [KERNEL_STACK, *stacks]:
        kernels, stack_held_out = _fit_device(part, default, stack)
        if kernels is None:
            continue
        calibrations[(device, stack)] = _calibration(device, accelerator.display_name, kernels, stack)
        held_out = held_out.combine_first(stack_held_out)  # each stack's rows scored by its own fit
    calibration = calibrations.get((device, KERNEL_STACK))
    if calibration is not None:
        held_out = held_out.combine_first(_nccl_held_out(part, default, calibration))
        frame = _score(part, default, DevicePerf(accelerator, calibration), held_out, step_models)
        steps = part[part["op_class"].isin(STEP_CLASSES)]
        if len(steps):
            stack_calibration, step_held_out = _fit_step_stack(part, steps, default, calibration, step_models)
            calibrations[(device, stack_calibration.stack)] = stack_calibration
            step_mask = frame["op_class"].isin(STEP_CLASSES)
            frame["served_s"] = np.nan
            frame.loc[step_mask, "served_s"] = predict_steps(steps, serving_perf(accelerator, calibration), step_models)
            frame.loc[step_mask, "calibrated_s"] = step_held_out.to_numpy()
        scored.append(frame)
    if len(generations):
        base = calibration or _datasheet_calibration(device, accelerator.display_name, default)
        served = serving_perf(accelerator, calibration) if calibration is not None else None
        for _, runs in generations.groupby("stack", sort=True):
            spec, frame = _fit_generation_stack(runs, default, base, models, served)
            calibrations[(device, spec.stack)] = spec
            scored.append(frame)
    return calibrations, scored


# Whole-run sources a kernel-only calibration's band is measured on (its kernels with the default
# engine, as ``serving_perf`` prices them), newest first: a device's
# band comes from the newest that measured it (LLM-Inference-Bench, vLLM 0.5-0.6.2 with CUDA
# graphs, 2024; else Splitwise's 2023 vLLM without them), and a device none measured takes the
# band pooled over the devices that were, each on its newest source and weighted equally.
KERNEL_BAND_SOURCES = ("llm-inference-bench", "splitwise-sim")


def _with_kernel_bands(
    calibrations: dict[tuple[str, str], CalibrationSpec], scored: pd.DataFrame
) -> dict[tuple[str, str], CalibrationSpec]:
    """Kernel-only calibrations get the whole-step error band their kernels with the default
    engine (``serving_perf``) show against measured serving runs (``KERNEL_BAND_SOURCES``): the
    device's own where a source measured its runs, else the pooled band of the devices that were
    (kernels are never fitted on whole runs, nor is the default engine: both held out)."""
    if "served_s" not in scored.columns:
        return calibrations
    runs = scored[scored["served_s"].notna() & scored["source"].isin(KERNEL_BAND_SOURCES)]
    if runs.empty:  # e.g. only whole generations, which the engine-fitted stacks carry bands of
        return calibrations
    rank = runs["source"].map({source: i for i, source in enumerate(KERNEL_BAND_SOURCES)})
    runs = runs[(rank == rank.groupby(runs["device"]).transform("min")).to_numpy()]  # each device's newest
    errors = (runs["served_s"] / runs["measured_s"] - 1.0).to_numpy()
    weights = (1.0 / runs.groupby("device")["device"].transform("size")).to_numpy()
    pooled = _error_band(errors, weights)
    pooled_from = ", ".join(f"{d} ({s})" for d, s in runs.groupby("device", sort=True)["source"].first().items())
    out = dict(calibrations)
    for (device, stack), spec in calibrations.items():
        if spec.engine is not None or spec.error_band:
            continue
        own = (runs["device"] == device).to_numpy()
        if own.any():
            band, whose = _error_band(errors[own]), f"its own, {runs['source'][own].iloc[0]}'s measured runs"
        else:
            band, whose = pooled, f"pooled: {pooled_from}"
        notes = (
            f"{spec.provenance.notes}; error_band: these kernels with the default engine overhead (as plans serve a "
            f"kernel-only calibration) vs whole serving runs ({whose})"
        )
        out[(device, stack)] = spec.model_copy(
            update={"error_band": band, "provenance": spec.provenance.model_copy(update={"notes": notes})}
        )
    return out


# The whole-run sources each vendor's default error band is measured on: the newest public source
# of whole generations on that vendor's devices under vLLM, i.e. the engines a buyer would run
# today. NVIDIA: LLM-Inference-Bench (Argonne, arXiv 2411.00136, November 2024; vLLM 0.5.1-0.6.2,
# the engine era ``DEFAULT_ENGINE`` describes) on A100 40GB and H100. AMD: AMD's own ROCm vLLM
# latency tables (ROCm/vllm docs/dev-docker, January-July 2025; vLLM 0.6.6, 0.8.5, 0.9.1) on
# MI300X, not LLM-Inference-Bench's 2024 ROCm runs, whose library GEMMs ran at 5-6% of the matrix
# peak (the defaults' bias there, -58%, is that software's, shown in the fidelity table).
BAND_SOURCES = {"nvidia": "llm-inference-bench", "amd": "rocm-vllm"}


def default_error_bands(scored: pd.DataFrame, root: Path | None = None) -> dict[str, dict[str, float]]:
    """The datasheet defaults' whole-run error bands (``hetsim.perf.uncertainty``): per vendor on
    its ``BAND_SOURCES`` source's whole generations, and over every device of those (``"any"``),
    each device weighted equally. The defaults are medians of op-level fits and an engine overhead
    from other sources, so these rows are held out from them."""
    runs = scored[scored["op_class"] == GENERATION_CLASS]
    if runs.empty:
        return {}
    catalog = load_catalog(root=root)
    vendor = runs["device"].map(lambda d: catalog.accelerator(str(d)).vendor)
    runs = runs[(runs["source"] == vendor.map(BAND_SOURCES)).to_numpy()]
    if runs.empty:
        return {}
    vendor = vendor[runs.index]
    errors = (runs["default_s"] / runs["measured_s"] - 1.0).to_numpy()
    weights = (1.0 / runs.groupby("device")["device"].transform("size")).to_numpy()
    bands = {}
    for name in sorted(vendor.unique()):
        mask = (vendor == name).to_numpy()
        bands[str(name)] = _error_band(errors[mask], weights[mask])
    return {**bands, "any": _error_band(errors, weights)}


def _fit_device(
    part: pd.DataFrame, default: DevicePerf, stack: str
) -> tuple[KernelModel | None, pd.Series]:
    """The device's kernel model fitted on ``stack``'s rows (element-wise from Vidur), and the
    held-out predictions of every row it was fitted from (index-aligned)."""
    kernels = default_kernels(default.device.vendor).model_copy(update={"stack": stack, "sources": {}, "fit": {}})
    held_out = pd.Series(np.nan, index=part.index)
    sources: dict[str, str] = {}
    fitted_any = False
    for fit_name in FIT_CLASSES:
        source_stack = ELEMENTWISE_STACK if fit_name == "elementwise" else stack
        rows = part[(part["fit_class"] == fit_name) & (part["stack"] == source_stack)]
        if rows.empty:
            continue
        fitted_any = fitted_any or fit_name != "elementwise"
        held_out[rows.index] = cross_validated(rows, default, kernels, fit_name)
        kernels = fit_class(rows, default, kernels, fit_name)
        paths = ", ".join(sorted(rows["path"].unique()))
        sources[fit_name] = f"fitted to {len(rows)} rows of {rows['source'].iloc[0]} ({source_stack}): {paths}"
        if fit_name == "gemm_fp8":
            kernels = _fp8_absorbing_quantisation(rows, default, kernels)
            sources[fit_name] += " (the 16-bit input's quantisation inside: the step model does not price it apart)"
    if not fitted_any:
        return None, held_out
    for name, text in DEFAULT_KERNELS.sources.items():
        if name != "input_quant" or kernels.input_quant is not None:  # absorbed by the fp8 GEMMs: not priced
            sources.setdefault(name, f"datasheet default: {text}")
    return kernels.model_copy(update={"sources": sources}), held_out


def _fp8_absorbing_quantisation(rows: pd.DataFrame, default: DevicePerf, kernels: KernelModel) -> KernelModel:
    """``kernels`` with the fp8 GEMM class fitted to its rows with their input's quantisation
    inside it and no quantisation class: what the calibration ships, since the step model prices
    no quantisation op (an fp8 class fitted with the quantisation apart would price fp8 steps'
    GEMMs several times cheaper than the measured layer). Scoring holds the quantisation apart."""
    absorbed = fit_class(rows.assign(input_dtype=rows["dtype"]), default, kernels, "gemm_fp8")
    return kernels.model_copy(update={"gemm_fp8": absorbed.gemm_fp8, "input_quant": None})


def _nccl_held_out(part: pd.DataFrame, default: DevicePerf, calibration: CalibrationSpec) -> pd.Series:
    """NCCL all-reduce rows scored by a collective fitted to NCCL, not to the engine's custom
    all-reduce (another implementation): AIConfigurator's NCCL rows held out by two folds, other
    sources' NCCL rows (Vidur's) by source, predicted by the fit to all of AIConfigurator's."""
    assert calibration.kernels is not None
    out = pd.Series(np.nan, index=part.index)
    all_reduce = part["fit_class"] == "all_reduce"
    nccl = part[all_reduce & part["stack"].str.startswith("nccl==")]
    if nccl.empty:
        return out
    out[nccl.index] = cross_validated(nccl, default, calibration.kernels, "all_reduce")
    fitted = fit_class(nccl, default, calibration.kernels, "all_reduce")
    others = part[all_reduce & (part["stack"] == ELEMENTWISE_STACK)]
    if len(others):
        out[others.index] = predict_ops(others, DevicePerf(default.device, calibration), fitted)
    return out


def _fit_step_stack(
    part: pd.DataFrame, steps: pd.DataFrame, default: DevicePerf, calibration: CalibrationSpec, step_models: dict
) -> tuple[CalibrationSpec, pd.Series]:
    """The whole-step stack's calibration: the device's kernel model with collectives fitted to
    NCCL (the stack's all-reduce) and engine overheads fitted to its measured steps; and the
    steps' predictions held out by model (overheads fitted on the other model's steps)."""
    assert calibration.kernels is not None
    stack = str(steps["stack"].iloc[0])
    kernels = calibration.kernels.model_copy(update={"stack": stack})
    nccl = part[(part["op_class"] == "all_reduce") & part["stack"].str.startswith("nccl==")]
    if len(nccl):
        kernels = fit_class(nccl, default, kernels, "all_reduce")
        paths = ", ".join(sorted(nccl["path"].unique()))
        kernels = kernels.model_copy(
            update={"sources": {**kernels.sources, "all_reduce": f"fitted to {len(nccl)} NCCL rows: {paths}"}}
        )
    base = calibration.model_copy(update={"kernels": kernels})
    perf = DevicePerf(default.device, base)
    kernel_s = predict_steps(steps, perf, step_models)
    layers = steps["model"].map(lambda m: step_models[m].architecture.num_layers).to_numpy(dtype=float)
    batch = steps["batch"].to_numpy(dtype=float)
    q = steps["q_tokens"].to_numpy(dtype=float)
    prefill = (steps["op_class"] == "prefill_step").to_numpy()
    pairs = np.where(prefill, batch * q * (q + 1.0) / 2.0 * layers, 0.0)
    features = np.column_stack([np.ones(len(steps)), layers, batch, pairs, batch * q])
    spec, held_out = _engine_fitted(steps, kernel_s, features, base, stack)
    return spec, pd.Series(held_out, index=steps.index)


def _engine_fitted(
    rows: pd.DataFrame, kernel_s: np.ndarray, features: np.ndarray, base: CalibrationSpec, stack: str
) -> tuple[CalibrationSpec, np.ndarray]:
    """``base`` with engine overheads fitted to every row (``fit_step_overheads``), and each
    row's prediction held out by model (overheads fitted on the other models' rows)."""
    measured = rows["measured_s"].to_numpy(dtype=float)
    held_out = np.full(len(rows), np.nan)
    models = rows["model"].to_numpy()
    for model in np.unique(models):
        train, test = models != model, models == model
        terms = fit_step_overheads(kernel_s[train], features[train], measured[train])
        held_out[test] = kernel_s[test] + features[test] @ np.array([terms[t] for t in STEP_TERMS])
    terms = fit_step_overheads(kernel_s, features, measured)
    fitted = kernel_s + features @ np.array([terms[t] for t in STEP_TERMS])
    error = np.abs(fitted / measured - 1.0)
    engine = EngineOverheads(
        engine=stack,
        model=", ".join(sorted(rows["model"].unique())),
        request_overhead_s=0.0,
        fit={"points": float(len(rows)), "median_abs_error": float(np.median(error)), "max_abs_error": float(error.max())},
        **terms,
    )
    spec = base.model_copy(
        update={
            "engine": engine,
            "provenance": base.provenance.model_copy(update={"versions": {"stack": stack}}),
            "error_band": _error_band(held_out / measured - 1.0),
        }
    )
    return spec, held_out


def _datasheet_calibration(device: str, description: str, default: DevicePerf) -> CalibrationSpec:
    """A calibration of the datasheet defaults' kernels (for a device no kernel set covers), on
    which an engine's overheads can be fitted."""
    kernels = default_kernels(default.device.vendor)
    sources = {name: f"datasheet default: {text}" for name, text in DEFAULT_KERNELS.sources.items() if name != "input_quant"}
    spec = _calibration(device, description, kernels.model_copy(update={"sources": sources, "fit": {}}), "datasheet default")
    notes = "kernels: the datasheet defaults (no kernel-level source covers this device); engine overheads fitted to whole runs"
    return spec.model_copy(update={"provenance": spec.provenance.model_copy(update={"notes": notes})})


def _fit_generation_stack(
    generations: pd.DataFrame, default: DevicePerf, base: CalibrationSpec, models, served: DevicePerf | None = None
) -> tuple[CalibrationSpec, pd.DataFrame]:
    """The generation source's stack: ``base``'s kernels with engine overheads fitted to its
    batches' whole generations (``RUN_FITTED_SOURCES``: kernel parameters fitted through them
    instead); and the rows scored: defaults, the calibrated model held out by model, and
    ``served``, the device's kernel calibration as plans serve it (``served_s``; NaN without).
    Batches whose KV the replica cannot hold are left out (vLLM preempts them), and runs measured
    slower than a larger batch of the same prompts (``slower_than_a_larger_batch``)."""
    assert base.kernels is not None
    stack = str(generations["stack"].iloc[0])
    catalog_models = {name: models.model(name) for name in generations["model"].unique()}
    kept = fits_without_preemption(generations, default, catalog_models) & ~slower_than_a_larger_batch(generations)
    rows = generations[kept]
    base = base.model_copy(update={"kernels": base.kernels.model_copy(update={"stack": stack})})
    if rows["source"].iloc[0] in RUN_FITTED_SOURCES:
        spec, held_out = _run_fitted(rows, default, base, catalog_models, stack)
    elif (rows["source"].iloc[0], default.device.name) in PAGED_DECODE:
        spec, held_out = _paged_decode_fitted(rows, default, base, catalog_models, stack)
    else:
        kernel_s = predict_generations(rows, DevicePerf(default.device, base), catalog_models)
        features = generation_features(rows, catalog_models)
        spec, held_out = _engine_fitted(rows, kernel_s, features, base, stack)
    served_s = np.full(len(rows), np.nan) if served is None else predict_generations(rows, served, catalog_models)
    frame = rows.assign(
        default_s=predict_generations(rows, default, catalog_models), calibrated_s=held_out, served_s=served_s
    )
    return spec, frame


# Sources whose device has no kernel-level rows for the kernels they ran, so that their kernel
# parameters are fitted through the runs (``kernel_fit.RUN_PARAMETERS``) and no engine overhead
# on top: AMD's ROCm vLLM on MI300X (hipBLASLt fp8 GEMMs, ROCm paged attention; the defaults'
# parameters come from NVIDIA's kernels). Its batch-1 runs are the datasheet kernels' time
# already (Llama-3.1-70B, TP8: 8.4 ms a token measured, 8.6 ms priced), and an engine cost
# fitted on one model's runs does not carry to the other's (held out: 18-27% median). Not
# LLM-Inference-Bench's MI300X, whose runs disagree with each other (see the README): the GEMM
# efficiency and per-sequence attention cost fitted through them held out at 38% / 144%
# (engine overheads on the datasheet kernels: 22% / 63%; they get ``PAGED_DECODE`` instead).
RUN_FITTED_SOURCES = ("rocm-vllm",)


def _run_fitted(
    rows: pd.DataFrame, default: DevicePerf, base: CalibrationSpec, catalog_models: dict, stack: str
) -> tuple[CalibrationSpec, np.ndarray]:
    """``base`` with kernel parameters fitted through every run and no engine overhead; and each
    run's prediction held out by model (parameters fitted on the other models' runs)."""
    assert base.kernels is not None
    measured = rows["measured_s"].to_numpy(dtype=float)
    models = rows["model"].to_numpy()

    def fitted(mask: np.ndarray) -> KernelModel:
        part = rows[mask]
        return fit_through_runs(
            lambda k: predict_generations(part, _with_kernels(default, base, k), catalog_models),
            measured[mask],
            base.kernels,  # type: ignore[arg-type]
        )

    held_out = np.full(len(rows), np.nan)
    for model in np.unique(models):
        train, test = models != model, models == model
        held_out[test] = predict_generations(rows[test], _with_kernels(default, base, fitted(train)), catalog_models)
    kernels = fitted(np.ones(len(rows), dtype=bool))
    predicted = predict_generations(rows, _with_kernels(default, base, kernels), catalog_models)
    error = np.abs(predicted / measured - 1.0)
    paths = ", ".join(path for path, _, _ in RUN_PARAMETERS)
    sources = {
        **kernels.sources,
        "fitted through runs": f"{paths}: fitted through {len(rows)} whole runs of {stack} ({rows['path'].iloc[0]})",
    }
    engine = EngineOverheads(
        engine=stack,
        model=", ".join(sorted(rows["model"].unique())),
        step_overhead_s=0.0,
        sequence_overhead_s=0.0,
        request_overhead_s=0.0,
        fit={"points": float(len(rows)), "median_abs_error": float(np.median(error)), "max_abs_error": float(error.max())},
    )
    notes = (
        f"kernels: the datasheet defaults with {paths} fitted through the source's whole runs (no kernel-level "
        "rows cover this device's kernels); no engine overhead on top"
    )
    spec = base.model_copy(
        update={
            "kernels": kernels.model_copy(update={"sources": sources}),
            "engine": engine,
            "provenance": base.provenance.model_copy(update={"versions": {"stack": stack}, "notes": notes}),
            "error_band": _error_band(held_out / measured - 1.0),
        }
    )
    return spec, held_out


# Runs whose decode ran vLLM's PagedAttention kernels (one CTA per query head, each reading its
# KV head: a grouped-query model's KV is read heads/KV-heads times): vLLM 0.5-0.6.2's ROCm
# backend (``vllm/attention/backends/rocm_flash_attn.py`` decodes with
# ``PagedAttention.forward_decode``; ``csrc/attention/attention_kernels.cu``: grid (num_heads,
# num_seqs, partitions), ``kv_head_idx = head_idx / num_queries_per_kv``, at v0.5.4), where the
# CUDA backend runs FlashAttention's decode. Their stack prices decode so, with the kernel's
# bandwidth fitted through the runs under the engine overheads (held out by model, median / p90:
# 22% / 63% -> 16% / 52%; the grouped-query models had been the worst, Llama-3-70B 47% median).
PAGED_DECODE = frozenset({("llm-inference-bench", "mi300x")})

# The same runs' library GEMMs (PyTorch's ``F.linear`` on ROCm, hipBLASLt / rocBLAS of 2024) ran
# far below the matrix peak, the runs growing linearly with the batch, not with tiles padded:
# from batch 32 to 256, each further sequence adds 4.2 ms per generated token to Llama-2-70B's
# run at TP1, 128 + 128 tokens (2 x 2 x 69 GFLOP a token, its prompt's share included: ~66
# TFLOP/s, 5% of the peak), 0.33 ms to Llama-2-7B's (~81 TFLOP/s), so the 70B runs were priced
# 25-80% short on NVIDIA-derived GEMMs. Their stack's GEMMs are therefore one of: the base
# kernels' GEMMs (None), or a flat roofline without tile padding (``quantise`` off) at one of
# these compute efficiencies of the matrix peak, chosen with the decode bandwidth on the training
# models (held out by model: 16% / 52% -> 10.6% / 26.4%; low efficiencies on the padded tiles had
# held out at 21% / 52%: a batch of 16 padded to 64-row tiles costs 4 batches of 16). With
# PagedAttention's partitioned (V2) and unpartitioned (V1) decode kernels' bandwidths fitted
# apart (``transformer.PAGED_V1_WORK_ITEMS``): 9.4% / 22.6%.
RUN_GEMM_EFFICIENCIES: tuple[float | None, ...] = (None, 0.03, 0.05, 0.07, 0.1, 0.14)


def _run_gemms(kernels: KernelModel, efficiency: float | None) -> KernelModel:
    """``kernels`` with the GEMM option ``efficiency`` names (``RUN_GEMM_EFFICIENCIES``)."""
    if efficiency is None:
        return kernels
    gemm = kernels.gemm.model_copy(update={"efficiency": efficiency, "quantise": False})
    return kernels.model_copy(update={"gemm": gemm})


def _paged_decode_fitted(
    rows: pd.DataFrame, default: DevicePerf, base: CalibrationSpec, catalog_models: dict, stack: str
) -> tuple[CalibrationSpec, np.ndarray]:
    """``_engine_fitted`` on kernels whose decode reads KV per query head, the bandwidth
    efficiencies of the partitioned (V2) and unpartitioned (V1) PagedAttention kernels chosen
    (golden sections in log space, two rounds of one after the other) and the GEMM option chosen
    among ``RUN_GEMM_EFFICIENCIES`` by the engine-fitted training loss; each run held out by
    model (options, efficiencies and overheads fitted on the other models' runs).

    A run's decode steps all hold its whole batch (no chunked prefill in these runs), so each
    run decodes with one of the two kernels throughout and is priced by its efficiency alone:
    the fit prices each kernel's runs apart."""
    assert base.kernels is not None
    paged = with_parameter(base.kernels, "attention_decode.kv_read_per_query_head", True)  # type: ignore[arg-type]
    features = generation_features(rows, catalog_models)
    measured = rows["measured_s"].to_numpy(dtype=float)
    v1 = _unpartitioned_runs(rows, catalog_models)
    cache: dict[tuple[float | None, float, bool], np.ndarray] = {}

    def kernels_of(gemm: float | None, partitioned: float, unpartitioned: float) -> KernelModel:
        kernels = with_parameter(paged, "attention_decode.memory_efficiency", partitioned)
        kernels = with_parameter(kernels, "attention_decode.unpartitioned_memory_efficiency", unpartitioned)
        return _run_gemms(kernels, gemm)

    def kernel_part_s(gemm: float | None, efficiency: float, unpartitioned: bool) -> np.ndarray:
        key = (gemm, efficiency, unpartitioned)
        if key not in cache:  # the other kernel's efficiency does not enter these runs
            kernels = kernels_of(gemm, 1.0, efficiency) if unpartitioned else kernels_of(gemm, efficiency, efficiency)
            part = rows[v1 == unpartitioned]
            cache[key] = predict_generations(part, _with_kernels(default, base, kernels), catalog_models)
        return cache[key]

    def kernel_s(gemm: float | None, partitioned: float, unpartitioned: float) -> np.ndarray:
        out = np.empty(len(rows))
        out[~v1] = kernel_part_s(gemm, partitioned, False)
        out[v1] = kernel_part_s(gemm, unpartitioned, True)
        return out

    def loss(k: np.ndarray, mask: np.ndarray) -> float:
        terms = fit_step_overheads(k[mask], features[mask], measured[mask])
        predicted = k[mask] + features[mask] @ np.array([terms[t] for t in STEP_TERMS])
        return float(np.mean(np.log(predicted / measured[mask]) ** 2))

    def chosen(mask: np.ndarray) -> tuple[float | None, float, float]:
        options = []
        for gemm in RUN_GEMM_EFFICIENCIES:
            partitioned = unpartitioned = 0.4
            for _ in range(2):  # fixed bounds: the second round's searches mostly revisit cached points
                partitioned = golden_log(lambda e, g=gemm, u=unpartitioned: loss(kernel_s(g, e, u), mask), 0.05, 1.0, 10)
                unpartitioned = golden_log(lambda e, g=gemm, p=partitioned: loss(kernel_s(g, p, e), mask), 0.05, 1.0, 10)
            # V1 never priced faster than V2 (KernelClass: a larger batch is never faster)
            unpartitioned = min(unpartitioned, partitioned)
            options.append((loss(kernel_s(gemm, partitioned, unpartitioned), mask), gemm, partitioned, unpartitioned))
        _, gemm, partitioned, unpartitioned = min(options, key=lambda option: option[0])
        return gemm, partitioned, unpartitioned

    held_out = np.full(len(rows), np.nan)
    models = rows["model"].to_numpy()
    for model in np.unique(models):
        train, test = models != model, models == model
        k = kernel_s(*chosen(train))
        terms = fit_step_overheads(k[train], features[train], measured[train])
        held_out[test] = k[test] + features[test] @ np.array([terms[t] for t in STEP_TERMS])
    gemm, partitioned, unpartitioned = chosen(np.ones(len(rows), dtype=bool))
    kernels = kernels_of(gemm, partitioned, unpartitioned)
    sources = {
        **kernels.sources,
        "attention_decode": f"datasheet default, read per query head (vLLM's PagedAttention), the partitioned (V2) "
        f"and unpartitioned (V1) kernels' memory efficiencies fitted through {len(rows)} whole runs of {stack} "
        f"({int(v1.sum())} of them on V1)",
    }
    if gemm is not None:
        sources["gemm"] = (
            f"fitted through {len(rows)} whole runs of {stack}: a flat roofline (no tile padding) at "
            f"{gemm:.0%} of the matrix peak (the stack's library GEMMs; see RUN_GEMM_EFFICIENCIES)"
        )
    fitted_base = base.model_copy(update={"kernels": kernels.model_copy(update={"sources": sources})})
    spec, _ = _engine_fitted(rows, kernel_s(gemm, partitioned, unpartitioned), features, fitted_base, stack)
    spec = spec.model_copy(update={"error_band": _error_band(held_out / measured - 1.0)})
    return spec, held_out


def _unpartitioned_runs(rows: pd.DataFrame, catalog_models: dict) -> np.ndarray:
    """Whether each run's batch decodes on vLLM's unpartitioned PagedAttention kernel
    (``transformer.unpartitioned_after``: sequences x query heads on a rank above 512)."""
    after = np.array([unpartitioned_after(catalog_models[m].architecture, int(tp))
                      for m, tp in zip(rows["model"], rows["tp"], strict=True)])  # fmt: skip
    return rows["batch"].to_numpy(dtype=float) > after


def _with_kernels(default: DevicePerf, base: CalibrationSpec, kernels: KernelModel) -> DevicePerf:
    return DevicePerf(default.device, base.model_copy(update={"kernels": kernels}))


def _error_band(errors: np.ndarray, weights: np.ndarray | None = None) -> dict[str, float]:
    """Signed held-out errors of whole steps: p10, p50, p90 of predicted/measured - 1 (each
    error counting its weight where weights are given)."""
    if weights is None:
        return {f"p{q}": round(float(np.quantile(errors, q / 100.0)), 4) for q in (10, 50, 90)}
    return {
        f"p{q}": round(float(np.quantile(errors, q / 100.0, weights=weights, method="inverted_cdf")), 4)
        for q in (10, 50, 90)
    }


def _calibration(device: str, description: str, kernels: KernelModel, stack: str) -> CalibrationSpec:
    return CalibrationSpec(
        schema_version=1,
        device=device,
        provenance=CalibrationProvenance(
            kind="public measurements",
            device_description=description,
            date=_dt.date.today().isoformat(),
            tool=f"hetsim calibrate public {__version__}",
            versions={"stack": stack},
            notes="kernel model fitted per class to published measurements; see kernels.sources",
        ),
        launch_overhead=SecondsQ(value=round(kernels.gemm.floor_s * 1e6, 4), unit="us"),
        kernels=kernels,
    )


def _score(
    part: pd.DataFrame,
    default: DevicePerf,
    calibrated: DevicePerf,
    held_out: pd.Series,
    step_models: dict,
) -> pd.DataFrame:
    """``part`` with ``default_s`` and ``calibrated_s`` (held out) predictions."""
    steps = part["op_class"].isin(STEP_CLASSES)
    out = part.assign(default_s=np.nan, calibrated_s=held_out)
    ops = part[~steps]
    out.loc[ops.index, "default_s"] = predict_ops(ops, default)
    # rows of other stacks or sources (e.g. Vidur's GEMMs) are held out by source
    other = ops.index[out.loc[ops.index, "calibrated_s"].isna()]
    out.loc[other, "calibrated_s"] = predict_ops(ops.loc[other], calibrated)
    if steps.any():
        step_rows = part[steps]
        out.loc[step_rows.index, "default_s"] = predict_steps(step_rows, default, step_models)
        out.loc[step_rows.index, "calibrated_s"] = predict_steps(step_rows, calibrated, step_models)
    return out


def score_table(scored: pd.DataFrame) -> pd.DataFrame:
    """Per source, device, stack and op class (fp8 GEMMs apart from 16-bit ones, as they are
    fitted): rows, median and p90 |error|, signed bias, for the defaults and the calibrated model
    (held out)."""
    frame = scored.assign(
        op_class=fit_class_of(scored),
        default_error=scored["default_s"] / scored["measured_s"] - 1.0,
        calibrated_error=scored["calibrated_s"] / scored["measured_s"] - 1.0,
    )
    keys = ["source", "device", "stack", "op_class"]
    groups = frame.groupby(keys, sort=True)
    table = groups.size().rename("rows").to_frame()
    for model in ("default", "calibrated"):
        error = groups[f"{model}_error"]
        table[f"{model}_median_abs"] = error.apply(lambda e: float(e.abs().median()))
        table[f"{model}_p90_abs"] = error.apply(lambda e: float(e.abs().quantile(0.9)))
        table[f"{model}_bias"] = error.median()
    return table.reset_index()


def write_calibrations(fit: PublicFit, out_dir: Path | None = None) -> list[Path]:
    """Write each device's calibration: the kernel stack's as ``calibration/<device>.yaml``,
    others as ``calibration/stacks/<device>--<stack>.yaml``; moved in together
    (``hetsim.io.outputs``), the folder's other files left as they are."""
    base = profiles_root(out_dir) / "calibration"
    texts: dict[str, str] = {}
    for (device, stack), spec in sorted(fit.calibrations.items()):
        name = f"{device}.yaml" if stack == KERNEL_STACK else f"stacks/{device}--{stack_slug(stack)}.yaml"
        texts[name] = _HEADER + yaml.safe_dump(spec.model_dump(mode="json", exclude_defaults=True), sort_keys=False, width=120)

    fill = texts_into(texts)
    return write_outputs([Target(base, "--out", has_manifest=False)], lambda staged: fill(staged[0]), CalibrationError,
                         Provenance("calibrate public"))  # fmt: skip


_HEADER = (
    "# Written by `hetsim calibrate public` from hardware_profiles/measurements/public (see its README for\n"
    "# licences and upstream commits). Re-run it rather than editing by hand.\n"
)
