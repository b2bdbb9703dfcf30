"""The ``hetsim`` program (``python -m hetsim`` and the ``hetsim`` console script)."""

from __future__ import annotations

import signal
import sys


def main() -> None:
    """Install hetsim's Ctrl-C handler before anything else is imported, run the command line,
    then ignore Ctrl-C: once the command is over, a signal would only cut Python's shutdown short
    (and the process would die of it instead of exiting with the command's status)."""
    from hetsim.exit_codes import EXIT_INTERRUPTED
    from hetsim.io import ctrl_c

    ctrl_c.install()
    try:
        from hetsim.cli import main as run_command_line
    except (KeyboardInterrupt, Exception) as exc:
        # Ctrl-C while the command line loads is an interruption like any other, also where a
        # library turned it into its own error
        if not isinstance(exc, KeyboardInterrupt) and not ctrl_c.received():
            raise
        print("hetsim: interrupted", file=sys.stderr)
        sys.exit(EXIT_INTERRUPTED)
    try:
        run_command_line()
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)


if __name__ == "__main__":
    main()
