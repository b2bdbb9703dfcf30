"""Generate the mutation corpus and run every mutation through the ``hetsim`` commands a user
would run on that file; tally clean refusals, valid acceptances and failures.

Each command runs in a fresh process forked from a warm parent (hetsim imported once), through
``hetsim.cli.main`` exactly as the console script runs it, with its own limits: ``RLIMIT_CPU``
10 s (the time it may compute; a loaded machine stretches wall time, so wall time is reported
and only a hang, 60 s, is killed), ``RLIMIT_AS`` 1 GiB above what the parent had mapped, and a
peak resident memory under 1 GiB. A sample of the mutations also runs as a plain ``python -m
hetsim`` subprocess under ``RLIMIT_AS`` = 1 GiB and ``RLIMIT_CPU`` = 10 s, and must end the same
way.

A run is clean when it

* exits 0 with a valid result, or 3/4/5 with a valid result that says what is wrong with it
  (calls dropped, an SLA missed, a solve without proof: the README's exit statuses): ``--json`` output that parses and holds no negative number, the
  same command's table output with no ``nan``/``inf``, and (for mutations whose value no input may
  hold: NaN, infinity, past int64, a name that leaves the output folder, a canonical trace with a
  negative count, a cycle, ...) never; or
* exits 1 with one line ``hetsim: error: ...`` that names the mutated file or the thing it
  defines (the device, model, plan... by name), and nothing else on stderr.

Never a traceback, never over 10 s or 1 GiB, never a file written outside the run's folder.

    python tests/fuzz/corpus.py --root /tmp/corpus [--seed 18] [--workers 2] [--json]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import resource
import signal
import subprocess
import sys
import time
import traceback
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

LIMIT_S = 10
HANG_S = 60
LIMIT_BYTES = 1 << 30
SAMPLE_EVERY = 50
TABLE_CHECKED = ("estimate", "simulate", "stats", "show")
"""Commands whose table output is checked too (it prints numbers derived from the input)."""
_NAN = re.compile(r"(?<![\w.])-?(nan|inf)(?![\w])", re.IGNORECASE)
RESULT_EXITS = (3, 4, 5)  # a whole result that says what is wrong: calls dropped, an SLA missed, no proof
_NEGATIVE_OK = re.compile(r"(^|\.)(seed|mu|offset|\w*(error|difference|delta|change|slope|intercept)\w*)(\.|$)")
"""Result keys that may hold a negative number (a difference, an error, a log-scale parameter)."""


@dataclass
class Run:
    mutation: str
    command: int
    mode: str  # json, table or subprocess
    argv: list[str]
    exit: int
    wall_s: float
    cpu_s: float
    rss_bytes: int
    verdict: str  # refused, accepted, failure
    reason: str
    message: str


# ---- generating (in a child: Parquet writing starts Arrow's threads, which a fork must not inherit) ----


def make_bases(bases: Path) -> None:
    """Small canonical traces: 20 s of the voice agent (multi-step sessions with parents), and
    the first 40 requests of the Azure 2023 conversation trace."""
    from targets import REPO

    from hetsim.api.traces import convert_trace
    from hetsim.api.workloads import synthesize_to_file

    bases.mkdir(parents=True)
    synthesize_to_file("voice-agent", "20", bases / "voice.jsonl", 0, None)
    azure = REPO / "workloads" / "traces" / "azure_llm_2023" / "AzureLLMInferenceTrace_conv.first1000.csv"
    head = azure.read_text(encoding="utf-8").splitlines()[:41]
    (bases / "azure-40.csv").write_text("\n".join(head) + "\n", encoding="utf-8")
    convert_trace(bases / "azure-40.csv", "azure-2023", bases / "azure.jsonl")


def generate(root: Path, seed: int, only: set[str] | None = None) -> list[Any]:
    """Write the corpus under ``root``; returns its mutations (the same for the same seed)."""
    import random

    from documents import load_document, operators_for, semantic_mutation, write_document
    from mutations import MUST_REFUSE, TREE_OPERATOR_NAMES, Applied, mutate_tree, paths
    from targets import Mutation, targets

    make_bases(root / "bases")
    mutations: list[Mutation] = []
    for target in targets(root / "bases"):
        if only and target.name not in only:
            continue
        rng = random.Random(f"{seed}:{target.name}")
        operators = operators_for(target.kind)
        rng.shuffle(operators)
        schedule = ["baseline"] + [operators[i % len(operators)] for i in range(target.count * 3)]
        made = 0
        for operator in schedule:
            if made > target.count:
                break
            index = len(mutations)
            mid = f"{index:05d}-{target.name.replace(':', '-')}-{operator.replace(':', '-')}"
            document = load_document(target.kind, target.source)
            document = target.base(document) if target.base else document
            if operator == "baseline" or operator.startswith(("bytes:", "yaml:", "json:", "parquet:")):
                applied: Applied | None = Applied(operator, "(file)" if operator != "baseline" else "")
            elif operator == "name-traversal":
                has_name = isinstance(document, dict) and isinstance(document.get("name"), str)
                applied = mutate_tree(document, "path-traversal", rng, mid, where=[("name",)]) if has_name else None
            elif operator in TREE_OPERATOR_NAMES:
                where = None
                if isinstance(document, list) and document and target.kind != "json":
                    row = rng.randrange(len(document))
                    where = [p for p in paths(document) if p[0] == row]
                applied = mutate_tree(document, operator, rng, mid, where)
            else:
                applied = semantic_mutation(target.kind, document, operator, rng)
            if applied is None:
                continue
            folder = root / "m" / mid
            (folder / "run").mkdir(parents=True)
            path = target.place(folder, target.source.name)
            path.write_bytes(write_document(target.kind, document, operator, rng))
            must = operator in MUST_REFUSE or operator in target.must_refuse_ops
            commands = tuple(target.commands(path, folder))
            mutations.append(Mutation(mid, target.name, operator, applied.where, str(path), str(folder / "run"), commands, must,
                                      target.names))  # fmt: skip
            made += 1
    return mutations


def generate_in_child(root: Path, seed: int, only: set[str] | None) -> list[Any]:
    from targets import Mutation

    manifest = root / "manifest.json"
    pid = os.fork()
    if pid == 0:
        code = 0
        try:
            manifest.write_text(json.dumps([m.to_json() for m in generate(root, seed, only)]), encoding="utf-8")
        except BaseException:
            traceback.print_exc()
            code = 1
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    _, status = os.waitpid(pid, 0)
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit("generating the corpus failed (see above)")
    return [Mutation.from_json(m) for m in json.loads(manifest.read_text(encoding="utf-8"))]


# ---- running -------------------------------------------------------------------------------------


def _vm_size_bytes() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmSize:"):
            return int(line.split()[1]) * 1024
    return 0


def run_forked(argv: list[str], env: dict[str, str], cwd: str, out: Path, err: Path) -> tuple[int, float, float, int]:
    """Run ``hetsim argv`` in a forked child; (exit code or -signal, wall s, CPU s, peak RSS bytes)."""
    sys.stdout.flush()
    sys.stderr.flush()
    started = time.perf_counter()
    pid = os.fork()
    if pid == 0:  # the child: never returns
        code = 70
        try:
            limit = _vm_size_bytes() + LIMIT_BYTES
            resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
            resource.setrlimit(resource.RLIMIT_CPU, (LIMIT_S, LIMIT_S + 1))
            signal.alarm(HANG_S)
            os.chdir(cwd)
            os.environ.update(env)
            for fd, path in ((1, out), (2, err)):
                os.dup2(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644), fd)
            sys.argv = ["hetsim", *argv]
            code = _main()
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(code)
    _, status, usage = os.wait4(pid, 0)
    cpu = usage.ru_utime + usage.ru_stime
    return os.waitstatus_to_exitcode(status), time.perf_counter() - started, cpu, usage.ru_maxrss * 1024


def _main() -> int:
    """``hetsim.cli.main`` as the console script runs it: an uncaught exception prints its
    traceback and exits 1, as the interpreter does."""
    from hetsim.cli import main

    try:
        main()
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    except BaseException:
        traceback.print_exc()
        return 1
    return 0


def run_subprocess(argv: list[str], env: dict[str, str], cwd: str) -> tuple[int, float, float, str, str]:
    """``python -m hetsim argv`` under RLIMIT_AS = 1 GiB and RLIMIT_CPU = 10 s (start-up included)."""

    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (LIMIT_BYTES, LIMIT_BYTES))
        resource.setrlimit(resource.RLIMIT_CPU, (LIMIT_S, LIMIT_S + 1))

    started = time.perf_counter()
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    try:
        done = subprocess.run([sys.executable, "-m", "hetsim", *argv], cwd=cwd, env={**os.environ, **env},
                              capture_output=True, timeout=HANG_S, preexec_fn=limit, check=False)  # fmt: skip
    except subprocess.TimeoutExpired:
        return -signal.SIGKILL, time.perf_counter() - started, 0.0, "", "hung"
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
    out, err = done.stdout.decode(errors="replace"), done.stderr.decode(errors="replace")
    return done.returncode, time.perf_counter() - started, cpu, out, err


def classify(mutation: Any, mode: str, code: int, cpu: float, rss: int, out: str, err: str) -> tuple[str, str, str]:
    """(verdict, reason, message) of one run."""
    lines = [line for line in err.splitlines() if line.strip()]
    message = lines[-1] if lines else ""
    if code < 0:
        why = {signal.SIGXCPU: f" (over {LIMIT_S} s of CPU)", signal.SIGKILL: " (over the CPU or hang limit)",
               signal.SIGALRM: f" (hung: {HANG_S} s)"}.get(-code, "")  # fmt: skip
        return "failure", f"killed by signal {-code}{why}", message
    if cpu > LIMIT_S:
        return "failure", f"took {cpu:.1f} s of CPU (limit {LIMIT_S} s)", message
    if rss > LIMIT_BYTES:
        return "failure", f"peak memory {rss / 2**20:.0f} MiB (limit 1 GiB)", message
    if "Traceback (most recent call last)" in out + err:
        return "failure", "traceback", message
    if code == 0 or code in RESULT_EXITS:
        if mutation.must_refuse:
            return "failure", "accepted a value no input may hold", message
        problem = _json_problem(out) if mode == "json" else _text_problem(out)
        return ("failure", problem, message) if problem else ("accepted", "", "")
    if code != 1 or len(lines) != 1 or not message.startswith("hetsim: error: "):
        return "failure", f"exit {code} with {len(lines)} lines on stderr (expected 1 line 'hetsim: error: ...')", message[:300]
    if not _names_file(message, mutation):
        return "failure", "the error does not name the file", message[:300]
    return "refused", "", message[:300]


def _names_file(message: str, mutation: Any) -> bool:
    return any(name in message for name in (Path(mutation.input).name, *mutation.names))


def _json_problem(out: str) -> str:
    try:
        data = json.loads(out)
    except ValueError:
        return "exit 0 but the --json output is not JSON"
    for path, value in _numbers(data, ""):
        if value < -1e-9 and not _NEGATIVE_OK.search(path):  # -1e-19 is a sum's rounding of 0, not a result
            return f"negative value {value!r} at {path}"
    return ""


def _numbers(value: Any, path: str) -> list[tuple[str, float]]:
    if isinstance(value, dict):
        return [n for k, v in value.items() for n in _numbers(v, f"{path}.{k}" if path else str(k))]
    if isinstance(value, list):
        return [n for i, v in enumerate(value) for n in _numbers(v, f"{path}.{i}")]
    if isinstance(value, int | float) and not isinstance(value, bool):
        return [(path, value)] if math.isfinite(value) else [(path, -math.inf)]
    return []


def _text_problem(out: str) -> str:
    found = _NAN.search(out)
    if found:
        start = out.rfind("\n", 0, found.start()) + 1
        return f"printed {found.group(0)!r}: {out[start:found.end() + 20].strip()[:120]}"
    return ""


def run_mutation(mutation: Any, workdir: Path, sample: bool) -> list[Run]:
    """Every command of ``mutation`` (JSON, then table mode when JSON was accepted)."""
    runs: list[Run] = []
    previous_ok = True
    for index, command in enumerate(mutation.commands):
        if command.after_success and not previous_ok:
            continue
        argv, env = list(command.argv), dict(command.env)
        modes = ["json", "table"] if argv[0] in TABLE_CHECKED or argv[1] in TABLE_CHECKED else ["json"]
        for mode in modes:
            this = argv if mode == "json" else [a for a in argv if a != "--json"]
            out, err = workdir / "stdout", workdir / "stderr"
            code, wall, cpu, rss = run_forked(this, env, mutation.run_dir, out, err)
            text_out, text_err = out.read_text(errors="replace"), err.read_text(errors="replace")
            verdict, reason, message = classify(mutation, mode, code, cpu, rss, text_out, text_err)
            runs.append(Run(mutation.id, index, mode, this, code, wall, cpu, rss, verdict, reason, message))
            if mode == "json":
                previous_ok = code == 0
            if code != 0:
                break
        if sample and index == 0:
            code, wall, cpu, text_out, text_err = run_subprocess(argv, env, mutation.run_dir)
            verdict, reason, message = classify(mutation, "json", code, cpu, 0, text_out, text_err)
            if verdict != "failure" and code != runs[0].exit:
                verdict, reason = "failure", f"exit {code} as a subprocess, {runs[0].exit} in-process"
            runs.append(Run(mutation.id, index, "subprocess", argv, code, wall, cpu, 0, verdict, reason, message))
    return runs


def run_all(mutations: list[Any], root: Path, workers: int) -> list[Run]:
    """Run the mutations, ``workers`` at a time (each in its own forked worker)."""
    from hetsim.cli import app  # noqa: F401  warm the parent: every child starts with hetsim imported

    pending = list(enumerate(mutations))
    active: dict[int, tuple[int, Path]] = {}
    runs: list[Run] = []
    while pending or active:
        while pending and len(active) < workers:
            index, mutation = pending.pop(0)
            result = root / "results" / f"{mutation.id}.json"
            result.parent.mkdir(exist_ok=True)
            sys.stdout.flush()
            pid = os.fork()
            if pid == 0:
                code = 0
                try:
                    work = Path(mutation.run_dir).parent
                    found = run_mutation(mutation, work, sample=index % SAMPLE_EVERY == 0)
                    result.write_text(json.dumps([asdict(r) for r in found]), encoding="utf-8")
                except BaseException:
                    traceback.print_exc()
                    code = 1
                os._exit(code)
            active[pid] = (index, result)
        pid, _ = os.wait()
        _, result = active.pop(pid)
        runs += [Run(**r) for r in json.loads(result.read_text(encoding="utf-8"))] if result.exists() else []
    return runs


def escapes(root: Path, mutations: list[Any]) -> list[Run]:
    """Files a mutation wrote outside its run folder's ``reports/`` (named ``escape-<id>``)."""
    found = []
    for mutation in mutations:
        folder = Path(mutation.run_dir).parent
        places = [*folder.glob("escape-*"), *folder.glob("run/escape-*"), *(root / "m").glob(f"escape-{mutation.id}*"),
                  *Path("/tmp").glob(f"escape-{mutation.id}*")]  # fmt: skip
        if places:
            found.append(Run(mutation.id, -1, "files", [], 0, 0.0, 0.0, 0, "failure", f"wrote outside its folder: {places[0]}", ""))
    return found


