"""The one exception tree of hetsim.

Core code raises these; the CLI catches ``HetsimError`` once and prints its message as a
single line (no traceback) with a non-zero exit code.

    HetsimError
    ├── ProfileError          a hardware, node, link or model profile is invalid or missing
    ├── CalibrationError      a calibration file is invalid, or a measurement cannot be fitted
    ├── WorkloadError         a workload spec or trace is invalid
    ├── ScenarioError         a scenario, fleet or plan file is invalid
    ├── EstimateError         a performance question has no answer (model does not fit, bad shape)
    ├── InfeasiblePlanError   no placement meets the constraints
    └── ExecutorError         the real executor failed

Ctrl-C is KeyboardInterrupt, as Python raises it; a command that kept what it had finished raises
``Interrupted`` (a KeyboardInterrupt) whose message says what and where. The CLI prints either as
one line and exits 130.
"""

from __future__ import annotations


class HetsimError(Exception):
    """Base of every error hetsim raises on purpose; its message is meant for the user."""


class ProfileError(HetsimError):
    """A hardware, node, link or model profile is invalid or cannot be found."""


class CalibrationError(HetsimError):
    """A calibration file is invalid or a set of measurements cannot be fitted."""


class WorkloadError(HetsimError):
    """A workload specification or trace is invalid."""


class ScenarioError(HetsimError):
    """A scenario, fleet or plan file is invalid."""


class EstimateError(HetsimError):
    """A performance estimate cannot be made (the model does not fit, a shape is invalid)."""


class InfeasiblePlanError(HetsimError):
    """No placement meets the constraints."""


class ExecutorError(HetsimError):
    """The real executor failed."""


class Interrupted(KeyboardInterrupt):
    """Ctrl-C stopped a command after it kept what it had finished; the message says what and where."""
