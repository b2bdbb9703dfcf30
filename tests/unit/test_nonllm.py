import pytest

from hetsim.errors import EstimateError
from hetsim.perf.kernels import DEFAULT_KERNELS
from hetsim.perf.nonllm import IndexKind, VectorIndex, cpu_tool_time, model_time, model_work, vector_search_time
from hetsim.perf.roofline import Bound, DevicePerf
from hetsim.specs.hardware import DType
from tests.conftest import make_device


def test_stt_work_scales_with_audio_seconds(model_catalog):
    whisper = model_catalog.model("whisper-large-v3")
    ten = model_work(whisper, 10.0)
    assert ten.flops == pytest.approx(10 * 8.2e10)
    assert ten.bytes == pytest.approx(1.55e9 * 2 * 1.94 * 10 + 1.64e7 * 10)


def test_batching_shares_weight_reads(model_catalog):
    embed = model_catalog.model("bge-large-en-v1.5")
    alone = model_work(embed, 512, concurrency=1)
    shared = model_work(embed, 512, concurrency=16)
    assert shared.flops == alone.flops and shared.bytes < alone.bytes


def test_cpu_is_slower_than_gpu_for_the_same_model(model_catalog):
    whisper = model_catalog.model("whisper-large-v3")
    gpu = DevicePerf(make_device(bf16_tflops=1000, bandwidth_tbs=3))
    cpu = DevicePerf(make_device(bf16_tflops=50, bandwidth_tbs=0.3))
    assert model_time(cpu, whisper, 5).seconds > model_time(gpu, whisper, 5).seconds


def test_llm_is_refused(model_catalog):
    with pytest.raises(EstimateError, match="is an LLM"):
        model_work(model_catalog.model("llama-3-8b"), 10)


def test_flat_search_is_memory_bound_over_the_index():
    index = VectorIndex(vectors=10_000_000, dimension=768, dtype=DType.FP16)
    estimate = vector_search_time(DevicePerf(make_device(bandwidth_tbs=1.0)), index)
    assert estimate.bound == Bound.MEMORY
    elementwise = DEFAULT_KERNELS.elementwise  # a scan streams the index like an element-wise kernel
    assert estimate.seconds == pytest.approx(10_000_000 * 768 * 2 / (1e12 * elementwise.memory_efficiency) + elementwise.floor_s)


def test_ivf_and_hnsw_visit_fewer_vectors_than_flat():
    flat = VectorIndex(1_000_000, 768)
    ivf = VectorIndex(1_000_000, 768, kind=IndexKind.IVF)
    hnsw = VectorIndex(1_000_000, 768, kind=IndexKind.HNSW)
    assert hnsw.visited_vectors() < ivf.visited_vectors() < flat.visited_vectors()


def test_index_that_does_not_fit_is_an_error():
    with pytest.raises(EstimateError, match="does not fit"):
        vector_search_time(DevicePerf(make_device(memory_gb=16)), VectorIndex(100_000_000, 1024))


def test_cpu_tool_time():
    assert cpu_tool_time(2.0, cores=4) == 0.5
    with pytest.raises(EstimateError):
        cpu_tool_time(-1)
