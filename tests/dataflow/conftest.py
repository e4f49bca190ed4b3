"""Dataflow test fixtures: process-global state is reset around every test, so one failure cannot cascade."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from dataflow.kinesis_shards import LEDGER


@pytest.fixture(autouse=True)
def _fresh_drain_ledger() -> Iterator[None]:
    """The Kinesis source's process-wide DrainLedger (drained shards, caught-up partitions) starts empty."""
    LEDGER.reset()
    yield
    LEDGER.reset()
