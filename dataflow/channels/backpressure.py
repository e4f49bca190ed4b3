"""How full the enrichment buffers of this process are, so the Kinesis reader can hold back.

Blocking inside a Bytewax step stops its worker from closing epochs, so no checkpoint is taken while it
blocks. Instead, every enrichment engine publishes how many reviews it holds (handed over, plus those its logics
keep queued for lack of room) and how many it may hold, and the source reads only as many records as there is
room for (none while the buffers are full). What does not fit waits in the enrichment logic's queue, in
Bytewax state (dataflow/enrich/step.py); only reviews read in another process can fill that queue to its cap.

Room is per shard, for the engine that enriches it. The enrichment step is keyed by shard, and Bytewax routes
each shard to one worker, maybe of another process: holding back every shard because one engine is full
starved the other workers while their shares of the quota went unused (2 processes x 2 workers indexed 546
reviews/min where 120 RPM admits 960). So the source notes the shards it reads (`note_read`), the enrichment
step which engine enriches a shard (`note_enriched`); `room_for` a shard is that engine's room, and for a shard
read here for a while but never enriched here it is what an idle engine here would take, whatever this process
holds: its own process's step bounds the rest (the queue cap and the epoch, step.py).

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
PROBE_RECORDS = 1  # read per poll of a shard whose local key is still searched for (routes.py)


class BufferGauge:
    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._lock = threading.Lock()
        self._held: dict[int, int] = {}
        self._limits: dict[int, int] = {}
        self._freed = 0
        self._clock = clock
        self._first_read: dict[str, float] = {}
        self._enricher: dict[str, int] = {}  # shard -> the owner (engine) that enriches it in this process
        self._searching: Callable[[str], bool] = lambda _shard: False

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

    def note_enriched(self, shard_id: str, owner: int) -> None:
        """The enrichment engine `owner` of this process received reviews of `shard_id`."""
        with self._lock:
            self._enricher[shard_id] = owner

    def enricher_of(self, shard_id: str) -> int | None:
        """The owner (engine) that enriches `shard_id` here, if known."""
        with self._lock:
            return self._enricher.get(shard_id)

    def route_search(self, searching: Callable[[str], bool]) -> None:
        """Shards are routed by local key (routes.py `ShardRoutes.searching`): while a shard's key is searched
        for, the source reads PROBE_RECORDS of it per poll. A try needs one review, and every review read meanwhile
        may reach another process: read at an idle engine's room, ~1,000 reviews went there during the tries, that
        process's engine was throttled with the others in the first minute and its pacer kept a share of the
        quota after it ran dry (2 x 2 on 2 shards: 80% of the quota, BENCHMARKS.md "Uneven work"). At 10 records
        per poll, ~100 reviews still went there and took ~10% of the start's burst (3 shards: 87-88%); at one, a
        request or two (90%)."""
        with self._lock:
            self._searching = searching

    def room_for(self, shard_id: str) -> int | None:
        """Room for more records of `shard_id`: the room of the engine that enriches it here (one worker's full
        buffer must not starve another worker's shard); an idle engine's limit for its first read, `room()` after
        it while the engine is not known yet, and an idle engine's limit again for a shard enriched in another
        process (None without any engine registered); PROBE_RECORDS while its local key is searched for."""
        if self._searching(shard_id):  # outside the lock: the routes have a lock of their own
            with self._lock:
                return min(PROBE_RECORDS, max(self._limits.values())) if self._limits else None
        with self._lock:
            owner = self._enricher.get(shard_id)
            if owner is not None and owner in self._limits:
                return max(0, self._limits[owner] - self._held.get(owner, 0))
            first = self._first_read.get(shard_id)
            if owner is None and first is None:
                # Never read here: one read as large as an idle engine's, whatever this process holds. Bounded by
                # this process's room, a shard was not read for minutes while another shard kept a local engine
                # full (2 x 2 on 4 shards), and its engine then started late into a quota the others had filled.
                return max(self._limits.values(), default=None)
            if owner is None and first is not None and self._clock() - first >= REMOTE_AFTER_S:
                # As much as an idle engine here would take, whatever this process holds: unlimited, a reader
                # sent its process's whole backlog at once and the enriching step held up the epoch for it.
                return max(self._limits.values(), default=None)
        return self.room()

    def room(self) -> int | None:
        """Reviews the process can still take in; None when no enrichment buffer is registered."""
        with self._lock:
            if not self._limits:
                return None
            return max(0, sum(self._limits.values()) - sum(self._held.values()))
