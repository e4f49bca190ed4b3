"""Waiting on events and progress, never on the clock alone.

A busy machine makes everything slower, so a wall-clock deadline fails tests that are merely slow. These
helpers fail only when nothing moves: `progress()` returns a snapshot of what the system under test has done
(documents indexed, requests served, ...), and the wait gives up once that snapshot has not changed for
`stall_s` seconds. Without a `progress`, `stall_s` is a plain safety deadline (a hang guard).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Hashable

import pytest


def wait_until(
    condition: Callable[[], bool],
    what: str,
    *,
    stall_s: float = 60,
    progress: Callable[[], Hashable] | None = None,
    detail: Callable[[], str] = lambda: "",
    interval: float = 0.2,
) -> None:
    """Poll `condition` until it holds; fail (naming `what`, the last progress and `detail()`) on a stall."""
    last = progress() if progress is not None else None
    moved_at = time.monotonic()
    while not condition():
        if progress is not None:
            now = progress()
            if now != last:
                last, moved_at = now, time.monotonic()
        if time.monotonic() - moved_at > stall_s:
            stalled = f"no progress for {stall_s:.0f} s (last: {last})" if progress else f"{stall_s:.0f} s"
            pytest.fail(f"timed out waiting for {what}: {stalled}\n{detail()}".rstrip())
        time.sleep(interval)
