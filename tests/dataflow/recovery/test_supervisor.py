"""The container's main process: a stale heartbeat goes first, a stop signal reaches the dataflow as an
interrupt, and the partitions are stored once more after it exits."""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from pathlib import Path

from dataflow.recovery.supervisor import supervise

CHILD = """
import signal, sys, time
signal.signal(signal.SIGINT, lambda *_: sys.exit(3))
open(sys.argv[1], "w").write("started")
time.sleep(30)
"""


class CountingBackup:
    def __init__(self) -> None:
        self.passes = 0
        self.uploads = self.failures = 0
        self.store = type("S", (), {"url": "s3://b/p"})()

    def changed(self) -> bool:
        return False  # nothing written: passes come from the interval alone

    def run_once(self) -> int:
        self.passes += 1
        return 0


def test_stop_signal_interrupts_the_child_then_a_last_backup(tmp_path: Path) -> None:
    beat = tmp_path / "heartbeat"
    beat.write_text("1\n")  # left by the container's previous run
    started = tmp_path / "started"
    backup = CountingBackup()
    aligned: list[bool] = []

    def stop_when_started() -> None:
        while not started.exists():
            time.sleep(0.02)
        time.sleep(0.3)
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=stop_when_started, daemon=True).start()
    t0 = time.monotonic()
    code = supervise(
        [sys.executable, "-c", CHILD, str(started)],
        backup,  # type: ignore[arg-type]
        interval_s=0.1,
        heartbeat_file=str(beat),
        before_start=lambda: aligned.append(not beat.exists()),
    )
    assert aligned == [True], "the stale beat is removed before anything else"
    assert code == 0, "a requested stop is a clean exit"
    assert time.monotonic() - t0 < 10, "the child got the interrupt, not the grace period's SIGKILL"
    assert backup.passes >= 2  # periodic passes, then the last one after the child ended
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.default_int_handler)
