"""Calls carry their speculative drafts' acceptance rate: from a workload node, a trace's column
or field; traces keep it and refuse a bad one; the planner's demand weighs it by output tokens."""

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml

from hetsim.errors import WorkloadError
from hetsim.io.traces import read_trace, read_trace_frame, write_trace
from hetsim.io.workloads import load_workload
from hetsim.workload.demand import node_demand
from hetsim.workload.frame import steps_to_frame
from hetsim.workload.synth import synthesize
from hetsim.workload.trace import NodeType, TraceMeta, TraceStep
from tests.conftest import REPO
from tests.workload.workload_builders import one_step_trace


def _chat_with_rate(folder, rate):
    spec = yaml.safe_load((REPO / "workloads/chat.yaml").read_text())
    spec["nodes"]["answer"]["acceptance_rate"] = rate
    path = folder / "chat.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


def test_a_workload_nodes_rate_is_every_call_of_it(tmp_path):
    trace = synthesize(load_workload(_chat_with_rate(tmp_path, 0.72)), 60.0, seed=1)
    assert trace.steps and {step.acceptance_rate for step in trace.steps} == {0.72}
    plain = synthesize(load_workload(REPO / "workloads/chat.yaml"), 60.0, seed=1)
    assert {step.acceptance_rate for step in plain.steps} == {None}
    # the rate draws nothing: the same calls otherwise
    assert [s.output_tokens for s in trace.steps] == [s.output_tokens for s in plain.steps]


def test_a_workload_rate_outside_zero_to_one_is_refused_naming_the_field(tmp_path):
    with pytest.raises(WorkloadError, match=r"acceptance_rate.*less than or equal to 1"):
        load_workload(_chat_with_rate(tmp_path, 1.2))


def test_the_rate_survives_jsonl_and_parquet(tmp_path):
    steps = [TraceStep("s", 0, 0.0, "chat", NodeType.LLM, model="llama-3-8b", input_tokens=5, output_tokens=5,
                       acceptance_rate=0.61),
             TraceStep("s", 1, 0.0, "chat", NodeType.LLM, model="llama-3-8b", input_tokens=5, output_tokens=5)]  # fmt: skip
    meta = TraceMeta(source="test", format="canonical")
    for name in ("t.jsonl", "t.parquet"):
        write_trace(tmp_path / name, steps, meta)
        assert [s.acceptance_rate for s in read_trace(tmp_path / name)[0]] == [0.61, None]
        frame = read_trace_frame(tmp_path / name)[0]
        assert frame["acceptance_rate"].iloc[0] == 0.61 and np.isnan(frame["acceptance_rate"].iloc[1])


def test_a_parquet_trace_written_before_the_column_reads_as_no_rates(tmp_path):
    steps = [TraceStep("s", 0, 0.0, "chat", NodeType.LLM, model="llama-3-8b", input_tokens=5, output_tokens=5)]
    write_trace(tmp_path / "t.parquet", steps, TraceMeta(source="test", format="canonical"))
    table = pq.read_table(tmp_path / "t.parquet")
    older = table.drop_columns(["acceptance_rate", "adapter"]).replace_schema_metadata(table.schema.metadata)
    pq.write_table(older, tmp_path / "old.parquet")
    frame = read_trace_frame(tmp_path / "old.parquet")[0]
    assert frame["acceptance_rate"].isna().all() and frame["adapter"].isna().all()
    assert pa.types.is_float64(pa.Table.from_pandas(frame).schema.field("acceptance_rate").type)


@pytest.mark.parametrize(
    ("step", "message"),
    [
        ({"node_type": "llm", "acceptance_rate": 1.5}, r"t.jsonl: line 2: .*'acceptance_rate' must be a number in \[0, 1\] on an llm step, got 1.5"),
        ({"node_type": "tool", "acceptance_rate": 0.5}, r"field 'acceptance_rate' must be a number in \[0, 1\] on an llm step, got 0.5 on a tool step"),
        ({"node_type": "llm", "acceptance_rate": "high"}, r"field 'acceptance_rate' must be int or float or null, got 'high'"),
        ({"node_type": "llm", "acceptance_rate": float("nan")}, r"NaN is not a JSON number"),
    ],
)
def test_a_bad_rate_in_a_trace_is_a_one_line_error_naming_file_and_field(tmp_path, step, message):
    with pytest.raises(WorkloadError, match=message):
        read_trace(one_step_trace(tmp_path, **step))


def test_the_demand_weighs_each_rate_by_the_output_tokens_decoded_at_it():
    def call(i, output, rate):
        return TraceStep(f"s{i}", 0, 0.0, "chat", NodeType.LLM, model="llama-3-8b", input_tokens=10,
                         output_tokens=output, acceptance_rate=rate)  # fmt: skip

    frame = steps_to_frame([call(0, 100, 0.8), call(1, 300, 0.4), call(2, 100, None), call(3, 500, 0.8)])
    (demand,) = node_demand(frame)
    assert demand.acceptance_rates == ((0.4, pytest.approx(0.3)), (0.8, pytest.approx(0.6)))
    (none,) = node_demand(steps_to_frame([call(0, 100, None)]))
    assert none.acceptance_rates == ()
