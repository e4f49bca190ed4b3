"""Exponential backoff with full jitter."""

from __future__ import annotations

from dataflow.backoff import full_jitter


def test_full_jitter_bounds() -> None:
    assert full_jitter(0, 0.5, 20, rand=lambda: 1.0) == 0.5
    assert full_jitter(3, 0.5, 20, rand=lambda: 1.0) == 4.0
    assert full_jitter(10, 0.5, 20, rand=lambda: 1.0) == 20
    assert full_jitter(10, 0.5, 20, rand=lambda: 0.0) == 0.0
