"""Predict measured rows (``hetsim.io.public_measurements``) with the analytical model.

Op-level rows are priced by the kernel model's class for their ``op_class`` with the shapes
the row records; whole serving steps by ``LlmReplica.step`` on the catalog model, so a step
is validated exactly as the simulator prices it. Everything is vectorised per op class.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

from hetsim.errors import EstimateError
from hetsim.perf.kernels import (
    all_reduce_seconds,
    gemm_seconds,
    input_quant_kernels,
    input_quant_seconds,
    kernel_seconds,
)
from hetsim.perf.llm import LlmReplica
from hetsim.perf.roofline import DevicePerf
from hetsim.perf.transformer import Precision, SequenceWork, Shard
from hetsim.specs.calibration import KernelModel, gemm_kernels
from hetsim.specs.hardware import DType
from hetsim.specs.model import ModelSpec

OP_CLASSES = ("gemm", "attention_prefill", "attention_decode", "elementwise", "all_reduce")
STEP_CLASSES = ("prefill_step", "decode_step")
_ELEMENT_BYTES = {"bf16": 2.0, "fp16": 2.0, "fp8": 1.0}


def _column(rows: pd.DataFrame, name: str) -> np.ndarray:
    return rows[name].to_numpy(dtype=float)


def gemm_groups(rows: pd.DataFrame) -> np.ndarray:
    """Problems per GEMM row: a grouped GEMM's groups (an optional ``groups`` column), else 1."""
    if "groups" not in rows:
        return np.ones(len(rows))
    return rows["groups"].fillna(1.0).to_numpy(dtype=float)


