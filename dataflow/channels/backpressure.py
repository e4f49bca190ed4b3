"""How full the enrichment buffers of this process are, so the Kinesis reader can hold back.

Blocking inside a Bytewax step stops its worker from closing epochs, so no checkpoint is taken while it
blocks. Instead, every enrichment engine publishes how many reviews it holds (handed over, plus those its logics
keep queued for lack of room) and how many it may hold, and the source reads only as many records as there is
room for (none while the buffers are full). What does not fit waits in the enrichment logic's queue, in
Bytewax state (dataflow/enrich/step.py); only reviews read in another process can fill that queue to its cap.

Room is for the shards this process enriches. The enrichment step is keyed by shard, and Bytewax may route a
shard to a worker of another process: holding back such a shard because this process's engines are full
starved that other worker while its share of the quota went unused (2 processes x 2 workers indexed 546
reviews/min where 120 RPM admits 960). So the source notes the shards it reads (`note_read`), the enrichment
step the shards it enriches (`note_enriched`), and `room_for` a shard read here for a while but never
enriched here is unlimited: its own process's step bounds it (the queue cap and the epoch, step.py).

`freed()` counts the times room was freed, so a source held back can tell a buffer that drains (look again
soon) from one waiting on a slow model (look again later: waiting must not cost CPU).

One gauge per built flow, created by `dataflow.pipeline.build_flow` and given to the enrichment engines (which
write it) and the Kinesis source (which reads it).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

REMOTE_AFTER_S = 2.0  # a shard read this long ago and still not enriched here is enriched in another process


class BufferGauge:
    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._lock = threading.Lock()
        self._held: dict[int, int] = {}
        self._limits: dict[int, int] = {}
        self._freed = 0
        self._clock = clock
        self._first_read: dict[str, float] = {}
        self._enriched_here: set[str] = set()

    def register(self, owner: int, limit: int) -> None:
        with self._lock:
            self._limits[owner] = limit
            self._held.setdefault(owner, 0)

    def unregister(self, owner: int) -> None:
        with self._lock:
            self._limits.pop(owner, None)
            self._held.pop(owner, None)

    def set(self, owner: int, held: int) -> None:
        with self._lock:
            if owner in self._limits:
                if held < self._held.get(owner, 0):
                    self._freed += 1
                self._held[owner] = held

    def freed(self) -> int:
        """How many times an owner's holding went down: changes whenever room is freed."""
        with self._lock:
            return self._freed

    def holding(self) -> bool:
        """Whether any enrichment buffer of this process still holds reviews (queued, in flight or held back)."""
        with self._lock:
            return any(self._held.values())

    def note_read(self, shard_id: str) -> None:
        """The source of this process emitted records of `shard_id`."""
        with self._lock:
            self._first_read.setdefault(shard_id, self._clock())

    def note_enriched(self, shard_id: str) -> None:
        """An enrichment step of this process received reviews of `shard_id`."""
        with self._lock:
            self._enriched_here.add(shard_id)

    def room_for(self, shard_id: str) -> int | None:
        """Room for more records of `shard_id`: `room()`, or None (no limit here) for a shard enriched elsewhere."""
        with self._lock:
            first = self._first_read.get(shard_id)
            remote = first is not None and shard_id not in self._enriched_here
            if remote and self._clock() - first >= REMOTE_AFTER_S:
                return None
        return self.room()

    def room(self) -> int | None:
        """Reviews the process can still take in; None when no enrichment buffer is registered."""
        with self._lock:
            if not self._limits:
                return None
            return max(0, sum(self._limits.values()) - sum(self._held.values()))
