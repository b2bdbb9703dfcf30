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
    ("simulate", "commands"),
    ("plan", "commands"),
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
    except (typer.BadParameter, typer.Exit) as exc:  # click errors carry their own exit code
        _exit_for_click(exc)
    except Exception as exc:  # click usage errors
        import click

        if isinstance(exc, click.ClickException):
            exc.show()
            sys.exit(exc.exit_code)
        raise
    if isinstance(code, int) and code:  # without standalone mode, typer.Exit(code) comes back as a return value
        sys.exit(code)


def _exit_for_click(exc: Exception) -> None:
    import click

    if isinstance(exc, click.ClickException):
        exc.show()
        sys.exit(exc.exit_code)
    sys.exit(getattr(exc, "exit_code", 0))