def gemm_work(rows: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(m, n, k, bytes) of GEMM rows (per group of a grouped row): inputs, weights and outputs
    streamed once, every group's."""
    m, n, k = (_column(rows, c) for c in ("m", "n", "k"))
    element = rows["dtype"].map(_ELEMENT_BYTES).fillna(2.0).to_numpy(dtype=float)
    return m, n, k, gemm_groups(rows) * ((m * k + k * n) * element + m * n * 2.0)  # outputs in 16 bits


def quantises_input(rows: pd.DataFrame) -> np.ndarray:
    """Rows whose measured op quantised a 16-bit input before an fp8 GEMM: the source recorded a
    16-bit ``input_dtype`` (AIConfigurator's vLLM collector times the linear layer on bf16 input),
    so the op includes the quantisation kernel (``hetsim.perf.kernels.input_quant_seconds``)."""
    if "input_dtype" not in rows:
        return np.zeros(len(rows), dtype=bool)
    sixteen_bit = rows["input_dtype"].map(_ELEMENT_BYTES).eq(2.0).to_numpy()
    return sixteen_bit & (rows["dtype"] == "fp8").to_numpy()


def attention_work(rows: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """(FLOPs, bytes) of attention rows, with ``hetsim.perf.transformer``'s conventions:
    4 FLOPs per causal query-key pair per head-dim element; KV read once, Q and O once."""
    batch, q, kv = _column(rows, "batch"), _column(rows, "q_tokens"), _column(rows, "kv_tokens")
    heads, kv_heads, head_dim = _column(rows, "heads"), _column(rows, "kv_heads"), _column(rows, "head_dim")
    element = rows["dtype"].map(_ELEMENT_BYTES).fillna(2.0).to_numpy(dtype=float)
    pairs = q * kv + q * (q + 1.0) / 2.0
    flops = batch * pairs * 4.0 * head_dim * heads
    nbytes = batch * ((kv + q) * 2.0 * kv_heads * head_dim + q * 2.0 * heads * head_dim) * element
    return flops, nbytes


def elementwise_bytes(rows: pd.DataFrame) -> np.ndarray:
    """Bytes each element-wise op moves (reads plus writes; 16-bit activations)."""
    tokens, hidden, width = _column(rows, "batch"), _column(rows, "hidden"), _column(rows, "width")
    heads, kv_heads, head_dim = _column(rows, "heads"), _column(rows, "kv_heads"), _column(rows, "head_dim")
    per_op = {
        "input_layernorm": 2.0 * tokens * hidden,
        "post_attention_layernorm": 2.0 * tokens * hidden,
        "add": 3.0 * tokens * hidden,
        "emb": 2.0 * tokens * hidden,
        "mlp_act": 3.0 * tokens * width,  # gated: read gate and up, write one
        "attn_rope": 2.0 * tokens * (heads + kv_heads) * head_dim,
    }
    out = np.full(len(rows), np.nan)
    ops = rows["op"].to_numpy()
    for op, elements in per_op.items():
        out = np.where(ops == op, elements * 2.0, out)
    return out


def predict_ops(rows: pd.DataFrame, perf: DevicePerf, kernels: KernelModel | None = None) -> np.ndarray:
    """Predicted seconds of op-level rows of one device (NaN for classes it cannot price)."""
    kernels = kernels or perf.kernels
    out = np.full(len(rows), np.nan)
    bandwidth = perf.bandwidth_bytes_per_s
    classes = rows["op_class"].to_numpy()
    for op_class in OP_CLASSES:
        mask = classes == op_class
        if not mask.any():
            continue
        part = rows[mask]
        peak = _peaks(part, perf)
        if op_class == "gemm":
            m, n, k, nbytes = gemm_work(part)
            groups = gemm_groups(part)
            fp8 = (part["dtype"] == "fp8").to_numpy()
            for rows_fp8, params in ((fp8, gemm_kernels(kernels, "fp8")), (~fp8, kernels.gemm)):
                if rows_fp8.any():
                    out[np.flatnonzero(mask)[rows_fp8]] = gemm_seconds(
                        params, m[rows_fp8], n[rows_fp8], k[rows_fp8], nbytes[rows_fp8], peak[rows_fp8],
                        bandwidth, perf.compute_units if params.quantise else None, groups[rows_fp8],
                    )
            quantised = fp8 & quantises_input(part)
            if quantised.any():
                out[np.flatnonzero(mask)[quantised]] += input_quant_seconds(
                    input_quant_kernels(kernels), m[quantised] * groups[quantised], k[quantised], bandwidth
                )
        elif op_class in ("attention_prefill", "attention_decode"):
            flops, nbytes = attention_work(part)
            params = getattr(kernels, op_class)
            seconds = kernel_seconds(params, flops, nbytes, peak, bandwidth)
            out[mask] = seconds + _column(part, "batch") * _column(part, "kv_heads") * params.sequence_s  # work items
        elif op_class == "elementwise":
            out[mask] = kernel_seconds(kernels.elementwise, 0.0, elementwise_bytes(part), peak, bandwidth)
        else:
            out[mask] = _all_reduce(part, perf, kernels)
    return out


def _peaks(rows: pd.DataFrame, perf: DevicePerf) -> np.ndarray:
    return rows["dtype"].map(lambda d: perf.peak_flops(DType(d))).to_numpy(dtype=float)


def _all_reduce(rows: pd.DataFrame, perf: DevicePerf, kernels: KernelModel) -> np.ndarray:
    link = perf.device.scale_up
    if link is None:
        return np.full(len(rows), np.nan)
    ranks = _column(rows, "ranks")
    out = np.empty(len(rows))
    for p in np.unique(ranks):
        mask = ranks == p
        out[mask] = all_reduce_seconds(kernels.collective, _column(rows[mask], "message_bytes"), int(p), link.bandwidth.si)
    return out


def predict_steps(rows: pd.DataFrame, perf: DevicePerf, models: Mapping[str, ModelSpec]) -> np.ndarray:
    """Predicted seconds of whole prefill and decode steps (``LlmReplica.step``)."""
    out = np.full(len(rows), np.nan)
    for index, row in enumerate(rows.itertuples(index=False)):
        model = models.get(str(row.model))
        if model is None:
            raise EstimateError(f"step row: model {row.model!r} is not in the catalog")
        precision = Precision.uniform(DType(row.dtype))
        replica = LlmReplica(model, perf, Shard(tp=int(row.tp)), precision=precision)
        batch = [SequenceWork(int(row.q_tokens), int(row.kv_tokens))] * int(row.batch)
        out[index] = replica.step(batch).seconds
    return out
