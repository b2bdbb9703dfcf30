"""The command line's exit statuses (the README's table), beside the error tree the CLI translates."""

from __future__ import annotations

EXIT_ERROR = 1
"""Bad input or a failed command: one line ``hetsim: error: ...`` names the file and field."""
EXIT_FAILED_CALLS = 3
"""A run (executed or simulated) finished with calls or sessions that failed, were dropped or did
not finish."""
EXIT_SLA_MISSED = 4
"""An SLA is missed: in simulation after every verification round (``plan``), or by the
simulated run (``simulate``)."""
EXIT_NOT_PROVEN = 5
"""The solver stopped at its time limit with an incumbent, without proof of optimality."""
EXIT_INTERRUPTED = 130
"""Ctrl-C: ``hetsim: interrupted``; outputs are the previous whole ones or the new whole ones."""
