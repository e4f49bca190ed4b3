"""The container's main process: run the dataflow, back its partitions up soon after each snapshot and once more
when it exits, and hand Kubernetes' stop signal on as an interrupt.

Why a supervisor rather than `exec`: as PID 1 the Python dataflow ignored SIGTERM (a PID 1 without a handler
does), so every stop waited out the grace period and ended in SIGKILL; and the last state must reach the store
after the dataflow has written it. The signal handlers go in first, so a stop during the start (align) is a
clean stop too. The heartbeat file is removed first: it lives in a volume that outlives a container restart,
and a stale beat would pass the restarted container's startup probe before it did anything.

Backups are visible: `<HEARTBEAT_FILE>.backup` holds when the least recently current partition's stored copy
was last current (the readiness probe fails past RECOVERY_BACKUP_MAX_AGE_S, dataflow/heartbeat.py), and the
metrics say it per partition. The final backup is retried for up to `final_s`; the exit code says how it went.
A refused write (store.Fenced) stops the dataflow: another pod owns the store's objects now.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Sequence
from enum import IntEnum
from pathlib import Path
from types import FrameType

from dataflow.recovery.backup import Backup
from dataflow.recovery.store import Fenced

log = logging.getLogger(__name__)


class Exit(IntEnum):
    """The supervisor's exit codes beyond the dataflow's own (0 on a requested stop)."""

    FINAL_BACKUP_FAILED = 3  # the dataflow ended, its last state did not reach the store
    FENCED = 4  # another pod wrote the store's objects: this one stopped writing


def backup_beat(heartbeat_file: str) -> Path:
    return Path(f"{heartbeat_file}.backup")


def _write_beat(path: Path, when: float | None) -> None:
    if when is None:
        return
    try:
        tmp = path.with_name(f".{path.name}.{os.getpid()}")
        tmp.write_text(f"{when:.3f}\n")
        os.replace(tmp, path)
    except OSError:
        pass  # the probe reports the stale file


def supervise(
    command: Sequence[str],
    backup: Backup | None,
    interval_s: float,
    heartbeat_file: str | None = None,
    before_start: Callable[[], object] | None = None,
    final_s: float = 30.0,
) -> int:
    """Run `command` to its end and return its exit code (or an `Exit`); `before_start` (align.py) runs first."""
    beat = backup_beat(heartbeat_file) if heartbeat_file else None
    if heartbeat_file:
        Path(heartbeat_file).unlink(missing_ok=True)
        assert beat is not None
        beat.unlink(missing_ok=True)
    stopping = threading.Event()
    children: list[subprocess.Popen] = []

    def interrupt(signum: int, _frame: FrameType | None) -> None:
        stopping.set()
        log.info("recovery.stopping signal=%s", signal.Signals(signum).name)
        for child in children:
            if child.poll() is None:
                child.send_signal(signal.SIGINT)  # Bytewax stops its workers on an interrupt

    signal.signal(signal.SIGTERM, interrupt)
    signal.signal(signal.SIGINT, interrupt)
    if before_start is not None:
        before_start()
    if stopping.is_set():
        log.info("recovery.stopped_before_start")
        return 0
    child = subprocess.Popen(list(command))
    children.append(child)
    if stopping.is_set() and child.poll() is None:
        child.send_signal(signal.SIGINT)
    done = threading.Event()
    fenced: list[Fenced] = []
    look_s = min(1.0, interval_s / 4)

    def loop() -> None:
        assert backup is not None
        last = time.monotonic()
        while not done.wait(look_s):
            try:
                if backup.changed() or time.monotonic() - last >= interval_s:
                    backup.run_once()
                    last = time.monotonic()
            except Fenced as err:
                fenced.append(err)
                log.error("%s", err)
                if child.poll() is None:
                    child.send_signal(signal.SIGINT)
                return
            backup.publish()
            if beat is not None:
                _write_beat(beat, backup.oldest_current())

    thread = threading.Thread(target=loop, name="recovery-backup", daemon=True) if backup else None
    if thread:
        thread.start()
    code = child.wait()
    done.set()
    if thread and backup:
        thread.join()
        if fenced:
            return Exit.FENCED
        try:
            complete = final_backup(backup, final_s)
        except Fenced as err:
            log.error("%s", err)
            return Exit.FENCED
        log.info(
            "recovery.final_backup store=%s complete=%s uploads=%d failures=%d exit_code=%d",
            backup.store.url,
            complete,
            backup.uploads,
            backup.failures,
            code,
        )
        if not complete:
            return Exit.FINAL_BACKUP_FAILED
    # Asked to stop, the dataflow ends on the interrupt (a non-zero code): that is a clean stop, not a failure.
    return 0 if stopping.is_set() and code != 0 else code


def final_backup(backup: Backup, final_s: float, sleep: Callable[[float], None] = time.sleep) -> bool:
    """What the dataflow wrote last, retried (1 s apart) until a pass leaves every copy current or `final_s`."""
    deadline = time.monotonic() + final_s
    while True:
        backup.run_once()
        if backup.complete or time.monotonic() >= deadline:
            return backup.complete
        sleep(1.0)
