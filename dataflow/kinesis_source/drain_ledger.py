"""Which shards the partitions of one process have drained, and whether they have all caught up.

A child shard may be read only after its parents are drained. When a parent is owned by another partition
of the same process, this ledger knows exactly; a parent owned by another process is only known to be
closed (see partition.py). With KINESIS_STOP_AT_END the partitions of a process stop together, so the
ledger also records which of them have caught up. One ledger per `KinesisSource` (one per process: Bytewax
builds the flow once per process and every worker thread builds its partitions from the same source), handed
to each partition by `KinesisSource.build_part`.
"""

from __future__ import annotations

import threading


class DrainLedger:
    """Which shards are drained, shared by the partitions of one process (they may run on any worker)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._drained: set[tuple[str, str]] = set()
        self._local_parts: set[tuple[str, int]] = set()
        self._caught_up: dict[tuple[str, int], bool] = {}

    def register(self, stream: str, index: int) -> None:
        with self._lock:
            self._local_parts.add((stream, index))

    def owns(self, stream: str, index: int) -> bool:
        with self._lock:
            return (stream, index) in self._local_parts

    def mark_drained(self, stream: str, shard_id: str) -> None:
        with self._lock:
            self._drained.add((stream, shard_id))

    def forget(self, stream: str, shard_id: str) -> None:
        """The shard left the listing: nothing will ask about it again."""
        with self._lock:
            self._drained.discard((stream, shard_id))

    def is_drained(self, stream: str, shard_id: str) -> bool:
        with self._lock:
            return (stream, shard_id) in self._drained

    def set_caught_up(self, stream: str, index: int, caught_up: bool) -> None:
        with self._lock:
            self._caught_up[(stream, index)] = caught_up

    def all_caught_up(self, stream: str) -> bool:
        """True when every partition of this process reading `stream` has caught up."""
        with self._lock:
            parts = [p for p in self._local_parts if p[0] == stream]
            return all(self._caught_up.get(p, False) for p in parts)
