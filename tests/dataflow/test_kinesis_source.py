"""The Kinesis source against moto's server: shards, resharding mid-read, expired iterators, resume."""

from __future__ import annotations

import time
from collections import Counter
from types import SimpleNamespace
from typing import Any

import boto3
import pytest

from dataflow.kinesis_source import DrainLedger, KinesisPartition, KinesisSource, shard_owner
from tests.dataflow.helpers import settings

PARTITIONS = 4


def put(client: Any, stream: str, start: int, count: int) -> None:
    entries = [{"Data": f"rec-{n}".encode(), "PartitionKey": f"key-{n}"} for n in range(start, start + count)]
    for i in range(0, len(entries), 500):
        resp = client.put_records(StreamName=stream, Records=entries[i : i + 500])
        assert resp["FailedRecordCount"] == 0


def create(client: Any, stream: str, shards: int) -> None:
    client.create_stream(StreamName=stream, ShardCount=shards)
    client.get_waiter("stream_exists").wait(StreamName=stream, WaiterConfig={"Delay": 0.2})


def open_shards(client: Any, stream: str) -> list[dict]:
    shards = client.list_shards(StreamName=stream)["Shards"]
    return [s for s in shards if "EndingSequenceNumber" not in s["SequenceNumberRange"]]


def cfg(stream: str, url: str, **env: Any):
    base: dict[str, Any] = {
        "KINESIS_STREAM_NAME": stream,
        "KINESIS_PARTITIONS": PARTITIONS,
        "KINESIS_STOP_AT_END": "true",
        "KINESIS_POLL_INTERVAL_S": 0.2,
        "KINESIS_DISCOVERY_INTERVAL_S": 0.3,
        "KINESIS_GET_RECORDS_LIMIT": 7,  # small pages: many calls per shard
    }
    return settings(**{**base, **env})


