"""LoRA adapters on a served base model: their bytes, their GPU slots, and their kernels' time.

A LoRA adapter adds ``B A x`` to a linear module ``W x`` (Hu et al., LoRA, arXiv 2106.09685):
``A`` is (rank x in), ``B`` is (out x rank), per target module per layer. Serving many
adapters of one base model batches their tokens together and runs the adapters apart as two
small grouped GEMMs per module, "shrink" (tokens x in) @ (in x rank) and "expand"
(tokens x rank) @ (rank x out), one group per distinct adapter in the batch: Punica's SGMV
kernel (Chen et al., Punica: Multi-Tenant LoRA Serving, arXiv 2310.18547) and S-LoRA's
(Sheng et al., S-LoRA: Serving Thousands of Concurrent LoRA Adapters, arXiv 2311.03285),
which vLLM runs (``vllm/lora/ops``). They are priced here by the kernel model's grouped GEMM
(``DevicePerf.gemm_times``): each adapter's weights are read once per step, every LoRA
token's activations in and out.

Tensor parallelism shards them as vLLM does (``vllm/lora/layers``): a column-parallel module
(q, k, v, gate, up) keeps ``A`` whole and splits ``B``'s output rows; a row-parallel one (o,
down) splits ``A``'s input columns and keeps ``B`` whole (the rank-wide partial sums are
all-reduced, a few KB per token, not priced). vLLM reserves ``max_loras`` slots of
``max_lora_rank`` for every wrapped module at start (``LoRAModelManager``), so the slots come
out of the KV cache; a smaller adapter is padded to the slot's rank, so the kernels run at
``max_lora_rank`` whatever the adapter's own.

Only dense projections are adapted: the q/k/v/o of grouped-query attention and a dense MLP's
gate/up/down. Latent attention (MLA) and expert MLPs have other shapes; asking for them is an
error that says so.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np

from hetsim.errors import EstimateError
from hetsim.perf.roofline import DevicePerf
from hetsim.specs.hardware import DType
from hetsim.specs.model import ArchitectureSpec, AttentionKind
from hetsim.specs.plan import LoraModule

_COLUMN_PARALLEL = frozenset({LoraModule.Q_PROJ, LoraModule.K_PROJ, LoraModule.V_PROJ, LoraModule.GATE_PROJ,
                              LoraModule.UP_PROJ})  # fmt: skip
_ATTENTION = frozenset({LoraModule.Q_PROJ, LoraModule.K_PROJ, LoraModule.V_PROJ, LoraModule.O_PROJ})


def module_shape(arch: ArchitectureSpec, module: LoraModule) -> tuple[int, int]:
    """(in features, out features) of ``module`` in one layer of ``arch``.

    Raises:
        EstimateError: the module is not a dense projection of this architecture.
    """
    if module in _ATTENTION and arch.attention == AttentionKind.MLA:
        raise EstimateError(f"lora.target_modules: {module.value} of latent attention (MLA) is not modelled; "
                            "adapt the MLP of a dense model, or a grouped-query model")  # fmt: skip
    if module not in _ATTENTION and arch.moe is not None:
        raise EstimateError(f"lora.target_modules: {module.value} of an expert MLP (MoE) is not modelled; target "
                            "q_proj, k_proj, v_proj, o_proj")  # fmt: skip
    if module not in _ATTENTION and not arch.gated_mlp and module == LoraModule.GATE_PROJ:
        raise EstimateError("lora.target_modules: gate_proj: expected a gated MLP, the model's MLP has no gate")
    hidden, q_width = arch.hidden_size, arch.num_attention_heads * arch.head_dim
    kv_width = arch.num_kv_heads * arch.head_dim
    shapes = {
        LoraModule.Q_PROJ: (hidden, q_width),
        LoraModule.K_PROJ: (hidden, kv_width),
        LoraModule.V_PROJ: (hidden, kv_width),
        LoraModule.O_PROJ: (q_width, hidden),
        LoraModule.GATE_PROJ: (hidden, arch.intermediate_size),
        LoraModule.UP_PROJ: (hidden, arch.intermediate_size),
        LoraModule.DOWN_PROJ: (arch.intermediate_size, hidden),
    }
    return shapes[module]


def sharded_shape(arch: ArchitectureSpec, module: LoraModule, tp: int) -> tuple[int, int]:
    """(in, out) of ``module``'s adapter on one of ``tp`` devices (see the module docstring)."""
    width_in, width_out = module_shape(arch, module)
    if module in _COLUMN_PARALLEL:
        return width_in, math.ceil(width_out / tp)
    return math.ceil(width_in / tp), width_out


