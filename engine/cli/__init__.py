"""The `journey` command: one module per command group, each importing what its commands need only when
they run, so `journey --help` and `journey validate` answer without loading Temporal, the database or
plotly."""

from engine.cli.app import app, main

__all__ = ["app", "main"]
