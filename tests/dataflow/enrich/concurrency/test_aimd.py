"""AIMD: halved once per congestion event, grown back, bounded."""

from __future__ import annotations

from dataflow.enrich.concurrency.aimd import AimdLimit


def test_aimd_halves_once_per_congestion_event_and_grows_back() -> None:
    now = [100.0]
    limit = AimdLimit(maximum=16, clock=lambda: now[0])
    assert limit.current == 16
    assert limit.on_throttle(request_started=99.0)
    assert limit.current == 8
    assert not limit.on_throttle(request_started=99.5)  # sent before the cut: same event
    now[0] = 101.0
    assert limit.on_throttle(request_started=100.5)
    assert limit.current == 4
    for _ in range(40):
        limit.on_success()
    assert 8 <= limit.current <= 16
    for _ in range(1000):
        limit.on_success()
    assert limit.current == 16


def test_aimd_respects_minimum() -> None:
    now = [0.0]
    limit = AimdLimit(maximum=4, minimum=2, clock=lambda: now[0])
    for i in range(5):
        now[0] = float(i + 1)
        limit.on_throttle(request_started=float(i + 1))
    assert limit.current == 2
