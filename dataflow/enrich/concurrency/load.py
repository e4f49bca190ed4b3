"""Requests in flight across the engines of one process: what a queueing server sees of this process.

Each worker has its own window, but two workers of a process sending to one single-slot server queue behind each
other: a worker's own in-flight count explains only part of its latency, so the latency fit (latency_fit.py)
read the other worker's queue as noise and let each window settle at 2 (4 in flight at one slot, where one
window's worth had 2). The registry creates one `ProcessLoad` and hands it to every engine of its flow.
"""

from __future__ import annotations

import threading


class ProcessLoad:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._in_flight = 0

    def started(self) -> int:
        """One more request in flight; returns the count with it included."""
        with self._lock:
            self._in_flight += 1
            return self._in_flight

    def finished(self) -> None:
        with self._lock:
            self._in_flight -= 1
