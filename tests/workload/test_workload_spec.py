"""Workload specs: the shipped library validates, and every bad input gets its one-line error."""

from __future__ import annotations

import copy
import math
from typing import Any

import pytest
from pydantic import ValidationError
from workload_builders import CATALOG_MODELS, agent_loop

from hetsim.api.workloads import known_models
from hetsim.errors import WorkloadError
from hetsim.io.workloads import find_workload, list_workload_files, load_workload
from hetsim.specs.distribution import EmpiricalDist, GammaDist, LognormalDist, NormalDist
from hetsim.specs.workload import WorkloadSpec

SHIPPED = [path.stem for path in list_workload_files()]
REQUIRED = {"voice-agent", "rag-chatbot", "react-tool-agent", "swe-coding-agent", "deep-research"}


def test_library_has_the_required_workloads() -> None:
    assert set(SHIPPED) >= REQUIRED


@pytest.mark.parametrize("name", SHIPPED)
def test_every_shipped_workload_validates_against_the_catalog(name: str) -> None:
    spec = load_workload(name, known_models())
    assert spec.name == name
    assert set(spec.models) <= CATALOG_MODELS


@pytest.mark.parametrize("name", SHIPPED)
def test_every_shipped_workload_cites_its_numbers(name: str) -> None:
    spec = load_workload(name)
    assert spec.sources, "a workload states where its numbers come from"
    for path, dist in spec.iter_distributions():
        assert dist.source, f"{name}: {path} has no source"


def test_voice_agent_is_the_papers() -> None:
    spec = load_workload("voice-agent")
    assert [n.type for n in spec.nodes.values()] == ["stt", "llm", "tool", "tts"]
    assert spec.nodes["agent"].model == "llama-3-8b"
    assert spec.nodes["search"].external
    assert (spec.nodes["agent"].prompt_tokens.mean, spec.nodes["agent"].output_tokens.mean) == (512, 4096)
    assert (spec.sla.ttft_s, spec.sla.tbt_s) == (0.25, 0.02)


def test_a_workload_is_found_by_name_or_path() -> None:
    path = find_workload("rag-chatbot")
    assert find_workload(path) == path


def test_an_unknown_workload_name_lists_the_shipped_ones() -> None:
    with pytest.raises(WorkloadError, match=r"unknown workload 'nope'; expected a YAML file or one of: .*voice-agent"):
        find_workload("nope")


def test_a_spec_is_frozen() -> None:
    spec = WorkloadSpec.model_validate(agent_loop())
    with pytest.raises(ValidationError):
        spec.name = "other"  # type: ignore[misc]


def test_a_bare_number_is_a_constant_distribution() -> None:
    spec = WorkloadSpec.model_validate(agent_loop())
    assert spec.nodes["tts"].output_characters.dist == "constant"
    assert spec.nodes["tts"].output_characters.mean == 800


def _with(edit: Any) -> dict[str, Any]:
    data = copy.deepcopy(agent_loop())
    edit(data)
    return data


