"""Waits on progress, not on the clock: a wait fails only when nothing it watches has changed for a long
while, so a busy machine makes a test slower, never red."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable, Hashable
from pathlib import Path

import pytest

STALL_S = 90.0


def log_size(log: Path) -> int:
    return log.stat().st_size if log.exists() else 0


def wait_progressing(
    condition: Callable[[], bool],
    progress: Callable[[], Hashable],
    what: str,
    log: Path | None = None,
    stall_s: float = STALL_S,
) -> None:
    """Wait until `condition()`; fail if `progress()` stays the same for `stall_s` seconds meanwhile."""
    last, since = progress(), time.monotonic()
    while not condition():
        time.sleep(0.2)
        now = progress()
        if now != last:
            last, since = now, time.monotonic()
        elif time.monotonic() - since > stall_s:
            tail = log.read_text()[-3000:] if log is not None and log.exists() else ""
            pytest.fail(f"no progress for {stall_s:.0f} s while waiting for {what} (at {now!r})\n{tail}")


def wait_exit_progressing(proc: subprocess.Popen, log: Path, stall_s: float = STALL_S) -> None:
    """Wait for a flow that should end by itself (KINESIS_STOP_AT_END) and succeed; its log is its progress."""
    wait_progressing(lambda: proc.poll() is not None, lambda: log_size(log), "the flow to exit", log, stall_s)
    assert proc.returncode == 0, f"the flow exited with {proc.returncode}; log tail:\n{log.read_text()[-3000:]}"
