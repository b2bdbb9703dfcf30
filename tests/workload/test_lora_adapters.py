"""Workloads spread LLM calls over LoRA adapters (seeded); traces carry them and refuse bad ones."""

import pytest

from hetsim.errors import WorkloadError
from hetsim.io.traces import read_trace, read_trace_frame, write_trace
from hetsim.io.workloads import load_workload
from hetsim.workload.synth import synthesize
from hetsim.workload.trace import NodeType, TraceMeta, TraceStep
from tests.workload.workload_builders import one_step_trace

WORKLOAD = "workloads/multi-lora-chat.yaml"


def test_sessions_draw_seeded_adapters_with_zipf_popularity():
    spec = load_workload(WORKLOAD)
    first, again = synthesize(spec, 600.0, seed=3), synthesize(spec, 600.0, seed=3)
    adapters = [step.adapter for step in first.steps]
    assert adapters == [step.adapter for step in again.steps]
    counts = {name: adapters.count(name) for name in set(adapters)}
    assert counts["tenant-00"] > counts.get("tenant-50", 0)
    assert all(name.startswith("tenant-") for name in counts) and len(counts) > 30


def test_the_adapter_survives_jsonl_and_parquet(tmp_path):
    steps = [TraceStep("s", 0, 0.0, "chat", NodeType.LLM, model="llama-3-8b", input_tokens=5, output_tokens=5,
                       adapter="tenant-07")]  # fmt: skip
    meta = TraceMeta(source="test", format="canonical")
    for name in ("t.jsonl", "t.parquet"):
        write_trace(tmp_path / name, steps, meta)
        assert read_trace(tmp_path / name)[0][0].adapter == "tenant-07"
        assert read_trace_frame(tmp_path / name)[0]["adapter"].tolist() == ["tenant-07"]


@pytest.mark.parametrize(
    ("step", "message"),
    [
        ({"node_type": "tool", "adapter": "a"}, r"line 2: .* field 'adapter' must be a non-empty adapter name on an llm step, got 'a' on a tool step"),
        ({"node_type": "llm", "adapter": 7}, r"t.jsonl: line 2: expected a trace step object; field 'adapter' must be str or null, got 7"),
    ],
)
def test_a_bad_adapter_in_a_trace_is_a_one_line_error_naming_file_and_field(tmp_path, step, message):
    with pytest.raises(WorkloadError, match=message):
        read_trace(one_step_trace(tmp_path, **step))
