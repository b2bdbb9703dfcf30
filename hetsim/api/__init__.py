"""Facade for the CLI and notebooks: each area of the product has one module here.

The CLI imports only this package (plus ``hetsim.errors`` and ``hetsim.specs``); no domain
logic lives in the CLI.
"""