BAD_INPUTS = {
    "edge to an unknown node": (
        lambda d: d["edges"][1].update(to="serch"),
        r"field 'edges\.1\.to': expected one of the nodes \(agent, search, stt, tts\), got unknown node 'serch'$",
    ),
    "edge from an unknown node": (
        lambda d: d["edges"][2].update({"from": "web"}),
        r"field 'edges\.2\.from': expected one of the nodes .*, got unknown node 'web'$",
    ),
    "probabilities not summing to 1": (
        lambda d: d["edges"].extend([{"from": "tts", "to": "stt", "probability": 0.5}]),
        r"field 'edges\.4\.probability': expected the outgoing probabilities of node 'tts' to sum to 1 "
        r"\(within 1e-09\), got 0\.5$",
    ),
    "probabilities off by more than 1e-9": (
        lambda d: (
            d["nodes"].update(done={"type": "tool", "latency_s": 0}),
            d["edges"].__setitem__(3, {"from": "agent", "to": "tts", "probability": 0.7}),
            d["edges"].append({"from": "agent", "to": "done", "probability": 0.3 + 1e-8}),
        ),
        r"field 'edges\.3\.probability': expected the outgoing probabilities of node 'agent' to sum to 1 "
        r"\(within 1e-09\), got 1\.00000001$",
    ),
    "missing probability among several edges": (
        lambda d: (
            d["nodes"].update(done={"type": "tool", "latency_s": 0}),
            d["edges"].append({"from": "agent", "to": "done", "probability": 0.5}),
        ),
        r"field 'edges\.3\.probability': expected a probability on each of the 2 outgoing edges of node 'agent', "
        r"got none$",
    ),
    "negative duration": (
        lambda d: d["nodes"]["search"].update(latency_s={"dist": "constant", "value": -1}),
        r"field 'nodes\.search\.latency_s\.value': expected a number >= 0 \(durations, token counts and sizes "
        r"cannot be negative\), got -1\.0",
    ),
    "negative duration as a bare number": (
        lambda d: d["nodes"]["search"].update(latency_s=-0.5),
        r"field 'nodes\.search\.latency_s\.value': expected a number >= 0 .*got -0\.5",
    ),
    "negative uniform bound": (
        lambda d: d["nodes"]["search"].update(latency_s={"dist": "uniform", "low": -1, "high": 2}),
        r"field 'nodes\.search\.latency_s\.low': expected a number >= 0",
    ),
    "negative empirical value": (
        lambda d: d["nodes"]["stt"].update(audio_s={"dist": "empirical", "values": [1, -3]}),
        r"field 'nodes\.stt\.audio_s\.values': expected a number >= 0 .*got -3\.0",
    ),
    "unbounded cycle": (
        lambda d: (
            d["edges"][1].pop("loop"),
            d["edges"][1].update(probability=0.5),
            d["edges"][3].update(probability=0.5),
        ),
        r"field 'edges': expected every cycle to hold a loop edge \(loop: \{iterations: \.\.\., max_iterations: N\}\), "
        r"got unbounded cycle agent -> search -> agent$",
    ),
    "loop without max_iterations": (
        lambda d: d["edges"][1]["loop"].pop("max_iterations"),
        r"field 'edges\.1\.loop\.max_iterations': required field is missing",
    ),
    "unknown distribution": (
        lambda d: d["nodes"]["stt"].update(audio_s={"dist": "weibull", "shape": 2}),
        r"field 'nodes\.stt\.audio_s': Input tag 'weibull' found using 'dist' does not match",
    ),
    "lognormal with half its parameters": (
        lambda d: d["nodes"]["agent"].update(prompt_tokens={"dist": "lognormal", "mean": 300}),
        r"field 'nodes\.agent\.prompt_tokens\.mean': expected either 'mean' and 'cv', or 'mu' and 'sigma', got mean$",
    ),
    "unknown node type": (
        lambda d: d["nodes"]["search"].update(type="browser"),
        r"field 'nodes\.search': Input tag 'browser' found using 'type' does not match",
    ),
    "unknown key": (
        lambda d: d["nodes"]["agent"].update(temperature=0.7),
        r"field 'nodes\.agent\.temperature': unknown key",
    ),
    "unreachable node": (
        lambda d: d["nodes"].update(orphan={"type": "tool", "latency_s": 1}) or d.update(entry="stt"),
        r"field 'nodes\.orphan': expected a node reachable from the entry node 'stt', got none$",
    ),
    "ambiguous entry": (
        lambda d: d["nodes"].update(orphan={"type": "tool", "latency_s": 1}),
        r"field 'entry': expected the name of the first node, got nodes without incoming edges: stt, orphan$",
    ),
    "turn tokens without a context": (
        lambda d: d["nodes"]["agent"].pop("context"),
        r"field 'nodes\.agent\.turn_tokens': expected 'context' too \(turn tokens extend a conversation\), got none$",
    ),
    "external tool that uses CPU": (
        lambda d: d["nodes"]["search"].update(cpu_s=0.1),
        r"field 'nodes\.search\.cpu_s': expected no CPU use for an external tool \(a pure delay\), got some$",
    ),
    "tts with no size": (
        lambda d: d["nodes"]["tts"].pop("output_characters"),
        r"field 'nodes\.tts\.output_characters': expected exactly one of output_characters or audio_s, got neither$",
    ),
    "parallel edge with a probability": (
        lambda d: d["edges"][0].update(parallel=True, probability=1.0),
        r"field 'edges\.0\.probability': expected none on a parallel edge \(always taken\), got 1\.0$",
    ),
    "join that no fan-out reaches": (
        lambda d: d["nodes"]["tts"].update(join=True),
        r"field 'nodes\.tts\.join': expected a node where parallel branches meet, got one no fan-out reaches$",
    ),
    "loop edges with different loop counts": (
        lambda d: (
            d["nodes"].update(calc={"type": "tool", "latency_s": 0.01}),
            d["edges"][1].update(probability=0.5),
            d["edges"].extend(
                [
                    {"from": "agent", "to": "calc", "probability": 0.5, "loop": {"iterations": 1, "max_iterations": 9}},
                    {"from": "calc", "to": "agent"},
                ]
            ),
        ),
        r"field 'edges\.4\.loop': expected the same loop as edges\.1 \(loop edges from 'agent' share one loop "
        r"count\), got a different one$",
    ),
    "closed loop without think time": (
        lambda d: d.update(arrival={"process": "closed_loop", "users": 3, "think_time_s": 0}),
        r"field 'arrival\.think_time_s': expected a mean think time > 0, got 0\.0$",
    ),
    "source that is not cited": (
        lambda d: d["nodes"]["stt"].update(audio_s={"dist": "constant", "value": 4, "source": "folklore"}),
        r"field 'nodes\.stt\.audio_s\.source': expected a key of 'sources' \(none\) or text starting with derived:",
    ),
}


