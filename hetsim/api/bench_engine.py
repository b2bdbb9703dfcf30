"""``hetsim bench --engine vllm``: profile a serving engine itself and write its calibration.

Kernel microbenchmarks do not describe an engine's step (scheduling, sampling, the API). This
starts one engine on the device, measures a synthetic grid through its API
(``hetsim.exec.engine_profile``), fits the engine's overheads on top of the performance
model's kernel times (``hetsim.perf.engine_fit``) and writes an engine calibration with its
provenance: engine and version, flags, device, model and size, date, host.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import os
import statistics
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from hetsim.api.run import device_kind_for, host_description
from hetsim.errors import CalibrationError
from hetsim.exec.engine import EngineOptions, vllm_launch
from hetsim.exec.engine_process import EngineProcess
from hetsim.exec.engine_profile import EngineProfiler, GridPoint
from hetsim.exec.model_dir import vocab_size, write_model_dir
from hetsim.exec.setup import engine_version
from hetsim.io.calibration import load_calibration
from hetsim.io.catalog import load_catalog
from hetsim.io.models import load_models
from hetsim.io.outputs import write_file
from hetsim.perf.engine_fit import fit_engine_overheads
from hetsim.perf.llm import LlmReplica, SequenceWork, ServingLimits
from hetsim.perf.model_scale import scale_named, scaled_model
from hetsim.perf.roofline import DevicePerf
from hetsim.perf.transformer import Precision, Shard
from hetsim.specs.calibration import CalibrationProvenance, EngineCalibrationSpec, EngineOverheads
from hetsim.specs.hardware import DType
from hetsim.specs.plan import PoolSpec


def kernel_model(model: str, device: str, scale: str, max_batch_tokens: int) -> tuple[Callable[[str, int, int], float], Callable[[int], float]]:
    """The performance model's kernel time of a grid point (no engine overheads): a decode step
    of ``batch`` sequences at ``tokens`` of context, or the prefill of ``tokens`` in chunks; and
    the causal query-key pairs x layers of a prompt's prefill."""
    hardware, models = load_catalog("datasheet"), load_models()
    spec = scaled_model(models.model(model), scale_named(scale))
    accelerator = hardware.accelerator(device)
    replica = LlmReplica(spec, DevicePerf(accelerator, load_calibration(accelerator.name)), Shard(1, 1),
                         Precision.uniform(DType.BF16), ServingLimits(max_batch_tokens=max_batch_tokens))  # fmt: skip

    def kernels(kind: str, tokens: int, batch: int) -> float:
        if kind == "decode":
            return replica.step([SequenceWork(1, tokens + 24)] * batch).seconds
        seconds, done = 0.0, 0
        while done < tokens:
            chunk = min(max_batch_tokens, tokens - done)
            seconds += replica.step([SequenceWork(chunk, done)]).seconds
            done += chunk
        return seconds

    def pairs(tokens: int) -> float:
        chunks, done = [], 0
        while done < tokens:
            chunk = min(max_batch_tokens, tokens - done)
            chunks.append((chunk, done))
            done += chunk
        return sum(replica.prefill_pairs_per_stage([c]) for c in chunks)

    return kernels, pairs


