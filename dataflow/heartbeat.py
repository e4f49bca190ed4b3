"""Liveness heartbeat: proof that every worker keeps polling its source, for a Kubernetes exec probe.

Each worker thread calls `Heartbeat.beat()` from its Kinesis partitions' `next_batch` (called even when idle or held
back by backpressure). At most once per second, whichever thread beats writes the *oldest* last beat of
all threads to HEARTBEAT_FILE, so one stuck worker ages the file even while the others keep beating; if
all are stuck nothing writes and the file ages too. `python -m dataflow.heartbeat FILE MAX_AGE_S` exits 1
when the recorded beat is older than MAX_AGE_S (or missing), 0 otherwise. `dataflow.pipeline.build_flow`
creates the one `Heartbeat` of a flow from HEARTBEAT_FILE (off when unset) and gives it to the source.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

WRITE_EVERY_S = 1.0


class Heartbeat:
    """Per-thread last beats, written out (atomically, rate-limited) as the oldest of them."""

    def __init__(self, path: str | None, clock: Callable[[], float] = time.time) -> None:
        self.path = Path(path) if path else None
        self._clock = clock
        self._beats: dict[int, float] = {}
        self._written = 0.0
        self._lock = threading.Lock()

    def beat(self) -> None:
        if self.path is None:
            return
        now = self._clock()
        self._beats[threading.get_ident()] = now
        if now - self._written < WRITE_EVERY_S or not self._lock.acquire(blocking=False):
            return
        try:
            self._written = now
            tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}")
            tmp.write_text(f"{min(self._beats.values()):.3f}\n")
            os.replace(tmp, self.path)
        except OSError:
            pass  # a full or read-only /tmp must not stop the flow; the probe will report the stale beat
        finally:
            self._lock.release()


def age_s(path: str, now: float | None = None) -> float | None:
    """Seconds since the oldest worker's last beat recorded in `path`; None when there is none."""
    try:
        stamp = float(Path(path).read_text().strip())
    except (OSError, ValueError):
        return None
    return (time.time() if now is None else now) - stamp


def main(argv: list[str]) -> int:
    """`FILE MAX_AGE_S [BACKUP_MAX_AGE_S]`: with the third, `FILE.backup` (the recovery supervisor's: when the
    least recently current partition's stored copy was last current) must be younger too, when it exists."""
    if len(argv) not in (2, 3):
        print("usage: python -m dataflow.heartbeat FILE MAX_AGE_S [BACKUP_MAX_AGE_S]", file=sys.stderr)
        return 2
    path, max_age = argv[0], float(argv[1])
    if len(argv) == 3 and Path(f"{path}.backup").exists():
        backup_age = age_s(f"{path}.backup")
        if backup_age is None or backup_age > float(argv[2]):
            print(f"heartbeat.backup_stale file={path}.backup age_s={backup_age} max_age_s={float(argv[2]):.0f}")
            return 1
    age = age_s(path)
    if age is None:
        print(f"heartbeat.missing file={path}")
        return 1
    if age > max_age:
        print(f"heartbeat.stale file={path} age_s={age:.0f} max_age_s={max_age:.0f}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
