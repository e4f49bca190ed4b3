"""The shard routes: each shard read here finds a key that is enriched here, and never keeps one that is not."""

from __future__ import annotations

import heapq
import logging
import zlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dataflow.channels.routes import LOCAL_KEY_TRIES, PROBE_S, ShardRoutes, routed_key
from dataflow.cluster import ClusterShape

SHARD = "shardId-000000000001"


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_one_process_keeps_the_shard_id_as_its_key() -> None:
    clock = Clock()
    routes = ShardRoutes(clock=clock)
    assert routes.key_for(SHARD) == SHARD
    routes.arrived(SHARD, SHARD)
    clock.now += 60
    assert routes.key_for(SHARD) == SHARD and routes.pinned(SHARD) == SHARD


def test_each_review_of_the_search_tries_the_next_key_until_one_arrives_here(caplog) -> None:
    caplog.set_level(logging.INFO, "dataflow.channels.routes")
    clock = Clock()
    routes = ShardRoutes(clock=clock)
    assert routes.key_for(SHARD) == SHARD  # Bytewax sends it to the other process: it never arrives here
    clock.now += 0.2  # the next probe read: a local key would have arrived by now
    assert routes.key_for(SHARD) == routed_key(SHARD, 1) == f"{SHARD}@1"
    clock.now += 0.2
    assert routes.key_for(SHARD) == f"{SHARD}@2"
    routes.arrived(SHARD, f"{SHARD}@2")
    clock.now += 600
    assert routes.key_for(SHARD) == f"{SHARD}@2"  # for good
    assert not routes.searching(SHARD)
    assert "enrich.route_local shard=shardId-000000000001 key=shardId-000000000001@2 tries=3" in caplog.text


def test_a_local_key_that_arrives_late_is_kept_even_after_the_keyer_moved_on(caplog) -> None:
    caplog.set_level(logging.INFO, "dataflow.channels.routes")
    clock = Clock()
    routes = ShardRoutes(clock=clock)
    routes.key_for(SHARD)  # its worker was busy: this review has not arrived when the next one is read
    assert routes.key_for(SHARD) == f"{SHARD}@1"
    routes.arrived(SHARD, SHARD)
    assert routes.key_for(SHARD) == SHARD
    routes.arrived(SHARD, f"{SHARD}@1")  # a second local key changes nothing: the first one seen wins
    assert routes.key_for(SHARD) == SHARD
    assert "enrich.route_local shard=shardId-000000000001 key=shardId-000000000001 tries=2" in caplog.text


def test_after_its_tries_and_a_probe_interval_a_shard_goes_back_to_its_id_for_good(caplog) -> None:
    clock = Clock()
    routes = ShardRoutes(tries=3, clock=clock)
    keys = [routes.key_for(SHARD) for _ in range(5)]
    assert keys == [SHARD, f"{SHARD}@1", f"{SHARD}@2", SHARD, SHARD]
    assert routes.searching(SHARD)  # the last try's review may still be on its way here
    clock.now += PROBE_S
    assert routes.key_for(SHARD) == SHARD and not routes.searching(SHARD)
    clock.now += 600
    assert routes.key_for(SHARD) == SHARD
    assert caplog.text.count("enrich.route_remote") == 1


def test_a_key_of_a_shard_read_in_another_process_is_ignored() -> None:
    routes = ShardRoutes(clock=Clock())
    routes.arrived(SHARD, f"{SHARD}@3")  # that process's keyer tried it; this one never handed it out
    assert routes.pinned(SHARD) is None and routes.key_for(SHARD) == SHARD


