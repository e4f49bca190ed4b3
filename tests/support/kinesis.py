"""Reading and writing a local Kinesis stream directly, around the code under test."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import boto3
import orjson


def kinesis_client(endpoint_url: str) -> Any:
    return boto3.client("kinesis", endpoint_url=endpoint_url, region_name="us-east-1")


@dataclass(frozen=True)
class StreamRecord:
    shard_id: str
    sequence_number: str
    data: bytes

    def json(self) -> Any:
        return orjson.loads(self.data)

    @property
    def review_id(self) -> str | None:
        try:
            doc = orjson.loads(self.data)
        except orjson.JSONDecodeError:
            return None
        return str(doc.get("review_id")) if isinstance(doc, dict) and "review_id" in doc else None


def read_records(client: Any, stream: str) -> list[StreamRecord]:
    """Every record in every shard (closed parents included), from TRIM_HORIZON to the end."""
    out: list[StreamRecord] = []
    for shard in client.list_shards(StreamName=stream)["Shards"]:
        it = client.get_shard_iterator(StreamName=stream, ShardId=shard["ShardId"], ShardIteratorType="TRIM_HORIZON")
        iterator, empty = it["ShardIterator"], 0
        while iterator and empty < 2:  # Kinesis returns empty pages mid-shard: two in a row mean the tip
            resp = client.get_records(ShardIterator=iterator, Limit=10_000)
            out += [StreamRecord(shard["ShardId"], r["SequenceNumber"], bytes(r["Data"])) for r in resp["Records"]]
            empty = 0 if resp["Records"] else empty + 1
            iterator = resp.get("NextShardIterator")
    return out


def put_raw(client: Any, stream: str, records: list[bytes], prefix: str = "raw") -> list[tuple[str, str]]:
    """Put records as they are; returns (shard id, sequence number) of each, in order."""
    entries = [{"Data": r, "PartitionKey": f"{prefix}-{i}"} for i, r in enumerate(records)]
    resp = client.put_records(StreamName=stream, Records=entries)
    assert resp["FailedRecordCount"] == 0, resp
    return [(e["ShardId"], e["SequenceNumber"]) for e in resp["Records"]]


def open_shards(client: Any, stream: str) -> list[dict[str, Any]]:
    """The shards still open for writing (no ending sequence number), in hash-key order."""
    shards = client.list_shards(StreamName=stream)["Shards"]
    live = [s for s in shards if "EndingSequenceNumber" not in s["SequenceNumberRange"]]
    return sorted(live, key=lambda s: int(s["HashKeyRange"]["StartingHashKey"]))
