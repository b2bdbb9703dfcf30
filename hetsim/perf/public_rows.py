"""Predict measured rows (``hetsim.io.public_measurements``) with the analytical model.

Op-level rows are priced by the kernel model's class for their ``op_class`` with the shapes
the row records; whole serving steps by ``LlmReplica.step`` on the catalog model, so a step
is validated exactly as the simulator prices it; a batch's whole generation as the sum of the
steps the measured engine ran for it (``generation_schedule``), each priced the same way.
Everything is vectorised per op class.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from hetsim.errors import EstimateError
from hetsim.perf.attention_pairs import window_pairs
from hetsim.perf.kernels import (
    AttentionShape,
    all_reduce_seconds,
    attention_seconds,
    gemm_seconds,
    input_quant_kernels,
    input_quant_seconds,
    kernel_seconds,
)
from hetsim.perf.llm import LlmReplica, ServingLimits
from hetsim.perf.roofline import DevicePerf
from hetsim.perf.transformer import Precision, SequenceWork, Shard
from hetsim.specs.calibration import KernelModel, gemm_kernels
from hetsim.specs.hardware import DType
from hetsim.specs.model import ModelSpec

OP_CLASSES = ("gemm", "attention_prefill", "attention_decode", "elementwise", "all_reduce")
STEP_CLASSES = ("prefill_step", "decode_step")
GENERATION_CLASS = "generation"
WHOLE_STEP_CLASSES = (*STEP_CLASSES, GENERATION_CLASS)
_ELEMENT_BYTES = {"bf16": 2.0, "fp16": 2.0, "fp8": 1.0}


def _column(rows: pd.DataFrame, name: str) -> np.ndarray:
    return rows[name].to_numpy(dtype=float)


def _per_label(labels: pd.Series, value: Callable[[Any], Any], missing: Any) -> np.ndarray:
    """``value`` of each label (``missing`` where none), evaluated once per distinct label: the
    fitters price the same rows thousands of times, and a per-row map dominated their time."""
    codes, distinct = pd.factorize(labels)
    return np.array([*(value(label) for label in distinct), missing])[codes]


def _element_bytes(rows: pd.DataFrame) -> np.ndarray:
    """Bytes per element of each row's ``dtype`` (16 bits where unknown)."""
    return _per_label(rows["dtype"], lambda d: _ELEMENT_BYTES.get(d, 2.0), 2.0).astype(float)


def gemm_groups(rows: pd.DataFrame) -> np.ndarray:
    """Problems per GEMM row: a grouped GEMM's groups (an optional ``groups`` column), else 1."""
    if "groups" not in rows:
        return np.ones(len(rows))
    return rows["groups"].fillna(1.0).to_numpy(dtype=float)