class Reader:
    """Drives all partitions the way Bytewax would: next_batch when next_awake has passed."""

    def __init__(self, settings: Any, client_factory: Any, states: dict[int, Any] | None = None) -> None:
        self.ledger = DrainLedger()
        self.parts = {
            i: KinesisPartition(client_factory(), settings, i, (states or {}).get(i), ledger=self.ledger)
            for i in range(PARTITIONS)
        }
        self.done: set[int] = set()
        self.seen: list[str] = []

    def step(self) -> None:
        for i, part in self.parts.items():
            if i in self.done:
                continue
            awake = part.next_awake()
            if awake is not None and awake.timestamp() > time.time():
                continue
            try:
                self.seen.extend(r.data.decode() for r in part.next_batch())
            except StopIteration:
                self.done.add(i)
        time.sleep(0.01)

    def run_until(self, condition: Any, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while not condition():
            assert time.monotonic() < deadline, f"timed out; seen {len(self.seen)} records"
            self.step()

    def run_to_end(self, timeout: float = 60) -> None:
        self.run_until(lambda: len(self.done) == PARTITIONS, timeout)

    def snapshots(self) -> dict[int, Any]:
        return {i: p.snapshot() for i, p in self.parts.items()}


@pytest.fixture()
def client(kinesis_server):
    return boto3.client("kinesis", endpoint_url=kinesis_server.url, region_name="us-east-1")


@pytest.fixture()
def factory(kinesis_server):
    return lambda: boto3.client("kinesis", endpoint_url=kinesis_server.url, region_name="us-east-1")


def test_reads_every_shard_exactly_once(client, factory, stream_name, kinesis_server) -> None:
    create(client, stream_name, 3)
    put(client, stream_name, 0, 200)
    reader = Reader(cfg(stream_name, kinesis_server.url), factory)
    reader.run_to_end()
    assert Counter(reader.seen) == Counter(f"rec-{n}" for n in range(200))
    positions = {k: v for snap in reader.snapshots().values() for k, v in snap.items()}
    assert len(positions) == 3 and all(v.startswith("seq:") for v in positions.values())


def test_split_and_merge_mid_read_are_followed(client, factory, stream_name, kinesis_server) -> None:
    create(client, stream_name, 2)
    put(client, stream_name, 0, 100)
    reader = Reader(cfg(stream_name, kinesis_server.url), factory)
    reader.run_until(lambda: len(reader.seen) >= 30)

    first = open_shards(client, stream_name)[0]
    low, high = int(first["HashKeyRange"]["StartingHashKey"]), int(first["HashKeyRange"]["EndingHashKey"])
    client.split_shard(StreamName=stream_name, ShardToSplit=first["ShardId"], NewStartingHashKey=str((low + high) // 2))
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
    listing = client.list_shards(StreamName=stream_name)["Shards"]
    assert len(listing) == 5  # 2 original, 2 children, 1 merged
    states = {k: v for snap in reader.snapshots().values() for k, v in snap.items()}
    closed = [s["ShardId"] for s in listing if "EndingSequenceNumber" in s["SequenceNumberRange"]]
    assert closed and all(states.get(shard) == "end" for shard in closed)


def test_children_wait_for_their_parents(client, factory, stream_name, kinesis_server) -> None:
    create(client, stream_name, 1)
    put(client, stream_name, 0, 50)
    shard = open_shards(client, stream_name)[0]
    low, high = int(shard["HashKeyRange"]["StartingHashKey"]), int(shard["HashKeyRange"]["EndingHashKey"])
    client.split_shard(StreamName=stream_name, ShardToSplit=shard["ShardId"], NewStartingHashKey=str((low + high) // 2))
    put(client, stream_name, 50, 50)
    order: list[tuple[str, str]] = []
    reader = Reader(cfg(stream_name, kinesis_server.url), factory)
    for part in reader.parts.values():
        original = part._poll

        def spy(shard_reader, now, limit, _original=original):
            out = _original(shard_reader, now, limit)
            order.extend((r.shard_id, r.data.decode()) for r in out)
            return out

        part._poll = spy  # type: ignore[method-assign]
    reader.run_to_end()
    assert Counter(reader.seen) == Counter(f"rec-{n}" for n in range(100))
    last_parent = max(i for i, (s, _) in enumerate(order) if s == shard["ShardId"])
    first_child = min(i for i, (s, _) in enumerate(order) if s != shard["ShardId"])
    assert last_parent < first_child


def expire_every_third_get_records(client: Any) -> list[int]:
    """Make botocore answer some GetRecords calls with ExpiredIteratorException, as Kinesis does."""
    calls = [0]

    def handler(**kwargs: Any):
        calls[0] += 1
        if calls[0] % 3 == 0:
            body = {
                "Error": {"Code": "ExpiredIteratorException", "Message": "Iterator expired"},
                "ResponseMetadata": {"HTTPStatusCode": 400},
            }
            return SimpleNamespace(status_code=400, headers={}, text=""), body
        return None

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

    reader = Reader(cfg(stream_name, kinesis_server.url), factory)
    reader.run_to_end(timeout=120)
    assert Counter(reader.seen) == Counter(f"rec-{n}" for n in range(120))
    assert sum(c[0] for c in counters) >= 9  # the fault really fired several times


def test_resume_from_snapshot_reads_only_what_is_new(client, factory, stream_name, kinesis_server) -> None:
    create(client, stream_name, 3)
    put(client, stream_name, 0, 90)
    settings = cfg(stream_name, kinesis_server.url)
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
    settings = cfg(stream_name, kinesis_server.url, KINESIS_START_POSITION="LATEST", KINESIS_STOP_AT_END="false")
    reader = Reader(settings, factory)
    owner = next(p for p in reader.parts.values() if p._readers)
    reader.run_until(lambda: all(r.iterator for r in owner._readers.values()))
    put(client, stream_name, 10, 5)
    reader.run_until(lambda: len(reader.seen) >= 5)
    assert sorted(reader.seen) == sorted(f"rec-{n}" for n in range(10, 15))


def test_missing_stream_fails_with_a_clear_message(factory, kinesis_server) -> None:
    source = KinesisSource(cfg("no-such-stream", kinesis_server.url), lambda s: factory())
    with pytest.raises(RuntimeError, match="'no-such-stream' not found"):
        source.build_part("kinesis", source.list_parts()[0], None)


def test_ownership_is_stable_and_spread() -> None:
    owners = [shard_owner(f"shardId-{n:012d}", 8) for n in range(64)]
    assert owners == [shard_owner(f"shardId-{n:012d}", 8) for n in range(64)]
    assert len(set(owners)) == 8
