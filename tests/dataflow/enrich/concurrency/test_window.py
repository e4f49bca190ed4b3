"""The window: the smallest of its limits, throttles handled once per event."""

from __future__ import annotations

from dataflow.enrich.concurrency.window import Window
from tests.dataflow.helpers import settings


def test_the_effective_window_is_the_smallest_limit() -> None:
    window = Window.from_settings(settings(BEDROCK_MAX_CONCURRENCY=16, BEDROCK_INITIAL_CONCURRENCY=4))
    assert window.current == 4 and window.gradient is not None
    window.gradient.value = 16
    window.aimd.on_throttle(0.0)
    assert window.current == 8
    pinned = Window.from_settings(settings(BEDROCK_MAX_CONCURRENCY=16, BEDROCK_ADAPTIVE="false"))
    assert pinned.current == 16 and pinned.gradient is None and pinned.pacer is None
