"""A throttled stream-range read waits and retries (the live reader's backoff), and an archive record arrives at
its own date, bounded by the run's start, so it never replaces a live result of the same generation."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import boto3
from botocore.stub import Stubber

from dataflow.backfill.archive import archive_arrival
from dataflow.backfill.stream_range import _RangePartition
from dataflow.opensearch_sink.generation import external_version
from dataflow.records import Review

START = datetime(2026, 1, 1, tzinfo=UTC)


def test_a_throttled_range_read_backs_off_and_retries_instead_of_ending_the_run() -> None:
    kinesis = boto3.client("kinesis", region_name="us-east-1")
    with Stubber(kinesis) as stub:
        stub.add_response("get_shard_iterator", {"ShardIterator": "it-1"})
        stub.add_client_error("get_records", "ProvisionedThroughputExceededException", http_status_code=400)
        stub.add_response("get_shard_iterator", {"ShardIterator": "it-2"})  # re-acquired after the backoff
        record = {"SequenceNumber": "1", "Data": b"{}", "PartitionKey": "k",
                  "ApproximateArrivalTimestamp": START + timedelta(seconds=1)}  # fmt: skip
        stub.add_response("get_records", {"Records": [record], "NextShardIterator": "it-3", "MillisBehindLatest": 0})
        part = _RangePartition(kinesis, "s", "shardId-0", START, START + timedelta(hours=1), None)
        before = datetime.now(UTC)
        assert part.next_batch() == []
        assert part.next_awake() is not None and part.next_awake() > before  # it waits, and is not done
        assert [r.sequence_number for r in part.next_batch()] == ["1"]
        stub.assert_no_pending_responses()


def review(date: str) -> Review:
    return Review("r", "u", date, "t", "archive", "1", 0)


def test_an_archive_record_arrives_at_its_date_bounded_by_the_run_start() -> None:
    run_start = int(START.timestamp() * 1000)
    written = archive_arrival(review("2025-06-01T00:00:00.000Z"), run_start).arrival_ms
    assert written == int(datetime(2025, 6, 1, tzinfo=UTC).timestamp() * 1000)
    assert archive_arrival(review("2030-01-01T00:00:00.000Z"), run_start).arrival_ms == run_start  # future date
    assert archive_arrival(review("1960-01-01T00:00:00.000Z"), run_start).arrival_ms == 0
    # A live delivery of the review (after it was written, before the backfill) keeps the higher version.
    live_arrival = int(datetime(2025, 6, 2, tzinfo=UTC).timestamp() * 1000)
    assert external_version(3, live_arrival) > external_version(3, written)
