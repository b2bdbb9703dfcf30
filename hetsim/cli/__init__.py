"""The ``hetsim`` command line: one module per command group, imported when its command runs;
errors translated once, here."""

from __future__ import annotations

import os
import sys
from importlib import import_module
from typing import TYPE_CHECKING, NamedTuple, NoReturn

import typer
from typer.core import TyperCommand, TyperGroup

from hetsim.errors import HetsimError
from hetsim.exit_codes import EXIT_ERROR, EXIT_INTERRUPTED
from hetsim.io import ctrl_c

if TYPE_CHECKING:
    from typer._click import Command, Context, HelpFormatter

class Entry(NamedTuple):
    """A top-level command: its module under hetsim.cli, how it attaches ("group": the module's
    Typer is a sub-command group; "command": its register(app) adds the command), and the line
    ``hetsim --help`` shows for it (the module's own help; a test keeps the two equal)."""

    name: str
    module: str
    how: str
    help: str


# In the order ``hetsim --help`` lists them: commands, then groups.
COMMANDS: tuple[Entry, ...] = (
    Entry("estimate", "estimate", "command", "Predict TTFT, TPOT, the largest batch that fits, tokens/s per device and $ per 1M tokens."),
    Entry("bench", "bench", "command", "Run microbenchmarks, fit efficiency curves and write calibration + raw rows (+ host profile)."),
    Entry("simulate", "simulate", "command", "Replay an agent trace against a plan and report latency, SLA attainment, utilisation and cost."),
    Entry("run", "run", "command", "Execute a plan on real engines (vLLM under Ray, or running endpoints), drive the agents "
          "through them, and report measured latency, SLA attainment and cost."),
    Entry("fidelity", "fidelity", "command", "Draw the arrivals once; execute them on the plan's real engines and simulate "
          "them on the same plan; write an HTML + CSV report of the simulator's errors with a computed verdict."),
    Entry("compare", "compare", "command", "Plan every candidate fleet for the same demand; rank them by TCO and SLA in one report."),
    Entry("sweep", "sweep", "command", "Simulate every scenario with every seed in parallel; report each point and mean ± 95% CI per scenario."),
    Entry("hardware", "hardware", "group", "Hardware profiles: accelerators, CPUs, links and nodes."),
    Entry("models", "models", "group", "Model catalog: LLMs and the non-LLM models agents use."),
    Entry("trace", "trace", "group", "Agent traces: import public formats, summarise, synthesise."),
    Entry("workload", "workload", "group", "Agent workloads: session graphs, arrival processes and SLAs."),
    Entry("calibrate", "calibrate", "group", "Calibrate the performance model against measurements."),
    Entry("plan", "plan", "group", "Plan a fleet (hetsim plan --fleet F), or export a plan for deployment (hetsim plan export)."),
    Entry("reproduce", "reproduce", "group", "Reproduce published results and check each claim."),
)  # fmt: skip
_BY_NAME = {entry.name: entry for entry in COMMANDS}


def load_command(entry: Entry) -> TyperCommand | TyperGroup:
    """Import ``entry``'s module and build its click command (a group for a command group)."""
    module = import_module(f"hetsim.cli.{entry.module}")
    if entry.how == "group":
        group = typer.main.get_group(module.app)
        group.name = entry.name
        return group
    holder = typer.Typer()
    module.register(holder)
    return typer.main.get_group(holder).commands[entry.name]


class LazyGroup(TyperGroup):
    """The root command. A command's module (and what it imports: pandas, the solver, the
    simulator) is imported only when that command is resolved, so ``hetsim --help`` and every
    command start without the others' imports; listing the commands in the help uses each
    entry's help line instead of loading it."""

    _is_listing = False

    def list_commands(self, ctx: Context) -> list[str]:
        return [entry.name for entry in COMMANDS]

    def get_command(self, ctx: Context, cmd_name: str) -> Command | None:
        entry = _BY_NAME.get(cmd_name)
        if entry is not None and cmd_name not in self.commands:
            if self._is_listing:
                return TyperCommand(cmd_name, help=entry.help)
            self.commands[cmd_name] = load_command(entry)
        return super().get_command(ctx, cmd_name)

    def format_help(self, ctx: Context, formatter: HelpFormatter) -> None:
        self._is_listing = True
        try:
            super().format_help(ctx, formatter)
        finally:
            self._is_listing = False


app = typer.Typer(
    name="hetsim",
    help="Plan, simulate and cost AI agents on heterogeneous hardware.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    cls=LazyGroup,
)


@app.callback()
def _root() -> None:
    """The root group's callback: every command is a sub-command (none is registered eagerly)."""


def main() -> None:
    """Run the command line on ``sys.argv``: a HetsimError becomes one line on stderr and exit 1,
    Ctrl-C one line (with what the command kept, when it says) and exit 130. The ``hetsim``
    program enters through :func:`hetsim.__main__.main`, which installs the Ctrl-C handler first."""
    try:
        _invoke(sys.argv[1:])
        ctrl_c.stop_if_received()  # pressed, but swallowed by a library on the way: still an interruption
    except KeyboardInterrupt as exc:  # Ctrl-C wherever a command is: one line, the conventional status
        exit_interrupted(str(exc))
    except typer.Abort:
        print("hetsim: aborted", file=sys.stderr)
        sys.exit(EXIT_INTERRUPTED)
    except Exception as exc:
        if ctrl_c.received() and not isinstance(exc, typer.Exit):
            # Ctrl-C that a library turned into its own error (pydantic-core wraps it in a
            # SchemaError while a model class is built), or an error on the way out of one
            exit_interrupted()
        if isinstance(exc, HetsimError):
            print(f"hetsim: error: {exc}", file=sys.stderr)
            sys.exit(EXIT_ERROR)
        if isinstance(exc, BrokenPipeError):  # `hetsim ... | head`: the reader left; nothing more to say
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            sys.exit(EXIT_ERROR)
        if not _is_usage_error(exc) and not isinstance(exc, typer.Exit):  # usage errors and typer.Exit
            raise
        _exit_for_click(exc)


def exit_interrupted(detail: str = "") -> NoReturn:
    """Say the command was interrupted (with what it kept, when it says) and exit 130."""
    print(f"hetsim: interrupted{f'; {detail}' if detail else ''}", file=sys.stderr)
    sys.exit(EXIT_INTERRUPTED)


def _invoke(args: list[str]) -> None:
    """Run the app without click's top-level handling, which turns Ctrl-C into a silent exit 130
    (typer 0.29) and loses what the interrupted command said."""
    command = typer.main.get_command(app)
    with command.make_context("hetsim", args) as context:
        command.invoke(context)


def _is_usage_error(exc: Exception) -> bool:
    """A click-style usage error, which prints itself and carries its exit code. Recognised by
    that interface, not by class: recent typer (0.29 here) vendors click, so ``click`` may not be
    installed, and older typer raises click's own classes."""
    return callable(getattr(exc, "show", None)) and isinstance(getattr(exc, "exit_code", None), int)


def _exit_for_click(exc: Exception) -> None:
    if _is_usage_error(exc):
        exc.show()  # type: ignore[attr-defined]
        sys.exit(exc.exit_code)  # type: ignore[attr-defined]
    sys.exit(getattr(exc, "exit_code", 0))
