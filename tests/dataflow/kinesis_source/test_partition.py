"""The Kinesis source at the edges the strict local Kinesis shows (devstack.kinesis_strict): empty pages
mid-shard, a lag at the tip, closed shards, start positions for child shards, paged and failing ListShards,
trimmed and expired shards, and hold-back while the enrichment buffers are full."""

from __future__ import annotations

import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest
from prometheus_client import REGISTRY

from dataflow.channels.backpressure import BufferGauge
from dataflow.kinesis_source import DrainLedger, KinesisPartition
from dataflow.kinesis_source.hold_back import BACKPRESSURE_WAIT_S
from devstack.kinesis_strict import expire_shard, trim_shard
from tests.dataflow.kinesis_helpers import Reader, cfg, client_error, create, list_shards, open_shards, put, split


def recs(start: int, stop: int) -> Counter:
    return Counter(f"rec-{n}" for n in range(start, stop))


def split_with_records(client: Any, stream: str, before: int, after: int) -> dict:
    """One shard with `before` records, split; `after` more records land in its children. Returns the parent."""
    create(client, stream, 1)
    put(client, stream, 0, before)
    parent = open_shards(client, stream)[0]
    split(client, stream, parent)
    put(client, stream, before, after)
    return parent


def test_a_closed_shard_ends_only_on_a_null_next_iterator(client, factory, stream_name) -> None:
    # The strict Kinesis answers an empty page with lag 0 in the middle of the closed parent: not its end.
    split_with_records(client, stream_name, 50, 30)
    reader = Reader(cfg(stream_name), factory)
    reader.run_to_end()
    assert Counter(reader.seen) == recs(0, 80)


def test_stop_at_end_is_not_fooled_by_empty_pages_or_a_lag_at_the_tip(client, factory, stream_name) -> None:
    create(client, stream_name, 2)
    put(client, stream_name, 0, 150)
    reader = Reader(cfg(stream_name), factory)
    reader.run_to_end()
    assert Counter(reader.seen) == recs(0, 150)


def test_stop_at_end_waits_until_the_enrichment_buffers_are_empty(client, factory, stream_name) -> None:
    """Ending the input while reviews are still with the model makes Bytewax call on_eof per key, which holds
    every result of that key back until its last one is done (the demo showed 0 indexed for a minute)."""
    create(client, stream_name, 1)
    put(client, stream_name, 0, 5)
    buffers = BufferGauge()
    reader = Reader(cfg(stream_name), factory, buffers=buffers)
    owner = object()
    buffers.register(id(owner), 100)
    buffers.set(id(owner), 5)  # the five reviews are with the model
    reader.run_until(lambda: len(reader.seen) == 5)
    for _ in range(20):  # caught up, but not done: the source must keep going
        reader.step()
    assert not reader.done
    buffers.set(id(owner), 0)  # the model answered them all
    reader.run_to_end()
    assert Counter(reader.seen) == recs(0, 5)


def test_latest_does_not_replay_an_open_child_shard(client, factory, stream_name) -> None:
    split_with_records(client, stream_name, 10, 10)
    settings = cfg(stream_name, KINESIS_START_POSITION="LATEST", KINESIS_STOP_AT_END="false")
    reader = Reader(settings, factory)
    # Every shard has its start recorded once its iterator is taken (the closed parent ends at once).
    reader.run_until(lambda: len(reader.positions()) == 3)
    put(client, stream_name, 20, 5)
    reader.run_until(lambda: set(recs(20, 25)) <= set(reader.seen))
    assert Counter(reader.seen) == recs(20, 25)


def test_latest_reads_all_of_a_child_born_after_the_start(client, factory, stream_name) -> None:
    create(client, stream_name, 1)
    put(client, stream_name, 0, 10)
    settings = cfg(stream_name, KINESIS_START_POSITION="LATEST", KINESIS_STOP_AT_END="false")
    reader = Reader(settings, factory)
    reader.run_until(lambda: len(reader.positions()) == 1)
    put(client, stream_name, 10, 5)
    split(client, stream_name, open_shards(client, stream_name)[0])
    put(client, stream_name, 15, 20)
    reader.run_until(lambda: set(recs(10, 35)) <= set(reader.seen))
    assert Counter(reader.seen) == recs(10, 35)