@pytest.mark.parametrize("case", sorted(BAD_INPUTS))
def test_bad_input_gives_one_line_naming_the_field(case: str, write_workload: Any) -> None:
    edit, message = BAD_INPUTS[case]
    path = write_workload(_with(edit))
    with pytest.raises(WorkloadError, match=message) as caught:
        load_workload(path, CATALOG_MODELS)
    assert "\n" not in str(caught.value)
    assert str(caught.value).startswith(f"{path}: field '")


def test_unknown_model_is_an_error_naming_the_field(write_workload: Any) -> None:
    path = write_workload(_with(lambda d: d["nodes"]["agent"].update(model="llama-9b")))
    with pytest.raises(
        WorkloadError,
        match=r"field 'nodes\.agent\.model': expected a catalog model \(.*\), got unknown model 'llama-9b'$",
    ):
        load_workload(path, CATALOG_MODELS)


def test_models_are_not_checked_without_a_model_set(write_workload: Any) -> None:
    path = write_workload(_with(lambda d: d["nodes"]["agent"].update(model="llama-9b")))
    assert load_workload(path).nodes["agent"].model == "llama-9b"


def test_a_model_of_the_wrong_kind_is_an_error(write_workload: Any) -> None:
    path = write_workload(_with(lambda d: d["nodes"]["agent"].update(model="whisper-large-v3")))
    kinds = {"whisper-large-v3": "stt", "llama-3-8b": "llm", "kokoro-82m": "tts"}
    with pytest.raises(WorkloadError, match=r"'nodes\.agent\.model': a llm node needs a llm model, got 'whisper"):
        load_workload(path, kinds)


def test_parallel_branches_must_meet_at_one_join(write_workload: Any) -> None:
    data = agent_loop(
        nodes={
            "plan": {"type": "llm", "model": "llama-3-8b", "prompt_tokens": 10, "output_tokens": 10},
            "a": {"type": "tool", "latency_s": 1},
            "b": {"type": "tool", "latency_s": 1},
            "join_a": {"type": "tool", "latency_s": 1, "join": True},
            "join_b": {"type": "tool", "latency_s": 1, "join": True},
        },
        edges=[
            {"from": "plan", "to": "a", "parallel": True},
            {"from": "plan", "to": "b", "parallel": True},
            {"from": "a", "to": "join_a"},
            {"from": "b", "to": "join_b"},
        ],
    )
    with pytest.raises(
        WorkloadError,
        match=r"field 'nodes\.plan': expected its parallel branches to meet at one join node, "
        r"got several: join_a, join_b$",
    ):
        load_workload(write_workload(data))


def test_bad_yaml_names_the_file_and_line(tmp_path: Any) -> None:
    path = tmp_path / "broken.yaml"
    path.write_text("name: [unclosed\n", encoding="utf-8")
    with pytest.raises(WorkloadError, match=r"broken\.yaml: line \d+ not valid YAML"):
        load_workload(path)


def test_distribution_means() -> None:
    assert LognormalDist(dist="lognormal", mean=166, cv=0.73).mean == pytest.approx(166)
    mu, sigma = 1.0, 0.5
    assert LognormalDist(dist="lognormal", mu=mu, sigma=sigma).mean == pytest.approx(math.exp(mu + sigma**2 / 2))
    assert GammaDist(dist="gamma", mean=19.1, cv=0.53).mean == pytest.approx(19.1)
    assert GammaDist(dist="gamma", shape=2, scale=3).mean == pytest.approx(6)
    assert EmpiricalDist(dist="empirical", values=(0, 1, 2), weights=(2, 1, 1)).mean == pytest.approx(0.75)
    # a standard normal truncated at 0 has mean sqrt(2/pi)
    assert NormalDist(dist="normal", mean=0, std=1).mean == pytest.approx(math.sqrt(2 / math.pi))
