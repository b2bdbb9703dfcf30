"""Results in the field's formats: a per-request CSV and vLLM's Prometheus metrics, which a
real engine's dashboard reads unchanged (parsed here with prometheus_client, as Prometheus would)."""

import numpy as np
import pandas as pd
import pytest

from hetsim.metrics.prometheus import METRIC_MAP, TIME_TO_FIRST_TOKEN_BUCKETS, exposition, requests_table

parser = pytest.importorskip("prometheus_client.parser", reason="the exec extra (prometheus_client) is not installed")


def _calls() -> pd.DataFrame:
    rng = np.random.default_rng(5)
    n = 40
    arrival = np.sort(rng.uniform(0, 10, n))
    admitted = arrival + rng.uniform(0, 0.2, n)
    first = admitted + rng.uniform(0.01, 0.3, n)
    output = rng.integers(1, 300, n)
    done = first + (output - 1) * 0.02
    return pd.DataFrame({
        "session_id": [f"s{i}" for i in range(n)], "step_id": ["0"] * n,
        "model": ["llama-3-8b"] * 30 + ["llama-3.1-70b"] * 10, "pool": ["a"] * 30 + ["b"] * 10,
        "replica": 0, "decode_pool": "", "decode_replica": -1, "arrival_s": arrival, "admitted_s": admitted,
        "first_token_s": first, "done_s": done, "input_tokens": rng.integers(10, 4000, n), "cached_tokens": 0,
        "output_tokens": output, "preemptions": rng.integers(0, 3, n), "kv_transfer_s": 0.0, "kv_wait_s": 0.0,
        "tbt_max_s": 0.03, "status": ["completed"] * 38 + ["dropped"] * 2, "reason": [""] * 38 + ["too long"] * 2,
    })  # fmt: skip


def _families(text: str) -> dict:
    return {f.name: f for f in parser.text_string_to_metric_families(text)}


def test_the_exposition_parses_and_uses_vllms_names_types_and_labels():
    families = _families(exposition(_calls(), pd.DataFrame({"pool": ["a", "a", "b"], "gap_s": [0.02, 0.5, 0.03],
                                                             "count": [10, 1, 4]})))  # fmt: skip
    for name, (kind, _) in METRIC_MAP.items():
        assert name in families and families[name].type == kind, name
    ttft = families["vllm:time_to_first_token_seconds"]
    labels = {tuple(sorted(s.labels.items())) for s in ttft.samples if s.name.endswith("_count")}
    assert labels == {(("engine", "a"), ("model_name", "llama-3-8b")), (("engine", "b"), ("model_name", "llama-3.1-70b"))}


def test_histograms_count_the_completed_requests_cumulatively_and_sum_their_values():
    calls = _calls()
    families = _families(exposition(calls))
    done = calls[calls.status == "completed"]
    samples = families["vllm:time_to_first_token_seconds"].samples
    for pool, frame in done.groupby("pool"):
        ttft = (frame.first_token_s - frame.arrival_s).to_numpy()
        mine = [s for s in samples if s.labels.get("engine") == pool]
        buckets = [s for s in mine if s.name.endswith("_bucket")]
        counts = [s.value for s in buckets]
        assert counts == sorted(counts) and counts[-1] == len(frame)  # cumulative, +Inf holds all
        for s in buckets[:-1]:
            assert s.value == (ttft <= float(s.labels["le"])).sum()
        assert len(buckets) == len(TIME_TO_FIRST_TOKEN_BUCKETS) + 1
        assert next(s.value for s in mine if s.name.endswith("_sum")) == pytest.approx(ttft.sum())
    tokens = families["vllm:generation_tokens"].samples
    assert sum(s.value for s in tokens) == done.output_tokens.sum()
    assert sum(s.value for s in families["vllm:request_success"].samples) == len(done)


def test_the_request_table_has_every_call_with_its_latencies_and_status():
    calls = _calls()
    table = requests_table(calls)
    assert len(table) == len(calls) and set(table.status) == {"completed", "dropped"}
    assert table.request_id.is_unique
    np.testing.assert_allclose(table.ttft_s, calls.first_token_s - calls.arrival_s)
    assert table.loc[calls.output_tokens <= 1, "tbt_mean_s"].isna().all()


def test_simulate_out_writes_the_request_csv_and_the_metrics_page(tmp_path):
    from hetsim.api.simulate import SimulateRequest, simulate

    root = __import__("pathlib").Path(__file__).resolve().parents[2]
    summary = simulate(SimulateRequest(root / "scenarios" / "azure-conv-h100.yaml", out=tmp_path / "out"))
    requests = pd.read_csv(tmp_path / "out" / "requests.csv")
    assert len(requests) == summary["llm_calls"]["count"] - summary["llm_calls"]["unfinished"]
    families = _families((tmp_path / "out" / "metrics.prom").read_text())
    count = sum(s.value for s in families["vllm:e2e_request_latency_seconds"].samples if s.name.endswith("_count"))
    assert count == summary["llm_calls"]["completed"]


def test_an_executed_runs_token_arrivals_give_its_inter_token_histogram_per_pool():
    # hetsim run records token arrival times ('tokens'), not token_gaps rows: the gaps are derived
    # and each is put on the pool that decoded its call (here a decode pool for one of them)
    from hetsim.metrics.gaps import gap_frame

    calls = _calls().head(2).assign(decode_pool=["", "dec"])
    tokens = pd.DataFrame({"session_id": ["s0", "s0", "s0", "s1", "s1"], "step_id": ["0"] * 5, "index": [0, 1, 2, 0, 1],
                           "time_s": [1.0, 1.02, 1.05, 2.0, 2.04]})  # fmt: skip
    gaps = gap_frame({"tokens": tokens, "llm_calls": calls})
    assert sorted(zip(gaps["pool"], gaps["gap_s"].round(6), strict=True)) == [("a", 0.02), ("a", 0.03), ("dec", 0.04)]
    families = _families(exposition(calls, gaps))
    counts = {s.labels["engine"]: s.value for s in families["vllm:inter_token_latency_seconds"].samples
              if s.name.endswith("_count")}  # fmt: skip
    assert counts == {"a": 2.0, "dec": 1.0}