@settings(max_examples=300, deadline=None)
@given(
    processes=st.integers(1, 4),
    reader=st.integers(0, 3),
    seed=st.integers(0, 2**32 - 1),
    tries=st.integers(1, 16),
    gaps=st.lists(st.floats(0.01, 0.8), min_size=1, max_size=200),
    delays=st.lists(st.floats(0.0, 1.5), min_size=1, max_size=50),
)
def test_a_pinned_key_is_always_local_and_a_local_key_is_found(
    processes: int, reader: int, seed: int, tries: int, gaps: list[float], delays: list[float]
) -> None:
    """A simulated cluster: Bytewax sends each key to a process by a hash (any function of the key), a key's
    reviews arrive there after a delay (sometimes longer than the next read, or than PROBE_S: a busy worker), and
    each process's step reports a key the first time it arrives. Whatever the interleaving, the reader's routes
    never keep a key that goes to another process; once every review has arrived, a shard that tried a local key
    keeps one; and when each review arrives before the next is read, it keeps the first local key among its tries,
    or, once all were tried and PROBE_S passed, the shard id."""
    reader %= processes

    def process_of(key: str) -> int:
        return zlib.crc32(f"{seed}:{key}".encode()) % processes

    clock = Clock()
    routes = [ShardRoutes(tries=tries, clock=clock) for _ in range(processes)]
    arrivals: list[tuple[float, int, str]] = []  # (time, process, key): a key on its way
    seen: set[str] = set()
    tried: set[str] = set()

    def deliver(until: float) -> None:
        while arrivals and arrivals[0][0] <= until:
            at, process, key = heapq.heappop(arrivals)
            clock.now = max(clock.now, at)
            if key not in seen:  # a logic reports its key once, on its first batch
                seen.add(key)
                routes[process].arrived(SHARD, key)

    # Read at random gaps; each review's delivery delay is drawn from `delays` in turn.
    for reads, gap in enumerate(gaps):
        deliver(clock.now + gap)
        clock.now += gap
        key = routes[reader].key_for(SHARD)
        tried.add(key)
        pinned = routes[reader].pinned(SHARD)
        assert pinned is None or process_of(pinned) == reader, "kept a key enriched in another process"
        assert pinned is None or key == pinned
        heapq.heappush(arrivals, (clock.now + delays[reads % len(delays)], process_of(key), key))
    deliver(float("inf"))
    pinned = routes[reader].pinned(SHARD)
    assert pinned is None or process_of(pinned) == reader
    # Liveness: a local key tried is a local key kept.
    assert (pinned is not None) == any(process_of(key) == reader for key in tried)
    # Each review arrived before the next read: the first local try, or the shard id after all tries.
    if max(delays) < min(gaps) and len(gaps) >= tries:
        clock.now += PROBE_S
        local = [routed_key(SHARD, n) for n in range(tries) if process_of(routed_key(SHARD, n)) == reader]
        expected = local[0] if local else SHARD
        assert routes[reader].key_for(SHARD) == expected
        assert (routes[reader].pinned(SHARD) == expected) == bool(local)
        assert not routes[reader].searching(SHARD)


@pytest.mark.parametrize(
    ("shape", "open_shards", "tries"),
    [
        (ClusterShape(2, 2), 2, LOCAL_KEY_TRIES),  # the default stack on a 2-shard stream: half the workers idle
        (ClusterShape(2, 2), 3, LOCAL_KEY_TRIES),
        (ClusterShape(2, 2), 4, 1),  # a shard per worker: keyed by shard id used more of the quota (94% vs 90%)
        (ClusterShape(2, 2), 8, 1),
        (ClusterShape(4, 2), 4, LOCAL_KEY_TRIES),
        (ClusterShape(1, 4), 1, 1),  # one process: every key is local, nothing to find
    ],
)
def test_auto_routes_when_the_stream_has_fewer_shards_than_the_cluster_has_workers(
    shape: ClusterShape, open_shards: int, tries: int, caplog
) -> None:
    caplog.set_level(logging.INFO, "dataflow.channels.routes")
    routes = ShardRoutes(None, shape, clock=Clock())
    assert routes.tries == 1 and not routes.searching(SHARD)  # before the source lists: keyed by shard id
    routes.stream_listed(open_shards)
    assert routes.tries == tries
    assert routes.searching(SHARD) is (tries > 1)
    assert [r.message.split(":")[0] for r in caplog.records] == [
        f"enrich.route_auto open_shards={open_shards} processes={shape.processes} workers={shape.workers} tries={tries}"
    ]


def test_auto_decides_once_and_a_number_is_never_overridden() -> None:
    routes = ShardRoutes(None, ClusterShape(2, 2), clock=Clock())
    routes.stream_listed(2)
    routes.stream_listed(8)  # a reshard mid-run: judged again at the next start, not under keys already pinned
    assert routes.tries == LOCAL_KEY_TRIES
    pinned = ShardRoutes(1, ClusterShape(2, 2), clock=Clock())
    pinned.stream_listed(2)
    assert pinned.tries == 1 and not pinned.searching(SHARD)
