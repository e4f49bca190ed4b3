"""Dataflow test fixtures: process-global state is reset around every test, so one failure cannot cascade."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from dataflow.backpressure import BUFFERS
from dataflow.kinesis_shards import LEDGER


@pytest.fixture(autouse=True)
def _fresh_process_state() -> Iterator[None]:
    """The Kinesis source's DrainLedger (drained shards, caught-up partitions) and the enrichment buffer gauge
    the source reads for backpressure start empty."""
    LEDGER.reset()
    BUFFERS.reset()
    yield
    LEDGER.reset()
    BUFFERS.reset()
