"""The integration tests use the `stack` and `pipeline` fixtures of the tests.plugins.stack plugin."""

from __future__ import annotations

from tests.plugins.stack import ROOT, Pipeline

__all__ = ["ROOT", "Pipeline"]  # kept importable from here for the modules that still do
