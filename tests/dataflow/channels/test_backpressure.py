"""The backpressure gauge: room for the shards this process enriches, none withheld from the others."""

from __future__ import annotations

from dataflow.channels.backpressure import PROBE_RECORDS, REMOTE_AFTER_S, BufferGauge
from dataflow.channels.routes import PROBE_S, ShardRoutes


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_shard_enriched_elsewhere_is_not_held_back_by_this_process_being_full() -> None:
    clock = Clock()
    gauge = BufferGauge(clock)
    gauge.register(1, 10)
    gauge.set(1, 10)  # this process's engine is full
    for shard in ("local", "remote"):
        assert gauge.room_for(shard) == 10  # never read yet: one read, as an idle engine would take
        gauge.note_read(shard)
        assert gauge.room_for(shard) == 0  # then held back like the rest until its enricher is known
    gauge.note_enriched("local", 1)
    clock.now += REMOTE_AFTER_S / 2
    assert gauge.room_for("remote") == 0  # its reviews may still be on their way to a step here
    clock.now += REMOTE_AFTER_S
    assert gauge.room_for("remote") == 10  # read a while ago, never enriched here: another process's; an idle engine's
    assert gauge.room_for("local") == 0
    gauge.set(1, 7)
    assert gauge.room_for("local") == 3 and gauge.room() == 3


def test_without_engines_there_is_no_limit() -> None:
    gauge = BufferGauge()
    gauge.note_read("s")
    assert gauge.room_for("s") is None and gauge.room() is None


def test_one_full_engine_does_not_starve_another_engines_shard() -> None:
    """Two workers of one process: one engine's backlog must not hold back the shard the other enriches."""
    gauge = BufferGauge()
    gauge.register(1, 10)
    gauge.register(2, 10)
    gauge.note_enriched("busy", 1)
    gauge.note_enriched("idle", 2)
    gauge.set(1, 30)  # its step queues far more than its engine holds: the process's total room is 0
    assert gauge.room() == 0
    assert gauge.room_for("busy") == 0 and gauge.room_for("idle") == 10


def test_a_shard_never_read_is_not_starved_by_the_engines_of_the_others() -> None:
    """2 x 2 on 4 shards: a process's one engine was full with its first shard, so the process's room was 0, and a
    shard whose reviews had never been read (its enricher unknown) was not read for two minutes; when it was, a
    third engine started into a quota the others had filled, and throttled 37% of the cluster's requests."""
    gauge = BufferGauge(Clock())
    gauge.register(1, 10)
    gauge.note_read("first")
    gauge.note_enriched("first", 1)
    gauge.set(1, 10)
    assert gauge.room() == 0 and gauge.room_for("first") == 0
    assert gauge.room_for("second") == 10  # read once, so the step that enriches it can be known


def test_a_shard_whose_local_key_is_searched_for_is_read_a_probe_at_a_time() -> None:
    """Routing by local key (routes.py): every review read while the keyer tries keys may reach another process.
    Read at an idle engine's room, ~1,000 did in the first two seconds (2 x 2 on 2 shards), and that process's
    engine then held a share of the quota it no longer used. Once the key is found, or given up, the usual room."""
    clock = Clock()
    routes = ShardRoutes(tries=3, clock=clock)
    gauge = BufferGauge(clock)
    gauge.register(1, 512)
    gauge.route_search(routes.searching)
    assert gauge.room_for("here") == PROBE_RECORDS  # before its first review: the first read is a probe too
    routes.key_for("here")
    gauge.note_read("here")
    assert gauge.room_for("here") == PROBE_RECORDS
    routes.arrived("here", "here")
    gauge.note_enriched("here", 1)
    assert gauge.room_for("here") == 512
    routes.key_for("elsewhere")
    gauge.note_read("elsewhere")
    for _ in range(3):
        assert gauge.room_for("elsewhere") == PROBE_RECORDS
        clock.now += PROBE_S
        routes.key_for("elsewhere")
    assert not routes.searching("elsewhere")  # given up: enriched in another process, read with the remote bounds
    assert gauge.room_for("elsewhere") == 512


def test_without_routing_no_shard_is_searched_for() -> None:
    gauge = BufferGauge(Clock())
    gauge.register(1, 512)
    gauge.route_search(ShardRoutes(tries=1).searching)
    assert gauge.room_for("s") == 512
