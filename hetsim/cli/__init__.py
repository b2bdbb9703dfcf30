"""The ``hetsim`` command line: one module per command group; errors translated once, here."""

from __future__ import annotations

import os
import signal
import sys
from importlib import import_module

try:  # Ctrl-C while the command line loads is an interruption like any other
    import typer

    from hetsim.errors import HetsimError
except KeyboardInterrupt:
    print("hetsim: interrupted", file=sys.stderr)
    sys.exit(130)

app = typer.Typer(
    name="hetsim",
    help="Plan, simulate and cost AI agents on heterogeneous hardware.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)

# (module under hetsim.cli, how it attaches): "group" adds its Typer as a sub-command group,
# "commands" registers its top-level commands on the root app via its register(app).
_COMMAND_MODULES: tuple[tuple[str, str], ...] = (
    ("hardware", "group"),
    ("models", "group"),
    ("estimate", "commands"),
    ("trace", "group"),
    ("workload", "group"),
    ("bench", "commands"),
    ("calibrate", "group"),
    ("simulate", "commands"),
    ("run", "commands"),
    ("fidelity", "commands"),
    ("plan", "group"),
    ("compare", "commands"),
    ("sweep", "commands"),
    ("reproduce", "group"),
)


def _attach() -> None:
    for module_name, how in _COMMAND_MODULES:
        module = import_module(f"hetsim.cli.{module_name}")
        if how == "group":
            app.add_typer(module.app, name=module_name.replace("_", "-"))
        else:
            module.register(app)


try:
    _attach()  # imports every command module
except KeyboardInterrupt:
    print("hetsim: interrupted", file=sys.stderr)
    sys.exit(130)


def main() -> None:
    """Console entry point: run the app; a HetsimError becomes one line on stderr and exit 1,
    Ctrl-C one line (with what the command kept, when it says) and exit 130."""
    try:
        _run()
    finally:
        if sys._getframe(1).f_globals.get("__name__") == "__main__":  # the program itself, not a test calling main()
            # The command is over; a Ctrl-C now would only cut Python's shutdown short (its
            # default handler is back by then, and the process would die of the signal).
            signal.signal(signal.SIGINT, signal.SIG_IGN)


def _run() -> None:
    try:
        _invoke(sys.argv[1:])
    except HetsimError as exc:
        print(f"hetsim: error: {exc}", file=sys.stderr)
        sys.exit(1)
    except typer.Abort:
        print("hetsim: aborted", file=sys.stderr)
        sys.exit(130)
    except KeyboardInterrupt as exc:  # Ctrl-C wherever a command is: one line, the conventional status
        print(f"hetsim: interrupted{f'; {exc}' if str(exc) else ''}", file=sys.stderr)
        sys.exit(130)
    except BrokenPipeError:  # `hetsim ... | head`: the reader left; nothing more to say
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        sys.exit(1)
    except Exception as exc:  # usage errors (a missing file, a bad option) and typer.Exit
        if not _is_usage_error(exc) and not isinstance(exc, typer.Exit):
            raise
        _exit_for_click(exc)


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
