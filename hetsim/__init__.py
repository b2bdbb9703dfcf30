"""hetsim: discrete-event simulation and TCO planning for AI agents on heterogeneous hardware."""

__version__ = "0.1.0"
