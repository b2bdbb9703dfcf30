"""The ``hetsim`` command line: one module per command group; errors translated once, here."""

from __future__ import annotations

import sys
from importlib import import_module

import typer

from hetsim.errors import HetsimError

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


_attach()


def main() -> None:
    """Console entry point: run the app; a HetsimError becomes one line on stderr and exit 1."""
    try:
        code = app(standalone_mode=False)
    except HetsimError as exc:
        print(f"hetsim: error: {exc}", file=sys.stderr)
        sys.exit(1)
    except typer.Abort:
        print("hetsim: aborted", file=sys.stderr)
        sys.exit(130)
    except KeyboardInterrupt:  # Ctrl-C wherever a command is: one line, the conventional status
        print("hetsim: interrupted", file=sys.stderr)
        sys.exit(130)
    except Exception as exc:  # usage errors (a missing file, a bad option) and typer.Exit
        if not _is_usage_error(exc) and not isinstance(exc, typer.Exit):
            raise
        _exit_for_click(exc)
    if isinstance(code, int) and code:  # without standalone mode, typer.Exit(code) comes back as a return value
        sys.exit(code)


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
