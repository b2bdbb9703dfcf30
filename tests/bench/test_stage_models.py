"""Non-LLM stages as real torch networks (what ``hetsim run`` executes for STT, TTS, embed,
rerank and guardrail steps): built from the catalog's network shapes, scaled like the LLMs."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch", reason="needs the bench extra (torch)")

from hetsim.bench.stage_models import StageNetwork, StageWorker  # noqa: E402
from hetsim.io.models import load_models  # noqa: E402
from hetsim.perf.model_scale import SCALES, scaled_network  # noqa: E402


@pytest.fixture(scope="module")
def catalog():
    return load_models()


def test_every_non_llm_model_with_a_network_runs_scaled(catalog) -> None:
    networks = {name: scaled_network(m.network, SCALES["tiny"]) for name, m in catalog.models.items() if m.network}
    assert {"whisper-large-v3", "kokoro-82m", "bge-large-en-v1.5", "bge-reranker-large", "prompt-guard-86m"} <= set(networks)
    worker = StageWorker(networks)
    for name, network in networks.items():
        result = worker.run(name, 2.0)
        assert result["positions"] == pytest.approx(max(1, -(-2.0 * network.inputs_per_unit // 1)))
        assert result["seconds"] > 0


def test_speech_recognition_decodes_text_tokens_after_the_audio(catalog) -> None:
    network = StageNetwork.build(scaled_network(catalog.model("whisper-large-v3").network, SCALES["tiny"]))
    short, long = network.run(1.0), network.run(40.0)
    assert short["outputs"] == 4 and long["outputs"] == 132  # 3.3 tokens per second of speech
    assert long["positions"] == 2000  # 50 frames a second, in 1500-frame windows


def test_scaling_keeps_the_head_size_and_divides_width_and_depth(catalog) -> None:
    full = catalog.model("whisper-large-v3").network
    tiny = scaled_network(full, SCALES["tiny"])
    assert tiny.hidden_size // tiny.heads == full.hidden_size // full.heads
    assert (tiny.layers, tiny.decoder_layers) == (full.layers // 8, full.decoder_layers // 8)
    assert scaled_network(full, SCALES["full"]) is full