def bench_engine(
    model: str = "llama-3-8b",
    device: str = "host-xeon-spr-2vcpu",
    scale: str = "auto",
    engine_python: str | None = None,
    engine_device: str = "auto",
    out: Path | None = None,
    max_num_seqs: int = 32,
    max_batch_tokens: int = 2048,
    replicas: int = 1,
    progress: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Profile the engine and write the calibration; returns a summary of the fit.

    ``replicas``: engines profiled side by side, each on its own cores, as a plan co-locates
    them (they share the machine's caches and memory bandwidth); each grid point is the median
    over the engines."""
    if replicas < 1:
        raise CalibrationError(f"--replicas: expected at least 1, got {replicas}")
    device_kind = device_kind_for(engine_device)
    scale_name = ("tiny" if device_kind == "cpu" else "full") if scale == "auto" else scale
    options = EngineOptions(python=engine_python or os.environ.get("HETSIM_ENGINE_PYTHON") or sys.executable, device_kind=device_kind)
    version = engine_version(options.python)
    pool = PoolSpec.model_validate({
        "name": "bench", "device": device, "replicas": 1,
        "llm": {"model": model, "max_num_seqs": max_num_seqs, "max_batch_tokens": max_batch_tokens},
    })  # fmt: skip
    models = load_models()
    catalog_model = models.model(model)
    kernels, pairs = kernel_model(model, device, scale_name, max_batch_tokens)  # fails fast on a bad device or model
    with tempfile.TemporaryDirectory(prefix="hetsim-bench-engine-") as scratch:
        folder = write_model_dir(Path(scratch) / "model", catalog_model, scale_named(scale_name))
        assert catalog_model.architecture is not None
        launches = [vllm_launch(pool, i, folder, True, catalog_model.architecture.max_context_tokens, options, Path(scratch))
                    for i in range(replicas)]  # fmt: skip
        if device_kind == "cuda":  # no Ray here to hand out GPUs: one each, by index
            launches = [dataclasses.replace(launch, env=launch.env | {"CUDA_VISIBLE_DEVICES": str(i)}) for i, launch in enumerate(launches)]
        engines = [EngineProcess(launch) for launch in launches]
        if progress:
            progress(f"starting {replicas} engine(s)")
        try:
            for engine in engines:
                engine.start()
            profilers = [EngineProfiler(e.url, model, vocab_size(folder), seed=i) for i, e in enumerate(engines)]
            points = asyncio.run(_side_by_side(profilers, progress))
        finally:
            for engine in engines:
                engine.stop()
        launch = launches[0]
    fit = fit_engine_overheads([(p.kind, p.tokens, p.batch, p.measured_s) for p in points], kernels, pairs)
    size = scale_named(scale_name).describe()
    spec = EngineCalibrationSpec(
        schema_version=1,
        device=device,
        provenance=CalibrationProvenance(
            kind="measured", device_description=host_description(), host=os.uname().nodename,
            date=dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            tool=f"hetsim bench --engine vllm ({version})", versions={"engine": version},
            notes=f"synthetic grid: prefill {sorted({p.tokens for p in points if p.kind == 'prefill'})} tokens; decode batches "
                  f"{sorted({p.batch for p in points if p.kind == 'decode'})} at contexts {sorted({p.tokens for p in points if p.kind == 'decode'})}; "
                  f"median of 3 each; {replicas} engine(s) side by side, one core each; client-side timing",
        ),
        overheads=EngineOverheads(
            engine=version, model=f"{model} ({size})", flags=tuple(launch.argv[3:]),
            step_overhead_s=fit.step_overhead_s, sequence_overhead_s=fit.sequence_overhead_s,
            request_overhead_s=fit.request_overhead_s, prefill_pair_s=fit.prefill_pair_s, fit=fit.quality, side_by_side=replicas,
        ),
        measurements=tuple(fit.rows),
    )
    side_by_side = f"--x{replicas}" if replicas > 1 else ""
    target = (out or Path("hetsim-bench")) / "calibration" / "engines" / f"{device}--{version.replace('==', '-')}{side_by_side}.yaml"
    _write(target, spec)
    return {"written": str(target), "engine": version, "device": device, "model": f"{model} ({size})",
            "step_overhead_s": fit.step_overhead_s, "sequence_overhead_s": fit.sequence_overhead_s,
            "request_overhead_s": fit.request_overhead_s, "prefill_pair_s": fit.prefill_pair_s, "fit": fit.quality,
            "rows": fit.rows}  # fmt: skip


async def _side_by_side(profilers: list[EngineProfiler], progress: Callable[[str], None] | None) -> list[GridPoint]:
    """The same grid on every engine at once; per point, the median over the engines."""
    grids = await asyncio.gather(*(p.grid(progress=progress if i == 0 else None) for i, p in enumerate(profilers)))
    return [GridPoint(first.kind, first.tokens, first.batch, statistics.median(g[i].measured_s for g in grids))
            for i, first in enumerate(grids[0])]  # fmt: skip


def _write(target: Path, spec: EngineCalibrationSpec) -> None:
    text = yaml.safe_dump(spec.model_dump(mode="json"), sort_keys=False)
    write_file(target, "engine calibration", lambda staged: staged.write_text(text, encoding="utf-8"), CalibrationError)
