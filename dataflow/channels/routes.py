"""Which key a shard's reviews reach the enrichment step under, so they are enriched in the process that read them.

Bytewax sends a stateful step's keys to workers by a hash of the key, over every worker of the cluster, and
assigns the source's partitions by another rule. Keyed by shard id alone, a shard read in one process was often
enriched in the other: its reader could not see that engine's room, so the enriching step's queue passed its cap
and waited there, holding the epoch of the whole cluster and emitting what it finished meanwhile in lumps
(2 processes x 2 workers on 2 shards: documents per minute 40-129% of what the quota admits, BENCHMARKS.md
"Uneven work"). Bytewax has no public way to send a key to a chosen worker, and its hash is private, so each
process finds a local key by trying:

- the keyer (`key_for`, in the worker that read the review) sends each review of the search under the next
  untried key: the shard id, then `<shard>@1`, `<shard>@2`, ...;
- the enrichment step reports the first key of each of its logics (`arrived`); a key that arrives here is local,
  and the shard keeps it for the rest of the run (the first local key seen wins, a late one included);
- once ENRICH_LOCAL_KEY_TRIES keys were handed out and none arrived here within PROBE_S of the last, the shard
  goes back to its plain id for good and the remote-read bounds take over (backpressure.py `room_for`, the
  queue cap in enrich/step.py).

With P processes a try is local with chance 1/P (a key's worker is a hash), so 16 tries miss with chance
(1 - 1/P)^16: 2^-16 at 2 processes. One process finds its first key local, so its keys stay the shard ids.
Nothing depends on it for correctness: the step's state is per key, whichever key a review travels under, and
a review is enriched and emitted by whichever worker its key reaches.

While a shard's key is searched for (`searching`), its source reads a probe's worth of it per poll
(backpressure.py `route_search`), so a local key arrives before the next try: a search takes about P polls
(5 per second), and what is read meanwhile may reach another process.

When to route (ENRICH_LOCAL_KEY_TRIES, default `auto`): at 2 processes x 2 workers, routing used 96% of the quota on
2 shards (84% keyed by shard id) and 94% on 4 shards, as keying by shard id did, BENCHMARKS.md "Uneven work" (a key
per second, before: 90% there). So `auto` routes (LOCAL_KEY_TRIES) when the stream has fewer open shards than the
cluster has workers and there is more than one process, and keys by shard id otherwise. It decides once, at the
source's first listing of the stream (`stream_listed`), in every process alike (each lists the whole stream and
reads the same command line, dataflow/cluster.py; two that differed, as during a split, would cost throughput, not
correctness); a reshard is judged again at the next start. Until then, and in a flow whose source never lists
(tests), it keys by shard id. A number pins it: `1` never routes. Day 2 passes with it on.

One per built flow, created by `dataflow.pipeline.build_flow`: told the stream's width by the source, written by
the enrichment step, read by the keyer.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from dataflow.cluster import ClusterShape

log = logging.getLogger(__name__)

LOCAL_KEY_TRIES = 16  # `auto`'s tries: 16 keys all land in the other of 2 processes with chance 2^-16
PROBE_S = 1.0  # a key's reviews reach a step of this process in milliseconds when it is local
SEPARATOR = "@"  # Kinesis shard ids are [a-zA-Z0-9_.-]: a key with it is never a plain shard id


def routed_key(shard_id: str, attempt: int) -> str:
    return shard_id if attempt == 0 else f"{shard_id}{SEPARATOR}{attempt}"


@dataclass
class _Route:
    since: float  # when the last try's key was handed out
    tried: int = 0  # keys handed out: routed_key(shard, 0 .. tried - 1)
    pinned: str | None = None  # a key seen arriving here
    gave_up: bool = False


class ShardRoutes:
    """The key each shard read here is enriched under, found by trying keys until one arrives in this process."""

    def __init__(
        self,
        tries: int | None = LOCAL_KEY_TRIES,
        shape: ClusterShape | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """`tries` None is `auto`: decided by `stream_listed` from the open shards and the cluster's `shape`."""
        self._tries = tries
        self._shape = shape or ClusterShape()
        self._lock = threading.Lock()
        self._routes: dict[str, _Route] = {}
        self._clock = clock

    @property
    def tries(self) -> int:
        """Keys tried per shard: 1 keys by shard id (also while `auto` has not decided)."""
        return self._tries or 1

    def stream_listed(self, open_shards: int) -> None:
        """The source listed the stream (called after every listing): `auto` decides at the first one."""
        with self._lock:
            if self._tries is not None:
                return
            shape = self._shape
            route = shape.processes > 1 and open_shards < shape.workers
            self._tries = LOCAL_KEY_TRIES if route else 1
        log.info(
            "enrich.route_auto open_shards=%d processes=%d workers=%d tries=%d: %s",
            open_shards,
            shape.processes,
            shape.workers,
            self._tries,
            "each shard enriched in the process that reads it" if route else "keyed by shard id",
        )

    def key_for(self, shard_id: str) -> str:
        """The key to send a review of `shard_id` under (called for every review, in the worker that read it).

        While the search runs, each review carries the next untried key: a local key arrives in milliseconds,
        before the next probe read (backpressure.py), so a search costs about P reads. One key per PROBE_S cost
        seconds per try, and the shard was read a probe at a time all along: after a restart its replay crawled
        for 10-16 s at 4 processes, and a clean stop meanwhile left it to be asked for again."""
        with self._lock:
            now = self._clock()
            route = self._routes.get(shard_id)
            if route is None:
                route = self._routes[shard_id] = _Route(since=now)
            if route.pinned is not None:
                return route.pinned
            if route.gave_up or self.tries <= 1:
                return shard_id
            if route.tried < self.tries:
                route.tried += 1
                route.since = now
                return routed_key(shard_id, route.tried - 1)
            if now - route.since >= PROBE_S:  # every key tried, and the last one's review did not arrive here
                route.gave_up = True
                log.warning(
                    "enrich.route_remote shard=%s tries=%d: enriched in another process, read with the remote bounds",
                    shard_id,
                    self.tries,
                )
            return shard_id

    def arrived(self, shard_id: str, key: str) -> None:
        """An enrichment step of this process received reviews of `shard_id` under `key`: that key is local."""
        with self._lock:
            route = self._routes.get(shard_id)
            if route is None:
                return  # read in another process, whose keyer tries keys of its own
            if route.pinned is None:
                route.pinned = key
                if route.tried > 1 or key != shard_id:  # the shard id arriving late was a search too
                    log.info("enrich.route_local shard=%s key=%s tries=%d", shard_id, key, route.tried)

    def searching(self, shard_id: str) -> bool:
        """Whether the keyer still looks for `shard_id`'s local key (also before its first review): while it does,
        the source reads only a probe's worth of the shard (backpressure.py `route_search`)."""
        if self.tries <= 1:
            return False
        with self._lock:
            route = self._routes.get(shard_id)
            return route is None or (route.pinned is None and not route.gave_up)

    def pinned(self, shard_id: str) -> str | None:
        """The local key of `shard_id`, once one arrived here."""
        with self._lock:
            route = self._routes.get(shard_id)
            return route.pinned if route else None
