"""The age of the last completed epoch: what tells an operator that checkpoints stopped (metrics.EpochClock)."""

from __future__ import annotations

import pytest
from prometheus_client import REGISTRY

from dataflow import metrics
from dataflow.metrics import EpochClock


def test_the_age_counts_from_the_start_then_from_each_completed_epoch() -> None:
    now = [1000.0]
    clock = EpochClock(clock=lambda: now[0])
    now[0] += 7
    assert clock.age_s() == pytest.approx(7)  # no epoch completed yet: a stalled cluster's age grows
    clock.completed()
    assert clock.age_s() == 0
    now[0] += 2.5
    assert clock.age_s() == pytest.approx(2.5)
    now[0] -= 10  # a wall clock stepped back reads as no age, never a negative one
    assert clock.age_s() == 0


def test_the_gauge_reads_the_process_clock() -> None:
    metrics.EPOCHS.completed()
    age = REGISTRY.get_sample_value("reviewstream_epoch_completed_age_seconds")
    assert age is not None and 0 <= age < 1
