"""Failed reads must wait in `next_awake`, never in `next_batch`: Bytewax re-activates a source at once when its
`next_awake` has passed, and a worker that sleeps in `next_batch` holds back every worker's epoch (see
tests/faults/test_kinesis_outage.py for the whole flow during an outage)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any

import boto3
import pytest
from botocore.awsrequest import AWSResponse
from botocore.exceptions import ClientError

from dataflow.kinesis_source import DrainLedger, KinesisPartition, kinesis_client
from dataflow.kinesis_source.reader import MIN_POLL_S
from tests.dataflow.kinesis_helpers import cfg, client_error, create, put


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 1, 1, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


def test_a_slow_failed_read_backs_off_from_when_it_failed(client, kinesis_server, stream_name) -> None:
    """A GetRecords call that fails after 3 s (a timeout, a slow 500): the retry is still ahead when the batch
    ends, so Bytewax does not call again at once."""
    create(client, stream_name, 1)
    put(client, stream_name, 0, 5)
    clock = Clock()
    calls: list[datetime] = []

    def slow_failure(**_: Any) -> Any:
        calls.append(clock.now)
        clock.now += timedelta(seconds=3)
        return client_error("InternalFailure")

    failing = boto3.client("kinesis", endpoint_url=kinesis_server.url, region_name="us-east-1")
    failing.meta.events.register("before-call.kinesis.GetRecords", slow_failure)
    settings = cfg(stream_name, KINESIS_PARTITIONS=1, KINESIS_DISCOVERY_INTERVAL_S=3600)  # only the reads are due
    part = KinesisPartition(failing, settings, 0, None, ledger=DrainLedger(), now=clock)
    for _ in range(10):
        clock.now = max(clock.now, part.next_awake())
        before = len(calls)
        assert list(part.next_batch()) == []
        # After a failed call the retry is at least MIN_POLL_S ahead of when the batch ended; a batch that only
        # woke for its epoch (EPOCH_WAKE_S, no call due) still leaves the next wake in the future.
        ahead = timedelta(seconds=MIN_POLL_S) if len(calls) > before else timedelta(0)
        assert part.next_awake() > clock.now + ahead - timedelta(microseconds=1)
        assert part.next_awake() > clock.now
    assert len(calls) >= 3


def test_the_kinesis_client_sends_one_request_per_call(kinesis_server, monkeypatch: pytest.MonkeyPatch) -> None:
    """botocore's retries would sleep inside `next_batch`; the partition retries instead, after its backoff."""
    monkeypatch.setenv("AWS_ENDPOINT_URL_KINESIS", kinesis_server.url)
    sent: list[str] = []

    def answer_500(request: Any, **_: Any) -> AWSResponse:
        sent.append(request.url)
        body = b'{"__type": "InternalFailure", "message": "injected"}'
        return AWSResponse(request.url, 500, {}, SimpleNamespace(stream=lambda: iter([body])))

    kinesis = kinesis_client(cfg("any-stream"))
    kinesis.meta.events.register("before-send.kinesis.GetRecords", answer_500)
    with pytest.raises(ClientError):
        kinesis.get_records(ShardIterator="x" * 40)
    assert len(sent) == 1