# ---- the tally ------------------------------------------------------------------------------------


def tally(mutations: list[Any], runs: list[Run]) -> dict[str, Any]:
    by_mutation: dict[str, list[Run]] = {}
    for run in runs:
        by_mutation.setdefault(run.mutation, []).append(run)
    verdicts: dict[str, str] = {}
    for mutation in mutations:
        mine = by_mutation.get(mutation.id, [])
        if not mine or any(r.verdict == "failure" for r in mine):
            verdicts[mutation.id] = "failure"
        else:
            verdicts[mutation.id] = "refused" if any(r.verdict == "refused" for r in mine) else "accepted"
    counts = Counter(verdicts.values())
    timed = [r for r in runs if r.mode != "files"]
    slowest = max(timed, key=lambda r: r.cpu_s)
    heaviest = max(timed, key=lambda r: r.rss_bytes)
    failures = [asdict(r) for r in runs if r.verdict == "failure"]
    failures += [{"mutation": m, "reason": "no run recorded"} for m, v in verdicts.items() if v == "failure" and m not in by_mutation]
    return {
        "mutations": len(mutations),
        "commands_run": len(timed),
        "clean_refusals": counts["refused"],
        "valid_acceptances": counts["accepted"],
        "failures": counts["failure"],
        "slowest": {"cpu_s": round(slowest.cpu_s, 3), "wall_s": round(slowest.wall_s, 3), "mutation": slowest.mutation,
                    "argv": slowest.argv[:3]},
        "slowest_wall_s": round(max(r.wall_s for r in timed), 3),
        "peak_memory_mib": {"mib": round(heaviest.rss_bytes / 2**20, 1), "mutation": heaviest.mutation},
        "targets": dict(sorted(Counter(m.target.split(":")[0] for m in mutations).items())),
        "by_target": {t: dict(Counter(verdicts[m.id] for m in mutations if m.target == t)) for t in sorted({m.target for m in mutations})},
        "failure_list": failures,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--root", type=Path, required=True, help="empty folder for the corpus and its outputs")
    parser.add_argument("--seed", type=int, default=18)
    parser.add_argument("--workers", type=int, default=min(2, os.cpu_count() or 1))
    parser.add_argument("--only", action="append", help="only this target (repeatable)")
    parser.add_argument("--json", action="store_true", help="print the tally as JSON")
    args = parser.parse_args(argv)
    args.root.mkdir(parents=True, exist_ok=True)
    if any(args.root.iterdir()):
        raise SystemExit(f"{args.root}: expected an empty folder")
    started = time.perf_counter()
    mutations = generate_in_child(args.root, args.seed, set(args.only) if args.only else None)
    generated = time.perf_counter() - started
    runs = run_all(mutations, args.root, args.workers)
    runs += escapes(args.root, mutations)
    result = tally(mutations, runs) | {"seed": args.seed, "generate_s": round(generated, 1),
                                       "wall_s": round(time.perf_counter() - started, 1)}  # fmt: skip
    (args.root / "tally.json").write_text(json.dumps(result, indent=2), encoding="utf-8")
    print(json.dumps(result, indent=2) if args.json else render(result))
    return 0 if result["failures"] == 0 else 1


def render(result: dict[str, Any]) -> str:
    lines = [
        f"mutations            {result['mutations']} ({result['commands_run']} command runs; seed {result['seed']})",
        f"clean refusals       {result['clean_refusals']}",
        f"valid acceptances    {result['valid_acceptances']}",
        f"failures             {result['failures']}",
        f"slowest run          {result['slowest']['cpu_s']} s CPU, {result['slowest']['wall_s']} s wall ({result['slowest']['mutation']}: "
        f"hetsim {' '.join(result['slowest']['argv'])}); longest wall {result['slowest_wall_s']} s",
        f"peak memory          {result['peak_memory_mib']['mib']} MiB ({result['peak_memory_mib']['mutation']})",
        f"wall                 {result['wall_s']} s (generating {result['generate_s']} s)",
    ]
    first = {f["mutation"]: f for f in reversed(result["failure_list"])}  # the first failure of each mutation
    lines += [f"  {m}: {f['reason']} | {f.get('message', '')[:160]}" for m, f in sorted(first.items())]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
