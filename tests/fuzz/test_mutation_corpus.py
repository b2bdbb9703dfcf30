"""The mutation corpus (issue 18 item 2): at least 1,000 typed mutations of the shipped YAML and
of every trace format, each run through the commands a user would run on it, all clean: a valid
result with exit 0, or one line naming the file with exit 1; never a traceback, never over 10 s
of CPU or 1 GiB. The fast tests below check that the corpus's judge would see each kind of
failure."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from corpus import LIMIT_BYTES, LIMIT_S, classify
from mutations import TREE_OPERATOR_NAMES, mutate_tree, paths
from targets import Command, Mutation

CORPUS = Path(__file__).resolve().parent / "corpus.py"
GROUPS = {"accelerator", "node", "link", "model", "workload", "fleet", "comparison", "scenario", "plan", "calibration", "trace"}
TRACE_FORMATS = {"canonical-jsonl", "canonical-parquet", "azure-2023", "mooncake", "tracelab", "lmcache", "trtllm"}


@pytest.mark.slow
def test_every_mutation_is_refused_in_one_line_or_accepted_with_a_valid_result(tmp_path):
    done = subprocess.run([sys.executable, str(CORPUS), "--root", str(tmp_path / "corpus"), "--json"],
                          capture_output=True, text=True, timeout=3600, check=False)  # fmt: skip
    tally = json.loads(done.stdout)
    failures = "\n".join(f"{f['mutation']}: {f['reason']} | {f.get('message', '')[:200]}" for f in tally["failure_list"][:40])
    assert tally["failures"] == 0, f"{tally['failures']} of {tally['mutations']} mutations failed:\n{failures}"
    assert done.returncode == 0, done.stderr[-2000:]
    assert tally["mutations"] >= 1000 and tally["clean_refusals"] + tally["valid_acceptances"] == tally["mutations"]
    assert set(tally["targets"]) == GROUPS
    assert {t.split(":")[1] for t in tally["by_target"] if t.startswith("trace:")} == TRACE_FORMATS
    assert tally["slowest"]["cpu_s"] <= LIMIT_S and tally["peak_memory_mib"]["mib"] <= LIMIT_BYTES / 2**20


# ---- the judge --------------------------------------------------------------------------------------

MUTATION = Mutation("00001-fleet-nan", "fleet", "nan", "demand.0.rate_per_s", "/tmp/x/fleet.yaml", "/tmp/x/run",
                    (Command(("plan", "--fleet", "/tmp/x/fleet.yaml", "--json")),), must_refuse=True, names=("default",))  # fmt: skip


def _judge(
    code: int = 1, out: str = "", err: str = "", mode: str = "json", cpu: float = 0.5, rss: int = 2**27, mutation: Mutation = MUTATION
) -> tuple[str, str]:
    verdict, reason, _ = classify(mutation, mode, code, cpu, rss, out, err)
    return verdict, reason


def test_a_one_line_error_naming_the_file_is_a_clean_refusal():
    assert _judge(err="hetsim: error: /tmp/x/fleet.yaml: field 'demand.0.rate_per_s': Input should be a finite number\n") == ("refused", "")


@pytest.mark.parametrize(("code", "err", "reason"), [
    (1, "Traceback (most recent call last):\n  File ...\nValueError: x\n", "traceback"),
    (1, "hetsim: error: fleet.yaml: bad\n  in <unicode string>\n", "exit 1 with 2 lines"),
    (1, "hetsim: error: something went wrong\n", "the error does not name the file"),
    (2, "Usage: hetsim ...\n", "exit 2"),
    (-24, "", "over 10 s of CPU"),
])  # fmt: skip
def test_a_traceback_a_dump_an_unnamed_error_or_a_kill_is_a_failure(code, err, reason):
    verdict, found = _judge(code=code, err=err)
    assert verdict == "failure" and reason in found


def test_over_the_time_or_memory_limit_is_a_failure_even_when_refused():
    assert _judge(err="hetsim: error: fleet.yaml: x\n", cpu=LIMIT_S + 0.5)[1].startswith("took")
    assert _judge(err="hetsim: error: fleet.yaml: x\n", rss=LIMIT_BYTES + 1)[1].startswith("peak memory")


def test_accepting_a_value_no_input_may_hold_or_printing_a_negative_or_nan_is_a_failure():
    assert _judge(code=0, out="{}") == ("failure", "accepted a value no input may hold")
    lenient = Mutation(**{**MUTATION.__dict__, "must_refuse": False})
    assert _judge(code=0, out='{"cost": {"usd_per_million_tokens": -0.5}}', mutation=lenient)[1].startswith("negative value -0.5")
    assert _judge(code=0, out='{"tco_difference_usd_per_h": -2}', mutation=lenient) == ("accepted", "")
    assert _judge(code=0, out="│ TTFT │ nan ms │", mode="table", mutation=lenient)[1].startswith("printed 'nan'")
    assert _judge(code=0, out="│ inference │ n/a │", mode="table", mutation=lenient) == ("accepted", "")


def test_a_tree_mutation_is_deterministic_in_the_seed_and_fits_the_node_type():
    import random

    document = {"name": "x", "count": 3, "items": [1, 2], "nested": {"rate": 2.5}}
    for operator in TREE_OPERATOR_NAMES:
        first, second = json.loads(json.dumps(document)), json.loads(json.dumps(document))
        assert mutate_tree(first, operator, random.Random(7), "t") == mutate_tree(second, operator, random.Random(7), "t")
        assert repr(first) == repr(second)
    numeric = json.loads(json.dumps(document))
    applied = mutate_tree(numeric, "negative", random.Random(1), "t")
    assert applied is not None and applied.where in {".".join(map(str, p)) for p in paths(document)}
