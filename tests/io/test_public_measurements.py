"""The public measurement importers: shipped sets load with provenance, in SI units; a broken
set is a one-line error naming the file."""

import shutil
from pathlib import Path

import pandas as pd
import pytest

from hetsim.errors import CalibrationError
from hetsim.io.catalog import profiles_root
from hetsim.io.public_measurements import COLUMNS, load_public_measurements


@pytest.fixture(scope="module")
def rows() -> pd.DataFrame:
    return load_public_measurements()


def test_every_source_covers_its_devices_and_op_classes(rows):
    covered = rows.groupby("source")["device"].unique().map(set).to_dict()
    assert covered["aiconfigurator"] == {"a100-80gb-sxm", "h100-sxm", "h200-sxm", "l40s"}
    assert covered["vidur"] == {"a100-80gb-sxm", "h100-sxm", "a40"}
    assert covered["splitwise-sim"] == {"a100-80gb-sxm", "h100-sxm"}
    assert covered["llm-inference-bench"] == {"a100-40gb-sxm", "h100-sxm", "mi300x"}
    assert covered["rocm-vllm"] == {"mi300x"}
    classes = set(rows["op_class"])
    assert {"gemm", "attention_prefill", "attention_decode", "elementwise", "all_reduce"} <= classes
    assert {"prefill_step", "decode_step", "generation"} <= classes
    assert tuple(rows.columns) == COLUMNS


def test_times_are_seconds_and_every_row_names_its_file_and_stack(rows):
    generation = rows["op_class"] == "generation"
    assert (rows["measured_s"] > 0).all() and (rows.loc[~generation, "measured_s"] < 60).all()
    # a whole batch's generation: Llama-2-7B on one H100, batch 1, 128 tokens in and 128 out,
    # 0.93 s upstream (about 7 ms a token), not 930 "units"
    one = rows[generation & (rows.device == "h100-sxm") & (rows.model == "llama-2-7b") & (rows.tp == 1)
               & (rows.batch == 1) & (rows.q_tokens == 128)]  # fmt: skip
    assert len(one) == 1 and 0.5 < one["measured_s"].iloc[0] < 2.0 and one["output_tokens"].iloc[0] == 128
    # a 4096^3 bf16 GEMM on an H100 takes a fraction of a millisecond, not ~0.2 "units"
    big = rows[(rows.source == "aiconfigurator") & (rows.device == "h100-sxm") & (rows.op_class == "gemm")
               & (rows.m == 4096) & (rows.n == 4096) & (rows.k == 4096) & (rows.dtype == "bf16")]  # fmt: skip
    assert 1e-4 < big["measured_s"].iloc[0] < 1e-3
    assert rows["path"].str.len().gt(0).all() and rows["stack"].notna().all()
    for path in rows["path"].unique():
        assert (profiles_root() / "measurements" / "public" / path).is_file()


def test_splitwise_rows_beyond_one_iteration_or_the_context_are_left_out(rows):
    steps = rows[rows.source == "splitwise-sim"]
    assert (steps.loc[steps.op_class == "prefill_step", "q_tokens"] * steps["batch"]).max() <= 16384
    assert steps.loc[(steps.model == "bloom-176b") & (steps.op_class == "prefill_step"), "q_tokens"].max() <= 2048


def test_generation_rows_keep_only_catalogued_devices_and_models_once_each(rows):
    generations = rows[rows.source == "llm-inference-bench"]
    assert set(generations["model"]) <= {"llama-2-7b", "llama-3-8b", "llama-2-70b", "llama-3-70b", "mistral-7b", "mixtral-8x7b"}
    keys = ["device", "model", "tp", "batch", "q_tokens"]
    assert not generations.duplicated(keys).any()  # configurations run twice upstream: their median
    assert (generations["q_tokens"] == generations["output_tokens"]).all()
    assert generations["stack"].eq("vllm>=0.5.1,<0.6.3 (LLM-Inference-Bench)").all()


def test_amd_rocm_rows_name_each_engines_kv_cache_and_scheduler(rows):
    rocm = rows[rows.source == "rocm-vllm"]
    assert len(rocm) == 96 and set(rocm["model"]) == {"llama-3.1-70b", "llama-3.1-405b"} and (rocm["tp"] == 8).all()
    engines = rocm.groupby("stack")[["kv_dtype", "chunked_prefill", "token_budget"]].first()
    v0, v1 = engines.loc["vllm==0.8.5 rocm6.3.1 (AMD rocm/vllm-dev, V0)"], engines.loc["vllm==0.9.1 rocm6.4.1 (AMD rocm/vllm-dev, V1)"]
    assert v0["kv_dtype"] == "fp8" and not v0["chunked_prefill"] and pd.isna(v0["token_budget"])
    assert v1["kv_dtype"] == "fp16" and v1["chunked_prefill"] and v1["token_budget"] == 16384
    # the 0.6.6 table is in milliseconds upstream: 70B, batch 1, 128 + 2048 tokens took 19.09 s
    first = rocm[rocm["stack"].str.startswith("vllm==0.6.6") & (rocm.model == "llama-3.1-70b") & (rocm.batch == 1)
                 & (rocm.q_tokens == 128)]  # fmt: skip
    assert first["measured_s"].tolist() == [pytest.approx(19.0886)]


def test_an_unknown_rocm_engine_version_is_a_one_line_error(tmp_path):
    root = _copy_profiles(tmp_path)
    path = root / "measurements" / "public" / "rocm-vllm" / "mi300x_latency.csv"
    frame = pd.read_csv(path)
    frame.loc[0, "vllm_version"] = "0.99.0"
    frame.to_csv(path, index=False)
    with pytest.raises(CalibrationError, match=r"mi300x_latency.csv: expected vLLM versions 0.6.6, 0.8.5, 0.9.1.*found 0.99.0") as info:
        load_public_measurements(root, sources=("rocm-vllm",))
    assert "\n" not in str(info.value)


def _copy_profiles(tmp_path: Path) -> Path:
    root = tmp_path / "profiles"
    shutil.copytree(profiles_root() / "accelerators", root / "accelerators")
    shutil.copytree(profiles_root() / "measurements", root / "measurements")
    return root


def test_a_missing_column_names_the_file_and_the_columns(tmp_path):
    root = _copy_profiles(tmp_path)
    path = root / "measurements" / "public" / "splitwise-sim" / "perf_model.csv"
    frame = pd.read_csv(path).drop(columns=["token_time"])
    frame.to_csv(path, index=False)
    with pytest.raises(CalibrationError, match=r"perf_model.csv: expected columns token_time, found") as info:
        load_public_measurements(root, sources=("splitwise-sim",))
    assert "\n" not in str(info.value)


def test_an_unknown_source_or_a_missing_folder_is_refused(tmp_path):
    with pytest.raises(CalibrationError, match="expected some of aiconfigurator"):
        load_public_measurements(sources=("mlperf",))
    with pytest.raises(CalibrationError, match="expected the folder of public measurement sets"):
        load_public_measurements(tmp_path)
