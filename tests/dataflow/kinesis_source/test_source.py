"""The Kinesis source against moto's server: shards, resharding mid-read, expired iterators, resume."""

from __future__ import annotations

from collections import Counter
from typing import Any

import boto3
import pytest

from dataflow.kinesis_source import KinesisSource, shard_owner
from tests.dataflow.kinesis_helpers import Reader, cfg, client_error, create, list_shards, open_shards, put, split


def test_reads_every_shard_exactly_once(client, factory, stream_name, kinesis_server) -> None:
    create(client, stream_name, 3)
    put(client, stream_name, 0, 200)
    reader = Reader(cfg(stream_name), factory)
    reader.run_to_end()
    assert Counter(reader.seen) == Counter(f"rec-{n}" for n in range(200))
    positions = reader.positions()
    assert len(positions) == 3 and all(v.startswith("seq:") for v in positions.values())


def test_split_and_merge_mid_read_are_followed(client, factory, stream_name, kinesis_server) -> None:
    create(client, stream_name, 2)
    put(client, stream_name, 0, 100)
    reader = Reader(cfg(stream_name), factory)
    reader.run_until(lambda: len(reader.seen) >= 30)

    first = open_shards(client, stream_name)[0]
    split(client, stream_name, first)
    put(client, stream_name, 100, 100)
    reader.run_until(lambda: len(reader.seen) >= 150)

    children = sorted(
        (s for s in open_shards(client, stream_name) if s.get("ParentShardId") == first["ShardId"]),
        key=lambda s: int(s["HashKeyRange"]["StartingHashKey"]),
    )
    client.merge_shards(
        StreamName=stream_name, ShardToMerge=children[0]["ShardId"], AdjacentShardToMerge=children[1]["ShardId"]
    )
    put(client, stream_name, 200, 100)
    reader.run_to_end()

    assert Counter(reader.seen) == Counter(f"rec-{n}" for n in range(300))
    listing = list_shards(client, stream_name)
    assert len(listing) == 5  # 2 original, 2 children, 1 merged
    states = reader.positions()
    closed = [s["ShardId"] for s in listing if "EndingSequenceNumber" in s["SequenceNumberRange"]]
    assert closed and all(states.get(shard) == "end" for shard in closed)


def test_children_wait_for_their_parents(client, factory, stream_name, kinesis_server) -> None:
    create(client, stream_name, 1)
    put(client, stream_name, 0, 50)
    shard = open_shards(client, stream_name)[0]
    split(client, stream_name, shard)
    put(client, stream_name, 50, 50)
    reader = Reader(cfg(stream_name), factory)
    reader.run_to_end()
    assert Counter(reader.seen) == Counter(f"rec-{n}" for n in range(100))
    last_parent = max(i for i, s in enumerate(reader.shards) if s == shard["ShardId"])
    first_child = min(i for i, s in enumerate(reader.shards) if s != shard["ShardId"])
    assert last_parent < first_child


def expire_every_third_get_records(client: Any) -> list[int]:
    """Make botocore answer some GetRecords calls with ExpiredIteratorException, as Kinesis does."""
    calls = [0]

    def handler(**kwargs: Any):
        calls[0] += 1
        return client_error("ExpiredIteratorException", "Iterator expired") if calls[0] % 3 == 0 else None

    client.meta.events.register("before-call.kinesis.GetRecords", handler)
    return calls


def test_expired_iterators_resume_from_the_checkpoint(client, kinesis_server, stream_name) -> None:
    create(client, stream_name, 2)
    put(client, stream_name, 0, 120)
    counters: list[list[int]] = []

    def factory():
        c = boto3.client("kinesis", endpoint_url=kinesis_server.url, region_name="us-east-1")
        counters.append(expire_every_third_get_records(c))
        return c

    reader = Reader(cfg(stream_name), factory)
    reader.run_to_end()
    assert Counter(reader.seen) == Counter(f"rec-{n}" for n in range(120))
    assert sum(c[0] for c in counters) >= 9  # the fault really fired several times


def test_resume_from_snapshot_reads_only_what_is_new(client, factory, stream_name, kinesis_server) -> None:
    create(client, stream_name, 3)
    put(client, stream_name, 0, 90)
    settings = cfg(stream_name)
    first = Reader(settings, factory)
    first.run_until(lambda: len(first.seen) >= 40)
    states = first.snapshots()
    # Records returned after the snapshot are not committed: a restart reads them again (at-least-once).
    put(client, stream_name, 90, 30)
    second = Reader(settings, factory, states)
    second.run_to_end()
    assert not set(first.seen) & set(second.seen)
    assert Counter(first.seen + second.seen) == Counter(f"rec-{n}" for n in range(120))


def test_latest_start_position_skips_old_records(client, factory, stream_name, kinesis_server) -> None:
    create(client, stream_name, 1)
    put(client, stream_name, 0, 10)
    settings = cfg(stream_name, KINESIS_START_POSITION="LATEST", KINESIS_STOP_AT_END="false")
    reader = Reader(settings, factory)
    # The checkpoint records the start time once the shard's LATEST iterator is taken.
    reader.run_until(lambda: any(v.startswith("ts:") for v in reader.positions().values()))
    put(client, stream_name, 10, 5)
    reader.run_until(lambda: len(reader.seen) >= 5)
    assert sorted(reader.seen) == sorted(f"rec-{n}" for n in range(10, 15))


def test_missing_stream_fails_with_a_clear_message(factory, kinesis_server) -> None:
    source = KinesisSource(cfg("no-such-stream"), lambda s: factory())
    with pytest.raises(RuntimeError, match="'no-such-stream' not found"):
        source.build_part("kinesis", source.list_parts()[0], None)


def test_ownership_is_stable_and_spread() -> None:
    owners = [shard_owner(f"shardId-{n:012d}", 8) for n in range(64)]
    assert owners == [shard_owner(f"shardId-{n:012d}", 8) for n in range(64)]
    assert len(set(owners)) == 8


def test_every_listing_tells_how_many_shards_are_open(client, factory, stream_name, kinesis_server) -> None:
    """The key routing's `auto` decides from the stream's width (dataflow/channels/routes.py)."""
    create(client, stream_name, 3)
    told: list[int] = []
    source = KinesisSource(cfg(stream_name), lambda _settings: factory(), on_listing=told.append)
    part = source.build_part("kinesis", source.list_parts()[0], None)
    assert told == [3]  # the first listing, as the partition is built: before any read
    split(client, stream_name, open_shards(client, stream_name)[0])
    part._discover()
    assert told == [3, 4]  # the parent closed, its two children open
