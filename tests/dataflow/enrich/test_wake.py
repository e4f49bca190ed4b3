"""When the Bytewax side wakes: one shared tick per interval, and the emission-delay histogram."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from dataflow.enrich.wake import DelayStats, next_tick


@pytest.mark.parametrize("interval", [0.02, 0.05, 1.0])
def test_every_key_asks_for_the_same_wake_instant(interval: float) -> None:
    a = datetime(2026, 1, 1, 0, 0, 0, 3000, tzinfo=UTC)
    b = datetime(2026, 1, 1, 0, 0, 0, 11000, tzinfo=UTC)
    assert next_tick(a, interval) == next_tick(b, interval) > b
    assert (next_tick(a, interval) - a).total_seconds() <= interval


def test_delay_stats_percentiles() -> None:
    stats = DelayStats()
    for ms in range(100):
        stats.add(ms / 1000)
    stats.add(5.0)
    assert stats.n == 101 and stats.percentile_ms(50) == 51 and stats.max_s == 5.0
    assert stats.percentile_ms(100) == 5000
