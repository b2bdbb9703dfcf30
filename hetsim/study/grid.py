"""A pair study over its whole grid: input set x model x precision x shape x SLA -> every
prefill::decode pair, as flat frames (one row per pair, one per stage option). Pure: the caller
supplies the priced devices of each input set.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pandas as pd

from hetsim.perf.transformer import SequenceWork
from hetsim.specs.catalog import ModelCatalog
from hetsim.specs.hardware import DType
from hetsim.specs.study import PairStudySpec
from hetsim.study.pairs import (
    PairWorkload,
    PricedDevice,
    SearchSpace,
    StageConfig,
    best_stages,
    decode_configs,
    evaluate_pairs,
    kv_gbps_per_device,
    replica_shapes,
)


@dataclass(frozen=True)
class GridPoint:
    """One cell of the study grid, with the labels its rows carry."""

    labels: dict[str, Any]
    workload: PairWorkload


def search_space(study: PairStudySpec, kv_link_bytes_per_s: float) -> SearchSpace:
    search = study.search
    return SearchSpace(search.tp_options, search.pp_options, search.prefill_batches, search.max_num_seqs,
                       search.max_batch_tokens, kv_link_bytes_per_s)  # fmt: skip


def grid(study: PairStudySpec, models: ModelCatalog) -> Iterator[GridPoint]:
    """Every model x precision x shape x SLA of the study."""
    for model in study.models:
        spec = models.model(model.name)
        for dtype in study.dtypes:
            for shape in study.shapes:
                for sla in study.slas:
                    labels = {
                        "model": model.label, "precision": dtype.label, "variant": f"{model.label} {dtype.label}",
                        "dtype": dtype.dtype, "shape": shape.name, "figure": shape.figure,
                        "input_tokens": shape.input_tokens, "output_tokens": shape.output_tokens,
                        "sla": sla.name, "is_plotted": sla.is_plotted,
                    }  # fmt: skip
                    workload = PairWorkload(spec, DType(dtype.dtype), shape.input_tokens, shape.output_tokens,
                                            sla.ttft_s, sla.tbt_s)  # fmt: skip
                    yield GridPoint(labels, workload)


def _stage_row(config: StageConfig | None, stage: str, device: str, workload: PairWorkload) -> dict[str, Any]:
    if config is None:
        return {"stage": stage, "device": device, "is_feasible": False}
    return {
        "stage": stage, "device": device, "is_feasible": True, "tp": config.tp, "pp": config.pp,
        "batch": config.batch, "latency_s": config.latency_s, "requests_per_s": config.requests_per_s,
        "usd_per_h": config.usd_per_h, "usd_per_request": config.usd_per_request, "bound": config.bound,
        "kv_gbps_per_device": kv_gbps_per_device(config, workload), "is_kv_link_capped": config.kv_link_capped,
    }  # fmt: skip


def _pair_row(result, paper_pairs: set[str], output_tokens: int) -> dict[str, Any]:
    row: dict[str, Any] = {
        "prefill": result.prefill_device, "decode": result.decode_device, "pair": result.label,
        "is_paper_pair": result.label in paper_pairs, "is_feasible": result.is_feasible,
        "usd_per_request": result.usd_per_request, "tco_benefit": result.tco_benefit,
        "usd_per_million_output_tokens": result.usd_per_request / output_tokens * 1e6,
    }  # fmt: skip
    for stage, config in (("prefill", result.prefill), ("decode", result.decode)):
        if config is not None:
            row |= {f"{stage}_tp": config.tp, f"{stage}_pp": config.pp, f"{stage}_batch": config.batch,
                    f"{stage}_usd_per_request": config.usd_per_request}  # fmt: skip
    row["ttft_s"] = result.prefill.latency_s if result.prefill else float("nan")
    row["tbt_s"] = result.decode.latency_s if result.decode else float("nan")
    return row


def evaluate_study(
    study: PairStudySpec,
    devices_by_set: Mapping[str, Sequence[PricedDevice]],
    models: ModelCatalog,
    space: SearchSpace,
) -> dict[str, pd.DataFrame]:
    """Frames ``pairs`` (every pair of every grid cell) and ``stages`` (best shape per device and stage)."""
    baseline = tuple(study.baseline.split("::"))
    paper_pairs = set(study.paper_pairs)
    pair_rows, stage_rows = [], []
    for input_set in study.input_sets:
        devices = devices_by_set[input_set.name]
        cache: dict = {}
        for point in grid(study, models):
            labels = {"input_set": input_set.name} | point.labels
            stages = best_stages(point.workload, devices, space, cache)
            for stage, configs in stages.items():
                stage_rows += [labels | _stage_row(c, stage, key, point.workload) for key, c in configs.items()]
            for result in evaluate_pairs(stages, (baseline[0], baseline[1])):
                pair_rows.append(labels | _pair_row(result, paper_pairs, point.workload.output_tokens))
    return {"pairs": pd.DataFrame(pair_rows), "stages": pd.DataFrame(stage_rows)}


def tp_scaling(workload: PairWorkload, devices: Sequence[PricedDevice], space: SearchSpace) -> list[dict[str, Any]]:
    """Decode at each TP x PP shape (paper.md E10): TBT of one sequence, the SLA batch and $/request."""
    rows = []
    for device in devices:
        configs = {(c.tp, c.pp): c for c in decode_configs(workload, device, space)}
        for replica in replica_shapes(workload, device.perf, space):
            single = replica.step([SequenceWork(1, workload.decode_context)]).seconds
            config = configs.get((replica.shard.tp, replica.shard.pp))
            rows.append({
                "device": device.key, "tp": replica.shard.tp, "pp": replica.shard.pp, "tbt_batch1_s": single,
                "sla_batch": config.batch if config else 0, "tbt_s": config.latency_s if config else float("nan"),
                "usd_per_request": config.usd_per_request if config else float("nan"),
            })  # fmt: skip
    return rows
