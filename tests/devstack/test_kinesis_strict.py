"""The local Kinesis is as strict as Kinesis where the source relies on it (devstack.kinesis_strict): what a
reader sees at a closed shard's end, mid-shard and at the tip, and how ListShards pages."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError

from dataflow.compat import OVERRIDE, UntestedVersion, require, within
from devstack.kinesis_strict import MOTO_TESTED, expire_shard, millis_between, trim_shard
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


def test_a_page_that_leaves_records_behind_reports_lag_and_goes_on(client, stream_name) -> None:
    """moto 5.2.6 made `Record.created_at` a datetime: the lag arithmetic answered HTTP 500 on such a page."""
    make(client, stream_name, 1, 10)
    shard = only_shard(client, stream_name)["ShardId"]
    got = pages(client, stream_name, shard, 3, 8)
    first = next(p for p in got if p["Records"])
    assert first["MillisBehindLatest"] >= 1 and first["NextShardIterator"]
    assert sum(len(p["Records"]) for p in got) == 10


@pytest.mark.parametrize(
    ("later", "earlier"),
    [
        (1_700_000_000.250, 1_700_000_000.0),  # moto <= 5.2.5: seconds as a float
        (datetime(2026, 12, 6, 0, 0, 0, 250_000), datetime(2026, 12, 6)),  # moto >= 5.2.6: a datetime
    ],
)
def test_lag_arithmetic_takes_both_timestamp_shapes(later, earlier) -> None:
    assert millis_between(later, earlier) == 250


def test_the_guard_names_the_tested_moto_releases_and_the_fix(monkeypatch) -> None:
    monkeypatch.delenv(OVERRIDE, raising=False)
    with pytest.raises(UntestedVersion) as refused:
        require("moto", *MOTO_TESTED, what="devstack's strict local Kinesis", installed="5.3.0")
    line = str(refused.value)
    assert "\n" not in line and MOTO_TESTED[0] in line and MOTO_TESTED[1] in line and "make venv" in line
    assert require("moto", *MOTO_TESTED, what="x", installed=MOTO_TESTED[1]) == MOTO_TESTED[1]
    monkeypatch.setenv(OVERRIDE, "1")
    assert require("moto", *MOTO_TESTED, what="x", installed="5.3.0") == "5.3.0"  # test-latest: a warning


def test_versions_compare_release_by_release() -> None:
    assert within("5.2.10", "5.2.5", "5.2.10") and not within("5.2.10", "5.2.5", "5.2.6")
    assert within("5.2.6.dev3", "5.2.5", "5.2.6") and not within("5.3", "5.2.5", "5.2.6")