def gemm_work(rows: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(m, n, k, bytes) of GEMM rows (per group of a grouped row): inputs, weights and outputs
    streamed once, every group's."""
    m, n, k = (_column(rows, c) for c in ("m", "n", "k"))
    element = _element_bytes(rows)
    return m, n, k, gemm_groups(rows) * ((m * k + k * n) * element + m * n * 2.0)  # outputs in 16 bits


def quantises_input(rows: pd.DataFrame) -> np.ndarray:
    """Rows whose measured op quantised a 16-bit input before an fp8 GEMM: the source recorded a
    16-bit ``input_dtype`` (AIConfigurator's vLLM collector times the linear layer on bf16 input),
    so the op includes the quantisation kernel (``hetsim.perf.kernels.input_quant_seconds``)."""
    if "input_dtype" not in rows:
        return np.zeros(len(rows), dtype=bool)
    sixteen_bit = _per_label(rows["input_dtype"], lambda d: _ELEMENT_BYTES.get(d) == 2.0, False).astype(bool)
    return sixteen_bit & (rows["dtype"] == "fp8").to_numpy()


def attention_window(rows: pd.DataFrame) -> np.ndarray:
    """Each attention row's sliding window in keys per query (NaN: full attention)."""
    if "window" not in rows:
        return np.full(len(rows), np.nan)
    return rows["window"].to_numpy(dtype=float)


# Sources whose op rows time the same call repeatedly, so that an op whose bytes fit in L2 finds
# them there: AIConfigurator's collectors (collector/helper.py benchmark_with_power: warm-up runs,
# then timed runs of one call on the same tensors; collector/vllm/collect_attn.py).
WARM_CACHE_SOURCES = frozenset({"aiconfigurator"})
# Same-shape layers one timed GEMM call runs on one input, each with its own weights, so that all
# of them must fit in L2 to stay warm: AIConfigurator's vLLM GEMM collector builds
# ``outside_loop_count`` = 6 RowParallelLinear layers for bf16 and per-tensor fp8, runs them on
# the same ``x`` in one CUDA graph and reports the time over 6 (collector/vllm/collect_gemm.py).
# Its ``kernel_func`` discards each layer's output (``op.forward(x)``), so the caching allocator
# hands the freed block to the next layer: one output buffer (and one fp8 copy of the input) is
# rewritten 6 times, not 6 held (L40S rows writing 67 MB outputs ran at 2.1 TB/s).
GEMM_COPIES = 6.0


def warm_cache_bytes(rows: pd.DataFrame, perf: DevicePerf) -> np.ndarray:
    """Per row, the L2 bytes that stay warm between its repeated calls; NaN for a row of a source
    that does not repeat its calls (or a device without a listed L2): nothing is warm."""
    l2 = perf.device.memory.l2_cache
    if l2 is None or "source" not in rows:
        return np.full(len(rows), np.nan)
    return np.where(rows["source"].isin(WARM_CACHE_SOURCES).to_numpy(), l2.si, np.nan)


def gemm_warm(rows: pd.DataFrame, perf: DevicePerf) -> np.ndarray:
    """GEMM rows whose repeated call keeps its bytes in L2: the input the ``GEMM_COPIES`` layers
    share (with its fp8 copy where the layer quantises it), their weights and the one output
    buffer they reuse fit in the device's L2 (``warm_cache_bytes``)."""
    m, n, k = (_column(rows, c) for c in ("m", "n", "k"))
    element = _element_bytes(rows)
    # the 16-bit input of a quantising fp8 layer, and its fp8 copy (one buffer the layers reuse)
    inputs = np.where(quantises_input(rows), 2.0 + element, element)
    working_set = gemm_groups(rows) * (m * k * inputs + GEMM_COPIES * k * n * element + m * n * 2.0)
    return working_set <= warm_cache_bytes(rows, perf)  # NaN: never


def quant_warm(rows: pd.DataFrame, perf: DevicePerf) -> np.ndarray:
    """Quantising fp8 GEMM rows whose 16-bit input is still in L2 when the next of the
    ``GEMM_COPIES`` layers quantises it again: between the two reads pass the input, its fp8 copy,
    one layer's weights and its output (its reuse distance), which must fit in the device's L2."""
    m, n, k = (_column(rows, c) for c in ("m", "n", "k"))
    element = _element_bytes(rows)
    reuse = gemm_groups(rows) * (m * k * (2.0 + element) + k * n * element + m * n * 2.0)
    return reuse <= warm_cache_bytes(rows, perf)  # NaN: never


def attention_shape(rows: pd.DataFrame, perf: DevicePerf) -> AttentionShape:
    """The ``AttentionShape`` of attention rows measured on ``perf``'s device."""
    q, kv = _column(rows, "q_tokens"), _column(rows, "kv_tokens")
    window = attention_window(rows)
    _, kv_read = window_pairs(q, kv, window)
    return AttentionShape(
        batch=_column(rows, "batch"), q_tokens=q, kv_read=kv_read, window=window, heads=_column(rows, "heads"),
        kv_heads=_column(rows, "kv_heads"), head_dim=_column(rows, "head_dim"),
        warm_cache_bytes=warm_cache_bytes(rows, perf),
    )


def attention_work(rows: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """(FLOPs, bytes) of attention rows, with ``hetsim.perf.transformer``'s conventions:
    4 FLOPs per causal query-key pair per head-dim element; KV read once, Q and O once;
    a sliding window bounds both the pairs and the keys read."""
    batch, q, kv = _column(rows, "batch"), _column(rows, "q_tokens"), _column(rows, "kv_tokens")
    heads, kv_heads, head_dim = _column(rows, "heads"), _column(rows, "kv_heads"), _column(rows, "head_dim")
    element = _element_bytes(rows)
    pairs, kv_read = window_pairs(q, kv, attention_window(rows))
    flops = batch * pairs * 4.0 * head_dim * heads
    nbytes = batch * (kv_read * 2.0 * kv_heads * head_dim + q * 2.0 * heads * head_dim) * element
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
            warm = gemm_warm(part, perf)
            for rows_fp8, params in ((fp8, gemm_kernels(kernels, "fp8")), (~fp8, kernels.gemm)):
                if rows_fp8.any():
                    out[np.flatnonzero(mask)[rows_fp8]] = gemm_seconds(
                        params, m[rows_fp8], n[rows_fp8], k[rows_fp8], nbytes[rows_fp8], peak[rows_fp8],
                        bandwidth, perf.compute_units if params.quantise else None, groups[rows_fp8], warm[rows_fp8],
                    )
            quantised = fp8 & quantises_input(part)
            if quantised.any():
                out[np.flatnonzero(mask)[quantised]] += input_quant_seconds(
                    input_quant_kernels(kernels), m[quantised] * groups[quantised], k[quantised], bandwidth,
                    quant_warm(part, perf)[quantised],
                )
        elif op_class in ("attention_prefill", "attention_decode"):
            flops, nbytes = attention_work(part)
            out[mask] = attention_seconds(
                getattr(kernels, op_class), flops, nbytes, peak, bandwidth, perf.compute_units,
                attention_shape(part, perf), op_class == "attention_decode",
            )
        elif op_class == "elementwise":
            out[mask] = kernel_seconds(kernels.elementwise, 0.0, elementwise_bytes(part), peak, bandwidth)
        else:
            out[mask] = _all_reduce(part, perf, kernels)
    return out


def _peaks(rows: pd.DataFrame, perf: DevicePerf) -> np.ndarray:
    return _per_label(rows["dtype"], lambda d: perf.peak_flops(DType(d)), np.nan).astype(float)


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
        batch = [SequenceWork(int(row.q_tokens), int(row.kv_tokens))] * int(row.batch)
        out[index] = row_replica(row, perf, models).step(batch).seconds
    return out


@dataclass(frozen=True)
class GenerationSchedule:
    """The steps a vLLM scheduler runs for one fixed batch of equal prompts arriving at once:
    ``steps`` (every step that computes prompt tokens, each sequence's share of it) priced one by
    one, then ``decode_runs`` (the sequences' contexts at the run's start, its step count) of
    decode-only steps, priced as the simulator prices consecutive decodes."""

    steps: tuple[tuple[SequenceWork, ...], ...]
    prompt_chunks: tuple[tuple[bool, ...], ...]  # per step and sequence: is its work prompt tokens
    decode_runs: tuple[tuple[tuple[int, ...], int], ...]

    @property
    def step_count(self) -> int:
        return len(self.steps) + sum(n for _, n in self.decode_runs)

    def features(self, layers: int) -> np.ndarray:
        """The engine-overhead features (``kernel_fit.STEP_TERMS``) summed over the steps:
        steps, steps x layers, sequences in each step, causal prompt pairs x layers, tokens."""
        rows = sum(len(step) for step in self.steps) + sum(len(c) * n for c, n in self.decode_runs)
        pairs = sum(
            w.new_tokens * w.context_tokens + w.new_tokens * (w.new_tokens + 1.0) / 2.0
            for step, prompt in zip(self.steps, self.prompt_chunks, strict=True)
            for w, is_prompt in zip(step, prompt, strict=True)
            if is_prompt
        )
        tokens = sum(w.new_tokens for step in self.steps for w in step) + sum(len(c) * n for c, n in self.decode_runs)
        steps = self.step_count
        return np.array([steps, steps * layers, rows, pairs * layers, tokens], dtype=float)


def generation_schedule(
    model: ModelSpec,
    batch: int,
    prompt_tokens: int,
    output_tokens: int,
    chunked_prefill: bool = False,
    token_budget: int | None = None,
) -> GenerationSchedule:
    """The steps of one batch's generation under vLLM's scheduler.

    V0 without chunked prefill (``chunked_prefill`` False; the 0.5 era's default below 32k
    positions, and ROCm's always): whole prompts, as many per step as the token budget
    (``token_budget``, else max(max_model_len, 2048)) and ``max_num_seqs`` allow, all before any
    decode (waiting prompts go first); then one step of every sequence per further token (the
    first output token comes from the prefill). Chunked prefill (V1; ``token_budget`` its
    ``max_num_batched_tokens``): each step first gives every running sequence its next token
    (or the rest of its prompt, up to the budget), then fills the budget with waiting prompts
    in order, the last one cut; a sequence decodes from the step after its prompt's last
    chunk, so the batch's tail finishes over a few steps."""
    assert model.architecture is not None
    budget = token_budget or max(model.architecture.max_context_tokens, 2048)
    if not chunked_prefill:
        per_step = max(1, min(budget // prompt_tokens, ServingLimits().max_num_seqs))
        full, rest = divmod(batch, per_step)
        sizes = (per_step,) * full + ((rest,) if rest else ())
        steps = tuple((SequenceWork(prompt_tokens, 0),) * n for n in sizes)
        runs = (((prompt_tokens,) * batch, output_tokens - 1),) if output_tokens > 1 else ()
        return GenerationSchedule(steps, tuple((True,) * n for n in sizes), runs)
    return _chunked_schedule(batch, prompt_tokens, output_tokens, budget, ServingLimits().max_num_seqs)


def _chunked_schedule(batch: int, prompt_tokens: int, output_tokens: int, budget: int, max_seqs: int) -> GenerationSchedule:
    prefilled = [0] * batch  # prompt tokens computed so far
    generated = [0] * batch  # output tokens so far (the first comes with the prompt's last chunk)
    steps: list[tuple[SequenceWork, ...]] = []
    prompt_chunks: list[tuple[bool, ...]] = []
    while min(prefilled) < prompt_tokens:
        left, work, chunks = budget, [], []
        running = sum(1 for i in range(batch) if prefilled[i] > 0 and generated[i] < output_tokens)
        for i in range(batch):  # running sequences in arrival order, then waiting ones
            if left == 0:
                break
            if prefilled[i] == 0:  # waiting: admitted while fewer than max_num_seqs run
                if running >= max_seqs:
                    break
                running += 1
            if prefilled[i] < prompt_tokens:
                take = min(prompt_tokens - prefilled[i], left)
                work.append(SequenceWork(take, prefilled[i]))
                chunks.append(True)
                prefilled[i] += take
                generated[i] += int(prefilled[i] == prompt_tokens)
            elif generated[i] < output_tokens:
                work.append(SequenceWork(1, prompt_tokens + generated[i] - 1))
                chunks.append(False)
                generated[i] += 1
            else:
                continue
            left -= work[-1].new_tokens
        steps.append(tuple(work))
        prompt_chunks.append(tuple(chunks))
    runs = []
    remaining = [output_tokens - g for g in generated]
    contexts = [prompt_tokens + g - 1 for g in generated]
    while max(remaining) > 0:
        active = [i for i in range(batch) if remaining[i] > 0]
        n = min(remaining[i] for i in active)
        runs.append((tuple(contexts[i] for i in active), n))
        for i in active:
            remaining[i] -= n
            contexts[i] += n
    return GenerationSchedule(tuple(steps), tuple(prompt_chunks), tuple(runs))


def row_replica(row: Any, perf: DevicePerf, models: Mapping[str, ModelSpec]) -> LlmReplica:
    """The replica a step or generation row ran: its catalog model at its TP and dtype on ``perf``."""
    model = models.get(str(row.model))
    if model is None:
        raise EstimateError(f"measured row: model {row.model!r} is not in the catalog")
    kv = _kv_dtype(row)
    precision = Precision.uniform(DType(row.dtype)).with_kv_cache(None if kv is None else DType(kv))
    return LlmReplica(model, perf, Shard(tp=int(row.tp)), precision=precision)


def _kv_dtype(row: Any) -> str | None:
    """The KV cache format a row names (the optional ``kv_dtype`` column), else None."""
    kv = getattr(row, "kv_dtype", None)
    return kv if isinstance(kv, str) and kv else None


def fits_without_preemption(rows: pd.DataFrame, perf: DevicePerf, models: Mapping[str, ModelSpec]) -> np.ndarray:
    """Rows whose whole batch's KV (prompt + output per sequence) fits the replica's cache:
    beyond it vLLM preempts and recomputes sequences, which a sum of the batch's steps does not
    describe (A100 40GB, Llama-2-7B, batch 16 of 2048 + 2048 tokens: 3x the batch-1 time)."""
    out = np.zeros(len(rows), dtype=bool)
    for index, row in enumerate(rows.itertuples(index=False)):
        try:
            capacity = row_replica(row, perf, models).kv_capacity_tokens
        except EstimateError:  # the model does not fit the devices at all
            continue
        out[index] = int(row.batch) * (int(row.q_tokens) + int(row.output_tokens)) <= capacity
    return out


def slower_than_a_larger_batch(rows: pd.DataFrame) -> np.ndarray:
    """Runs measured slower than a larger batch of the same prompts (same device, stack, model,
    TP, lengths and formats): more sequences of the same work cannot take less time, so such a
    run timed something else too (LLM-Inference-Bench's first run of each MI300X deployment, a
    batch of one 128-token prompt: 2.1-2.3 s where 16 such prompts took 1.3-1.6 s)."""
    keys = ["device", "stack", "model", "tp", "q_tokens", "output_tokens", "dtype"]
    keys += [c for c in ("kv_dtype",) if c in rows.columns]
    out = np.zeros(len(rows), dtype=bool)
    for positions in rows.reset_index(drop=True).groupby(keys, sort=False, dropna=False).indices.values():
        batch = rows["batch"].to_numpy(dtype=float)[positions]
        measured = rows["measured_s"].to_numpy(dtype=float)[positions]
        larger = batch[None, :] > batch[:, None]  # [i, j]: run j is a larger batch than run i
        fastest_larger = np.where(larger, measured[None, :], np.inf).min(axis=1)
        out[positions] = measured > fastest_larger
    return out


def predict_generations(rows: pd.DataFrame, perf: DevicePerf, models: Mapping[str, ModelSpec]) -> np.ndarray:
    """Predicted seconds of whole batch generations: each step that computes prompt tokens by
    ``LlmReplica.step`` and the decode-only runs by the step pricer's run of consecutive
    decodes (the simulator's)."""
    out = np.full(len(rows), np.nan)
    replicas: dict[tuple, LlmReplica] = {}  # rows of one deployment share its pricer's caches
    for index, row in enumerate(rows.itertuples(index=False)):
        key = (row.model, int(row.tp), row.dtype, _kv_dtype(row))
        replica = replicas.get(key) or replicas.setdefault(key, row_replica(row, perf, models))
        plan = row_schedule(row, replica.model)
        pricer = replica.pricer  # ``LlmReplica.step``'s seconds, without its attribution
        seconds = sum(pricer.step_seconds_of(0, [], [(w.new_tokens, w.context_tokens) for w in step]) for step in plan.steps)
        seconds += sum(float(replica.decode_run_times(list(c), n).sum()) for c, n in plan.decode_runs)
        out[index] = seconds
    return out


def row_schedule(row: Any, model: ModelSpec) -> GenerationSchedule:
    """``generation_schedule`` of a generation row: its scheduler from the optional
    ``chunked_prefill`` and ``token_budget`` columns (absent: V0, whole prompts)."""
    chunked = getattr(row, "chunked_prefill", None)
    budget = getattr(row, "token_budget", None)
    return generation_schedule(
        model,
        int(row.batch),
        int(row.q_tokens),
        int(row.output_tokens),
        chunked_prefill=bool(chunked) if chunked is not None and pd.notna(chunked) else False,
        token_budget=int(budget) if budget is not None and pd.notna(budget) else None,
    )


def generation_features(rows: pd.DataFrame, models: Mapping[str, ModelSpec]) -> np.ndarray:
    """``GenerationSchedule.features`` of every row (one row of features each)."""
    features = []
    for row in rows.itertuples(index=False):
        model = models[str(row.model)]
        assert model.architecture is not None
        features.append(row_schedule(row, model).features(model.architecture.num_layers))
    return np.array(features, dtype=float).reshape(len(features), 5)