def adapter_parameters(
    arch: ArchitectureSpec, rank: int, modules: Iterable[LoraModule], tp: int = 1, pp: int = 1
) -> int:
    """Parameters of one adapter of ``rank`` on ``modules`` on one device of a ``tp`` x ``pp``
    replica (its stage's layers): ``rank * (in + out)`` per module per layer."""
    if rank < 1:
        raise EstimateError(f"lora rank: expected >= 1, got {rank}")
    per_layer = 0
    for module in modules:
        width_in, width_out = sharded_shape(arch, module, tp)
        per_layer += rank * (width_in + width_out)
    return per_layer * math.ceil(arch.num_layers / pp)


def adapter_bytes(
    arch: ArchitectureSpec, rank: int, modules: Iterable[LoraModule], dtype: DType, tp: int = 1, pp: int = 1
) -> float:
    """Bytes of one adapter on one device of a ``tp`` x ``pp`` replica: what loading it moves
    over that device's host link (every device loads its share at once)."""
    return adapter_parameters(arch, rank, modules, tp, pp) * DType(dtype).bytes_per_element


def slot_bytes_per_device(
    arch: ArchitectureSpec, max_loras: int, max_lora_rank: int, modules: Iterable[LoraModule], dtype: DType,
    tp: int = 1, pp: int = 1,
) -> float:
    """Device memory vLLM reserves for the adapter slots: ``max_loras`` adapters of
    ``max_lora_rank`` (taken from the KV cache's room)."""
    return max_loras * adapter_bytes(arch, max_lora_rank, modules, dtype, tp, pp)


@dataclass
class LoraKernels:
    """The adapter kernels of one replica's step: ``step_s(tokens, adapters)`` prices the
    shrink and expand grouped GEMMs of every target module of every layer of a stage, times
    the pipeline's stages (as a step's other parts are), for ``tokens`` LoRA tokens of
    ``adapters`` distinct adapters; cached, since a run sees few distinct pairs."""

    perf: DevicePerf
    arch: ArchitectureSpec
    rank: int
    modules: tuple[LoraModule, ...]
    dtype: DType
    tp: int = 1
    pp: int = 1
    _cache: dict[tuple[int, int], float] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        self._shapes = [sharded_shape(self.arch, module, self.tp) for module in self.modules]
        self._layers_per_stage = math.ceil(self.arch.num_layers / self.pp)

    def step_s(self, tokens: int, adapters: int) -> float:
        """Seconds the adapter kernels add to a step (0 without LoRA tokens)."""
        if tokens <= 0 or adapters <= 0:
            return 0.0
        key = (tokens, adapters)
        seconds = self._cache.get(key)
        if seconds is None:
            seconds = self._cache[key] = self._price(tokens, adapters)
        return seconds

    def _price(self, tokens: int, adapters: int) -> float:
        """Shrink: (m x in) @ (in x r) per adapter group; expand: (m x r) @ (r x out), adding into
        the base output (read and written); m = tokens / adapters rows per group. Every module
        at once (one vectorised call per kernel)."""
        groups = min(adapters, tokens)
        rows = math.ceil(tokens / groups)
        element, rank = self.dtype.bytes_per_element, self.rank
        width_in = np.array([shape[0] for shape in self._shapes], dtype=float)
        width_out = np.array([shape[1] for shape in self._shapes], dtype=float)
        shrink_bytes = (tokens * width_in + groups * width_in * rank + tokens * rank) * element
        expand_bytes = (tokens * rank + groups * rank * width_out + 2 * tokens * width_out) * element
        shrink = self.perf.gemm_times(rows, rank, width_in, self.dtype, shrink_bytes, 1, groups)
        expand = self.perf.gemm_times(rows, width_out, rank, self.dtype, expand_bytes, 1, groups)
        return float(np.sum(shrink) + np.sum(expand)) * self._layers_per_stage * self.pp