def test_at_timestamp_applies_to_child_shards_and_survives_a_restart(client, factory, stream_name) -> None:
    split_with_records(client, stream_name, 10, 10)
    time.sleep(0.05)  # arrival times are in milliseconds: keep the start strictly between the batches
    start = datetime.now(UTC)
    time.sleep(0.05)
    put(client, stream_name, 20, 30)
    settings = cfg(stream_name, KINESIS_START_POSITION=f"AT_TIMESTAMP:{start.isoformat()}")
    first = Reader(settings, factory)
    first.run_until(lambda: len(first.seen) >= 10)
    second = Reader(settings, factory, first.snapshots())
    second.run_to_end()
    assert Counter(first.seen + second.seen) == recs(20, 50)


def test_list_shards_follows_next_token_pages(client, kinesis_server, stream_name) -> None:
    create(client, stream_name, 5)
    put(client, stream_name, 0, 60)
    pages = Counter()

    def factory():
        c = boto3.client("kinesis", endpoint_url=kinesis_server.url, region_name="us-east-1")

        def small_pages(params: dict, **_: Any) -> None:
            params["MaxResults"] = 2
            pages["with_token" if "NextToken" in params else "first"] += 1

        c.meta.events.register("provide-client-params.kinesis.ListShards", small_pages)
        return c

    reader = Reader(cfg(stream_name), factory)
    reader.run_to_end()
    assert Counter(reader.seen) == recs(0, 60)
    assert pages["with_token"] >= 2 * pages["first"]  # 5 shards in pages of 2: two more pages per listing


def test_discovery_failing_after_start_is_retried(client, kinesis_server, stream_name) -> None:
    create(client, stream_name, 1)
    put(client, stream_name, 0, 20)
    failing = {"on": False, "failed": 0}

    def factory():
        c = boto3.client("kinesis", endpoint_url=kinesis_server.url, region_name="us-east-1")

        def maybe_fail(**_: Any):
            if failing["on"] and failing["failed"] < 12:
                failing["failed"] += 1
                return client_error("LimitExceededException", "Rate exceeded for stream")
            return None

        c.meta.events.register("before-call.kinesis.ListShards", maybe_fail)
        return c

    settings = cfg(stream_name, KINESIS_STOP_AT_END="false")
    reader = Reader(settings, factory)
    reader.run_until(lambda: len(reader.seen) >= 20)
    failing["on"] = True
    split(client, stream_name, open_shards(client, stream_name)[0])
    put(client, stream_name, 20, 20)
    # The children are found once ListShards answers again.
    reader.run_until(lambda: set(recs(20, 40)) <= set(reader.seen))
    assert failing["failed"] == 12
    assert Counter(reader.seen) == recs(0, 40)


def test_a_trimmed_shard_resumes_at_its_trim_horizon(client, kinesis_server, factory, stream_name) -> None:
    create(client, stream_name, 1)
    put(client, stream_name, 0, 30)
    settings = cfg(stream_name, KINESIS_GET_RECORDS_LIMIT=5)
    first = Reader(settings, factory)
    first.run_until(lambda: len(first.seen) >= 5)
    states = first.snapshots()
    shard = open_shards(client, stream_name)[0]["ShardId"]
    # Retention drops records 1..20 while the job is down: the checkpoint now points into trimmed data.
    trim_shard(kinesis_server.url, stream_name, shard, "20")
    second = Reader(settings, factory, states)
    second.run_to_end()
    assert Counter(second.seen) == recs(20, 30)


def sample(name: str, shard: str) -> float | None:
    return REGISTRY.get_sample_value(name, {"shard": shard})


def test_a_shard_leaving_the_listing_is_forgotten(client, kinesis_server, factory, stream_name) -> None:
    parent = split_with_records(client, stream_name, 10, 10)["ShardId"]
    reader = Reader(cfg(stream_name, KINESIS_STOP_AT_END="false"), factory)
    reader.run_until(lambda: len(reader.seen) >= 20)
    assert reader.positions()[parent] == "end"
    assert sample("reviewstream_records_read_total", parent) is not None
    expire_shard(kinesis_server.url, stream_name, parent)
    reader.run_until(lambda: parent not in reader.positions())
    assert sample("reviewstream_records_read_total", parent) is None
    assert sample("reviewstream_shard_millis_behind_latest", parent) is None
    assert {s["ShardId"] for s in list_shards(client, stream_name)} == set(reader.positions())


