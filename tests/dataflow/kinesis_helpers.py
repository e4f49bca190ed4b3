"""Helpers for the Kinesis source tests: stream set-up on the local Kinesis, and a driver that calls the
partitions the way Bytewax does."""

from __future__ import annotations

import time
from types import SimpleNamespace
from typing import Any

from dataflow.channels.backpressure import BufferGauge
from dataflow.kinesis_source import DrainLedger, KinesisPartition
from tests.dataflow.helpers import settings

PARTITIONS = 4
STALL_S = 60.0  # a run that makes no progress at all for this long has hung


def put(client: Any, stream: str, start: int, count: int) -> None:
    entries = [{"Data": f"rec-{n}".encode(), "PartitionKey": f"key-{n}"} for n in range(start, start + count)]
    for i in range(0, len(entries), 500):
        resp = client.put_records(StreamName=stream, Records=entries[i : i + 500])
        assert resp["FailedRecordCount"] == 0


def create(client: Any, stream: str, shards: int) -> None:
    client.create_stream(StreamName=stream, ShardCount=shards)
    client.get_waiter("stream_exists").wait(StreamName=stream, WaiterConfig={"Delay": 0.2})


def list_shards(client: Any, stream: str) -> list[dict]:
    """Every shard, following NextToken as Kinesis wants it (the token alone)."""
    resp = client.list_shards(StreamName=stream)
    shards = list(resp["Shards"])
    while resp.get("NextToken"):
        resp = client.list_shards(NextToken=resp["NextToken"])
        shards.extend(resp["Shards"])
    return shards


def open_shards(client: Any, stream: str) -> list[dict]:
    return [s for s in list_shards(client, stream) if "EndingSequenceNumber" not in s["SequenceNumberRange"]]


def split(client: Any, stream: str, shard: dict) -> None:
    low, high = int(shard["HashKeyRange"]["StartingHashKey"]), int(shard["HashKeyRange"]["EndingHashKey"])
    client.split_shard(StreamName=stream, ShardToSplit=shard["ShardId"], NewStartingHashKey=str((low + high) // 2))


def cfg(stream: str, **env: Any):
    base: dict[str, Any] = {
        "KINESIS_STREAM_NAME": stream,
        "KINESIS_PARTITIONS": PARTITIONS,
        "KINESIS_STOP_AT_END": "true",
        "KINESIS_POLL_INTERVAL_S": 0.2,
        "KINESIS_DISCOVERY_INTERVAL_S": 0.3,
        "KINESIS_GET_RECORDS_LIMIT": 7,  # small pages: many calls per shard
    }
    return settings(**{**base, **env})


def client_error(code: str, message: str = "injected") -> tuple[SimpleNamespace, dict]:
    """What a botocore `before-call` handler returns to answer a call with an AWS error."""
    body = {"Error": {"Code": code, "Message": message}, "ResponseMetadata": {"HTTPStatusCode": 400}}
    return SimpleNamespace(status_code=400, headers={}, text=""), body


class Reader:
    """Drives all partitions the way Bytewax would: next_batch when next_awake has passed.

    Waits are on progress: a run fails only when nothing at all happens for STALL_S (no record, no state
    change), never because a busy machine made it slower.
    """

    def __init__(
        self,
        settings: Any,
        client_factory: Any,
        states: dict[int, Any] | None = None,
        buffers: BufferGauge | None = None,
    ) -> None:
        self.ledger = DrainLedger()
        self.parts = {
            i: KinesisPartition(
                client_factory(), settings, i, (states or {}).get(i), ledger=self.ledger, buffers=buffers
            )
            for i in range(PARTITIONS)
        }
        self.done: set[int] = set()
        self.seen: list[str] = []
        self.shards: list[str] = []  # the shard of each record in `seen`, in emission order

    def step(self) -> None:
        soonest = time.time() + 0.05
        for i, part in self.parts.items():
            if i in self.done:
                continue
            awake = part.next_awake()
            if awake is not None and awake.timestamp() > time.time():
                soonest = min(soonest, awake.timestamp())
                continue
            try:
                for record in part.next_batch():
                    self.seen.append(record.data.decode())
                    self.shards.append(record.shard_id)
            except StopIteration:
                self.done.add(i)
        time.sleep(max(0.0, min(0.05, soonest - time.time())))

    def _progress(self) -> tuple:
        return len(self.seen), len(self.done), repr(self.snapshots())

    def run_until(self, condition: Any) -> None:
        last, stalled_since = self._progress(), time.monotonic()
        while not condition():
            self.step()
            now = self._progress()
            if now != last:
                last, stalled_since = now, time.monotonic()
            assert time.monotonic() - stalled_since < STALL_S, f"no progress; seen {len(self.seen)} records"

    def run_to_end(self) -> None:
        self.run_until(lambda: len(self.done) == PARTITIONS)

    def snapshots(self) -> dict[int, Any]:
        return {i: p.snapshot() for i, p in self.parts.items()}

    def positions(self) -> dict[str, str]:
        return {k: v for snap in self.snapshots().values() for k, v in snap.items() if not k.startswith("@")}
