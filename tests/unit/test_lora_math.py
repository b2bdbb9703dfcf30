"""LoRA adapter math (``hetsim.perf.lora``), the plan's ``lora`` block, the workload's adapter
spread and the trace's ``adapter`` field."""

import numpy as np
import pytest
from pydantic import ValidationError

from hetsim.errors import EstimateError
from hetsim.exec.engine import sglang_lora_arguments, to_argv, vllm_arguments
from hetsim.perf.lora import LoraKernels, adapter_bytes, adapter_parameters, slot_bytes_per_device
from hetsim.perf.roofline import DevicePerf
from hetsim.specs.hardware import DType
from hetsim.specs.plan import LoraModule, LoraServing, PoolSpec
from hetsim.specs.workload import AdapterSpread
from tests.conftest import make_device

QKVO = [LoraModule.Q_PROJ, LoraModule.K_PROJ, LoraModule.V_PROJ, LoraModule.O_PROJ]


def test_adapter_bytes_of_llama_3_8b_rank_16_on_qkvo_match_a_hand_computation(model_catalog):
    """Per layer: q 4096x16 + 16x4096, k and v 4096x16 + 16x1024 (8 KV heads of 128), o as q;
    32 layers, bf16."""
    arch = model_catalog.model("llama-3-8b").architecture
    per_layer = (4096 * 16 + 16 * 4096) * 2 + (4096 * 16 + 16 * 1024) * 2
    assert adapter_bytes(arch, 16, QKVO, DType.BF16) == per_layer * 32 * 2 == 27_262_976


def test_tensor_parallel_splits_b_of_column_and_a_of_row_parallel_modules(model_catalog):
    arch = model_catalog.model("llama-3-8b").architecture
    assert adapter_parameters(arch, 16, [LoraModule.Q_PROJ], tp=4) == (4096 * 16 + 16 * 1024) * 32
    assert adapter_parameters(arch, 16, [LoraModule.O_PROJ], tp=4) == (1024 * 16 + 16 * 4096) * 32
    assert adapter_parameters(arch, 16, QKVO, pp=2) * 2 == adapter_parameters(arch, 16, QKVO)


def test_slots_reserve_max_loras_adapters_of_max_rank(model_catalog):
    arch = model_catalog.model("llama-3-8b").architecture
    assert slot_bytes_per_device(arch, 4, 32, QKVO, DType.BF16) == 4 * adapter_bytes(arch, 32, QKVO, DType.BF16)


def test_latent_attention_and_expert_mlps_are_refused_naming_the_module(model_catalog):
    with pytest.raises(EstimateError, match="q_proj of latent attention"):
        adapter_bytes(model_catalog.model("deepseek-v3").architecture, 16, [LoraModule.Q_PROJ], DType.BF16)
    with pytest.raises(EstimateError, match="up_proj of an expert MLP"):
        adapter_bytes(model_catalog.model("mixtral-8x7b").architecture, 16, [LoraModule.UP_PROJ], DType.BF16)


def test_adapter_kernels_grow_with_tokens_and_adapters_and_cost_nothing_without_lora_tokens(model_catalog):
    kernels = LoraKernels(DevicePerf(make_device()), model_catalog.model("llama-3-8b").architecture, 16,
                          tuple(LoraModule), DType.BF16)  # fmt: skip
    assert kernels.step_s(0, 0) == 0.0
    assert 0 < kernels.step_s(8, 1) <= kernels.step_s(8, 4) <= kernels.step_s(8, 8)
    assert kernels.step_s(64, 4) < kernels.step_s(8192, 4)


@pytest.mark.parametrize(
    ("block", "message"),
    [
        ({"max_lora_rank": 24}, r"lora.max_lora_rank: expected one of \[1, 8, 16, .*\] \(vLLM's\), got 24"),
        ({"max_lora_rank": 8, "adapter_rank": 16}, r"lora.adapter_rank: expected at most max_lora_rank \(8\), got 16"),
        ({"max_loras": 4, "max_cpu_loras": 2}, r"lora.max_cpu_loras: expected at least max_loras \(4\), got 2"),
        ({"target_modules": ["q_proj", "q_proj"]}, r"lora.target_modules: expected each module once"),
        ({"host_link": "pcie5-x16", "load_gbytes_per_s": 20}, r"lora: expected host_link or load_gbytes_per_s, got both"),
        ({"target_modules": ["qkv"]}, r"target_modules.0\n.*Input should be 'q_proj'"),
        ({"max_loras": 0}, r"max_loras\n.*greater than or equal to 1"),
    ],
)
def test_a_bad_lora_block_is_refused_naming_the_field(block, message):
    with pytest.raises(ValidationError, match=message):
        LoraServing.model_validate(block)


def test_vllm_arguments_carry_the_lora_flags_and_sglang_its_own():
    pool = PoolSpec.model_validate({"name": "p", "device": "h100-sxm", "replicas": 1, "llm": {
        "model": "llama-3-8b", "lora": {"max_loras": 8, "max_lora_rank": 32, "max_cpu_loras": 64}}})  # fmt: skip
    argv = to_argv(vllm_arguments(pool, "m", False, "cuda", None))
    at = argv.index("--enable-lora")
    assert argv[at + 1:at + 7] == ["--max-loras", "8", "--max-lora-rank", "32", "--max-cpu-loras", "64"]
    assert sglang_lora_arguments(pool, ["a", "b"]) == [
        "--enable-lora", "--max-loras-per-batch", "8", "--max-lora-rank", "32", "--lora-paths", "a=adapters/a", "b=adapters/b"
    ]  # fmt: skip
    plain = pool.model_copy(update={"llm": pool.llm.model_copy(update={"lora": None})})
    assert "--enable-lora" not in to_argv(vllm_arguments(plain, "m", False, "cuda", None))


def test_zipf_spread_weights_fall_as_a_power_law_and_uniform_is_flat():
    zipf = AdapterSpread(count=4, popularity="zipf", zipf_s=1.0).weights()
    assert np.allclose(zipf, np.array([1, 1 / 2, 1 / 3, 1 / 4]) / (1 + 1 / 2 + 1 / 3 + 1 / 4))
    assert AdapterSpread(count=3).weights() == pytest.approx([1 / 3] * 3)
    assert AdapterSpread(count=12, prefix="t-").names()[:2] == ("t-00", "t-01")
    with pytest.raises(ValidationError, match=r"adapters.zipf_s: expected it exactly with popularity 'zipf'"):
        AdapterSpread(count=3, popularity="zipf")