def test_stop_at_end_does_not_wait_for_the_next_discovery(client, factory, stream_name) -> None:
    # One shard, four partitions: three own nothing. They must not wait an hour for their next listing.
    create(client, stream_name, 1)
    put(client, stream_name, 0, 30)
    reader = Reader(cfg(stream_name, KINESIS_DISCOVERY_INTERVAL_S=3600), factory)
    reader.run_to_end()
    assert Counter(reader.seen) == recs(0, 30)


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 1, 1, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


def waits_after_batches(part: KinesisPartition, clock: Clock, count: int) -> list[float]:
    """Call the partition `count` times as Bytewax would (at its next_awake); the waits it asked for."""
    waits: list[float] = []
    for _ in range(count):
        clock.now = max(clock.now, part.next_awake())
        assert list(part.next_batch()) == []
        waits.append((part.next_awake() - clock.now).total_seconds())
    return waits


def test_held_back_source_backs_off_and_looks_again_soon_when_room_frees(client, factory, stream_name) -> None:
    create(client, stream_name, 1)
    put(client, stream_name, 0, 10)
    clock = Clock()
    settings = cfg(stream_name, KINESIS_PARTITIONS=1, KINESIS_BACKPRESSURE_MAX_WAIT_S=0.5)
    buffers = BufferGauge()
    part = KinesisPartition(factory(), settings, 0, None, ledger=DrainLedger(), buffers=buffers, now=clock)
    owner = object()
    buffers.register(id(owner), 4)
    buffers.note_enriched(open_shards(client, stream_name)[0]["ShardId"], id(owner))  # its engine is this one
    buffers.set(id(owner), 4)  # full
    waits = waits_after_batches(part, clock, 8)
    assert waits[0] == pytest.approx(BACKPRESSURE_WAIT_S)
    assert waits == sorted(waits) and waits[-1] == pytest.approx(0.5)
    buffers.set(id(owner), 3)  # one review completed: room for one record
    assert [r.data for r in part.next_batch()] == [b"rec-0"]
    buffers.set(id(owner), 4)  # the enrichment step took it: full again
    assert waits_after_batches(part, clock, 2) == pytest.approx([BACKPRESSURE_WAIT_S, 2 * BACKPRESSURE_WAIT_S])
    buffers.set(id(owner), 3)  # a review completed and another partition took the room at once:
    buffers.set(id(owner), 4)  # the buffer is moving, so look again soon
    assert waits_after_batches(part, clock, 1) == pytest.approx([BACKPRESSURE_WAIT_S])


def test_an_idle_shard_is_polled_less_often_and_at_full_speed_once_records_come(client, factory, stream_name) -> None:
    # Kinesis's 5 GetRecords/s per shard are shared by every consumer of the stream, and each call costs CPU:
    # a caught-up shard backs off to one call per KINESIS_IDLE_POLL_MAX_S; records bring it back at once.
    create(client, stream_name, 1)
    clock = Clock()
    settings = cfg(
        stream_name,
        KINESIS_PARTITIONS=1,
        KINESIS_STOP_AT_END="false",
        KINESIS_DISCOVERY_INTERVAL_S=3600,
        KINESIS_IDLE_POLL_MAX_S=1.0,
    )
    part = KinesisPartition(factory(), settings, 0, None, ledger=DrainLedger(), now=clock)
    waits = waits_after_batches(part, clock, 12)
    assert waits[:2] == pytest.approx([0.2, 0.2])  # one empty page does not prove the tip
    # The strict local Kinesis reports a small lag at the tip every other call (as Kinesis does at times):
    # such a page is read again after KINESIS_POLL_INTERVAL_S; the others back off to the maximum.
    assert max(waits) == pytest.approx(1.0) and waits.count(max(waits)) >= 3
    assert sum(waits) > 12 * 0.2 * 2
    put(client, stream_name, 0, 5)
    read: list[bytes] = []
    for _ in range(3):  # the strict Kinesis may answer an empty page first; it reports a lag, so no long wait
        clock.now = part.next_awake()
        read.extend(r.data for r in part.next_batch())
        wait = (part.next_awake() - clock.now).total_seconds()
        if read:
            break
        assert wait == pytest.approx(0.2)
    assert read == [f"rec-{n}".encode() for n in range(5)]
    assert wait == pytest.approx(0.2)  # records: the shard is read at full speed again


