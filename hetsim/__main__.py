"""The ``hetsim`` program (``python -m hetsim`` and the ``hetsim`` console script)."""

from __future__ import annotations

import signal
import sys


def main() -> None:
    """Install hetsim's Ctrl-C handler before anything else is imported, run the command line,
    then ignore Ctrl-C: once the command is over, a signal would only cut Python's shutdown short
    (and the process would die of it instead of exiting with the command's status)."""
    from hetsim.io import ctrl_c

    ctrl_c.install()
    try:
        from hetsim.cli import main as run_command_line
    except KeyboardInterrupt:  # Ctrl-C while the command line loads is an interruption like any other
        print("hetsim: interrupted", file=sys.stderr)
        sys.exit(130)
    except Exception:
        if not ctrl_c.received():
            raise
        print("hetsim: interrupted", file=sys.stderr)  # a library turned the Ctrl-C into its own error
        sys.exit(130)
    try:
        run_command_line()
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)


if __name__ == "__main__":
    main()
