"""The container's main process: run the dataflow, back its partitions up soon after each snapshot (and at
least once per snapshot interval, so idle partitions' as-of moves with the set's) and once more when it exits,
and hand Kubernetes' stop signal on as an interrupt.

Why a supervisor rather than `exec`: as PID 1 the Python dataflow ignored SIGTERM (a PID 1 without a handler
does), so every stop waited out the grace period and ended in SIGKILL; and the last state must reach the store
after the dataflow has written it. The heartbeat file is removed first: it lives in a volume that outlives a
container restart, and a stale beat would pass the restarted container's startup probe before it did anything.
"""

from __future__ import annotations

import logging
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from types import FrameType

from dataflow.recovery.backup import Backup

log = logging.getLogger(__name__)


def supervise(
    command: Sequence[str],
    backup: Backup | None,
    interval_s: float,
    heartbeat_file: str | None = None,
    before_start: Callable[[], object] | None = None,
) -> int:
    """Run `command` to its end and return its exit code; `before_start` (align.py) runs first."""
    if heartbeat_file:
        Path(heartbeat_file).unlink(missing_ok=True)
    if before_start is not None:
        before_start()
    child = subprocess.Popen(list(command))

    stopping = threading.Event()

    def interrupt(signum: int, _frame: FrameType | None) -> None:
        stopping.set()
        log.info("recovery.stopping signal=%s", signal.Signals(signum).name)
        if child.poll() is None:
            child.send_signal(signal.SIGINT)  # Bytewax stops its workers on an interrupt

    signal.signal(signal.SIGTERM, interrupt)
    signal.signal(signal.SIGINT, interrupt)
    done = threading.Event()

    look_s = min(1.0, interval_s / 4)

    def loop() -> None:
        assert backup is not None
        last = time.monotonic()
        while not done.wait(look_s):
            if backup.changed() or time.monotonic() - last >= interval_s:
                backup.run_once()
                last = time.monotonic()

    thread = threading.Thread(target=loop, name="recovery-backup", daemon=True) if backup else None
    if thread:
        thread.start()
    code = child.wait()
    done.set()
    if thread and backup:
        thread.join()
        backup.run_once()  # what the dataflow wrote last
        log.info(
            "recovery.final_backup store=%s uploads=%d failures=%d exit_code=%d",
            backup.store.url,
            backup.uploads,
            backup.failures,
            code,
        )
    # Asked to stop, the dataflow ends on the interrupt (a non-zero code): that is a clean stop, not a failure.
    return 0 if stopping.is_set() and code != 0 else code