def test_a_full_process_still_reads_the_shards_another_process_enriches(client, factory, stream_name) -> None:
    """The step is keyed by shard and Bytewax may route a shard to a worker of another process: this process's
    full engines must not starve it (2 processes x 2 workers left a worker idle and a quota share unused)."""
    from dataflow.channels.backpressure import REMOTE_AFTER_S

    create(client, stream_name, 2)
    put(client, stream_name, 0, 400)
    clock = Clock()
    settings = cfg(stream_name, KINESIS_PARTITIONS=1, KINESIS_GET_RECORDS_LIMIT=10, KINESIS_DISCOVERY_INTERVAL_S=3600)
    gauge_clock = [0.0]
    buffers = BufferGauge(clock=lambda: gauge_clock[0])
    part = KinesisPartition(factory(), settings, 0, None, ledger=DrainLedger(), buffers=buffers, now=clock)
    owner = object()
    buffers.register(id(owner), 25)
    first = part.next_batch()
    shards = {r.shard_id for r in first}
    assert len(first) == 20 and len(shards) == 2
    local, remote = sorted(shards)
    buffers.note_enriched(local, id(owner))  # the step here got the local shard's reviews; the other went elsewhere
    buffers.set(id(owner), 25)  # and this process's engine is now full
    clock.now += timedelta(seconds=1)
    assert part.next_batch() == []  # too soon to tell the remote shard from one whose reviews are on their way
    gauge_clock[0] += REMOTE_AFTER_S
    clock.now += timedelta(seconds=1)
    later = part.next_batch()
    assert {r.shard_id for r in later} == {remote} and len(later) == 10


def test_a_partition_without_a_shard_still_wakes_every_epoch(client, factory, stream_name) -> None:
    """Bytewax ends a source partition's epoch only when it wakes it: a worker whose partitions own no shard (more
    workers than shards) slept until the next listing and held every checkpoint of the cluster (2 x 2 workers)."""
    from dataflow.kinesis_source.partition import EPOCH_WAKE_S
    from dataflow.kinesis_source.shards import shard_owner

    create(client, stream_name, 1)
    clock = Clock()
    settings = cfg(stream_name, KINESIS_PARTITIONS=2, KINESIS_STOP_AT_END="false", KINESIS_DISCOVERY_INTERVAL_S=30)
    empty = 1 - shard_owner(open_shards(client, stream_name)[0]["ShardId"], 2)
    part = KinesisPartition(factory(), settings, empty, None, ledger=DrainLedger(), now=clock)
    assert waits_after_batches(part, clock, 3) == pytest.approx([EPOCH_WAKE_S] * 3)
    # Nor does a source held back by full buffers wait longer, whatever KINESIS_BACKPRESSURE_MAX_WAIT_S says.
    put(client, stream_name, 0, 1)
    slow = cfg(stream_name, KINESIS_PARTITIONS=1, KINESIS_BACKPRESSURE_MAX_WAIT_S=5)
    buffers = BufferGauge()
    held = KinesisPartition(factory(), slow, 0, None, ledger=DrainLedger(), buffers=buffers, now=clock)
    buffers.register(1, 4)
    buffers.note_enriched(open_shards(client, stream_name)[0]["ShardId"], 1)  # its engine is this one
    buffers.set(1, 4)
    assert max(waits_after_batches(held, clock, 10)) == pytest.approx(EPOCH_WAKE_S)


def test_the_first_call_after_a_snapshot_marks_an_epoch_completed(client, factory, stream_name, monkeypatch) -> None:
    """Bytewax calls a partition in epoch e + 1 only once the whole dataflow finished epoch e (its probe)."""
    from dataflow import metrics

    now = [0.0]
    epochs = metrics.EpochClock(clock=lambda: now[0])
    monkeypatch.setattr(metrics, "EPOCHS", epochs)
    create(client, stream_name, 1)
    part = KinesisPartition(factory(), cfg(stream_name, KINESIS_PARTITIONS=1), 0, None, ledger=DrainLedger())
    now[0] = 5
    part.next_batch()
    assert epochs.age_s() == 5  # no snapshot yet: no epoch ended here
    part.snapshot()
    part.next_batch()
    now[0] = 6
    part.next_batch()
    assert epochs.age_s() == 1  # marked by the first call after the snapshot, not again by the next
