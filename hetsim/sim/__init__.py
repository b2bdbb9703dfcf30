"""The discrete-event engine: the only package that imports SimPy."""
