"""The local Kinesis is as strict as Kinesis where the source relies on it (devstack.kinesis_strict): what a
reader sees at a closed shard's end, mid-shard and at the tip, and how ListShards pages."""

from __future__ import annotations

from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError

from devstack.kinesis_strict import expire_shard, trim_shard
from devstack.processes import LOOPBACK


@pytest.fixture()
def client(kinesis_server) -> Any:
    return boto3.client("kinesis", endpoint_url=kinesis_server.url, region_name="us-east-1")


def make(client: Any, stream: str, shards: int, records: int) -> None:
    client.create_stream(StreamName=stream, ShardCount=shards)
    client.get_waiter("stream_exists").wait(StreamName=stream, WaiterConfig={"Delay": 0.2})
    entries = [{"Data": b"x", "PartitionKey": "same-key"} for _ in range(records)]
    if entries:
        assert client.put_records(StreamName=stream, Records=entries)["FailedRecordCount"] == 0


def only_shard(client: Any, stream: str) -> dict:
    return client.list_shards(StreamName=stream)["Shards"][0]


def split(client: Any, stream: str, shard: dict) -> None:
    low, high = int(shard["HashKeyRange"]["StartingHashKey"]), int(shard["HashKeyRange"]["EndingHashKey"])
    client.split_shard(StreamName=stream, ShardToSplit=shard["ShardId"], NewStartingHashKey=str((low + high) // 2))


def pages(client: Any, stream: str, shard_id: str, limit: int, calls: int) -> list[dict]:
    it = client.get_shard_iterator(StreamName=stream, ShardId=shard_id, ShardIteratorType="TRIM_HORIZON")
    iterator, out = it["ShardIterator"], []
    for _ in range(calls):
        if iterator is None:
            break
        page = client.get_records(ShardIterator=iterator, Limit=limit)
        out.append(page)
        iterator = page.get("NextShardIterator")
    return out


def test_the_server_bound_a_port_of_its_own(kinesis_server) -> None:
    assert kinesis_server.url.startswith(f"http://{LOOPBACK}:") and not kinesis_server.url.endswith(":0")


def test_empty_pages_mid_shard_and_never_twice_in_a_row(client, stream_name) -> None:
    make(client, stream_name, 1, 20)
    shard = only_shard(client, stream_name)["ShardId"]
    got = pages(client, stream_name, shard, 4, 12)
    counts = [len(p["Records"]) for p in got]
    assert sum(counts) == 20
    left = [20 - sum(counts[:i]) for i in range(len(counts))]  # records left when page i was asked for
    assert any(n == 0 and left[i] > 0 for i, n in enumerate(counts)), f"no empty page mid-shard: {counts}"
    for i in range(1, len(counts)):
        if left[i] > 0:
            assert counts[i] or counts[i - 1], f"two empty pages in a row mid-shard: {counts}"


def test_a_closed_shard_ends_with_a_null_iterator_and_reports_no_lag(client, stream_name) -> None:
    make(client, stream_name, 1, 10)
    shard = only_shard(client, stream_name)
    split(client, stream_name, shard)
    got = pages(client, stream_name, shard["ShardId"], 3, 30)
    assert sum(len(p["Records"]) for p in got) == 10
    assert "NextShardIterator" not in got[-1] and all("NextShardIterator" in p for p in got[:-1])
    assert all(p["MillisBehindLatest"] == 0 for p in got)


def test_an_open_shard_reports_a_small_lag_at_the_tip_at_times(client, stream_name) -> None:
    make(client, stream_name, 1, 0)
    shard = only_shard(client, stream_name)["ShardId"]
    lags = [p["MillisBehindLatest"] for p in pages(client, stream_name, shard, 10, 6)]
    assert any(0 < lag <= 200 for lag in lags) and 0 in lags


def test_list_shards_pages_on_next_token_alone(client, stream_name) -> None:
    make(client, stream_name, 5, 0)
    first = client.list_shards(StreamName=stream_name, MaxResults=2)
    with pytest.raises(ClientError, match="InvalidArgumentException"):
        client.list_shards(StreamName=stream_name, NextToken=first["NextToken"])
    second = client.list_shards(NextToken=first["NextToken"], MaxResults=2)
    third = client.list_shards(NextToken=second["NextToken"], MaxResults=2)
    ids = [s["ShardId"] for page in (first, second, third) for s in page["Shards"]]
    assert len(ids) == len(set(ids)) == 5 and "NextToken" not in third


def test_trim_and_expire(client, kinesis_server, stream_name) -> None:
    make(client, stream_name, 1, 10)
    shard = only_shard(client, stream_name)
    trim_shard(kinesis_server.url, stream_name, shard["ShardId"], "4")
    records = pages(client, stream_name, shard["ShardId"], 100, 1)[0]["Records"]
    assert [r["SequenceNumber"] for r in records] == [str(n) for n in range(5, 11)]
    split(client, stream_name, shard)
    expire_shard(kinesis_server.url, stream_name, shard["ShardId"])
    listed = {s["ShardId"] for s in client.list_shards(StreamName=stream_name)["Shards"]}
    assert shard["ShardId"] not in listed and len(listed) == 2
