"""The container's main process: a stale heartbeat goes first, a stop signal reaches the dataflow as an
interrupt (also during the start), the partitions are stored once more after it exits (retried; the exit code
says whether it worked), a refused write stops it, and stale backups fail readiness."""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from pathlib import Path

from dataflow import heartbeat
from dataflow.recovery.store import Fenced
from dataflow.recovery.supervisor import Exit, supervise

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
        self.complete = True
        self.store = type("S", (), {"url": "s3://b/p"})()

    def publish(self) -> None:
        pass

    def oldest_current(self) -> float:
        return time.time()

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


class FailingBackup(CountingBackup):
    """Every pass fails (the store unreachable): nothing is current after the dataflow exits."""

    def run_once(self) -> int:
        self.passes += 1
        self.complete = False
        return 0

    def oldest_current(self) -> float:
        return time.time() - 3600  # an hour since every copy was current


class FencedBackup(CountingBackup):
    def run_once(self) -> int:
        raise Fenced("recovery.fenced object=s3://b/p/part-0.sqlite3 was written by another pod")


def test_a_failed_final_backup_and_a_fence_are_the_exit_code_and_readiness_fails(tmp_path: Path) -> None:
    beat = tmp_path / "heartbeat"
    quick = [sys.executable, "-c", "import time; time.sleep(0.6)"]
    failing = FailingBackup()
    code = supervise(quick, failing, interval_s=0.1, heartbeat_file=str(beat), final_s=1.5)  # type: ignore[arg-type]
    assert code == Exit.FINAL_BACKUP_FAILED and failing.passes >= 3, "retried within the grace period"
    assert heartbeat.main([str(beat), "60", "600"]) == 1, "backups an hour old: not ready"
    beat.write_text(f"{time.time():.3f}\n")
    assert heartbeat.main([str(beat), "60"]) == 0, "without the bound, the workers' beat alone"
    slow = [sys.executable, "-c", "import time; time.sleep(30)"]
    t0 = time.monotonic()
    assert supervise(slow, FencedBackup(), interval_s=0.1) == Exit.FENCED  # type: ignore[arg-type]
    assert time.monotonic() - t0 < 10, "a fenced pod stops its dataflow"
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.default_int_handler)


def test_a_stop_during_the_start_is_a_clean_stop(tmp_path: Path) -> None:
    started = tmp_path / "started"
    code = supervise(
        [sys.executable, "-c", CHILD, str(started)],
        CountingBackup(),  # type: ignore[arg-type]
        interval_s=0.1,
        before_start=lambda: os.kill(os.getpid(), signal.SIGTERM),
    )
    assert code == 0 and not started.exists(), "the handler was in place: the dataflow never started"
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.default_int_handler)
