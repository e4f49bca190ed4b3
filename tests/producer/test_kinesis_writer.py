"""Batching limits, partial-failure bookkeeping, backoff and pacing, with a fake client (no server)."""

from __future__ import annotations

import itertools
import random
from typing import Any

import pytest
from botocore.exceptions import EndpointConnectionError, NoCredentialsError, ReadTimeoutError

from producer.kinesis_writer import (
    MAX_BYTES_PER_CALL,
    MAX_RECORD_BYTES,
    MAX_RECORDS_PER_CALL,
    Backoff,
    Entry,
    KinesisWriter,
    TokenBucket,
    WriteAborted,
    batches,
    oversize_reason,
)
from tests.support.aws import client_error


def entry(i: int, size: int = 10) -> Entry:
    key = f"id-{i}"
    return Entry(key, b"x" * (size - len(key)), key)


def test_batches_cap_at_500_records() -> None:
    sizes = [len(b) for b in batches(entry(i) for i in range(1234))]
    assert sizes == [500, 500, 234]
    assert MAX_RECORDS_PER_CALL == 500


def test_batches_cap_at_5_mib_counting_keys() -> None:
    # 900 KiB records: 5 fit in 5 MiB (4.39 MiB), a 6th would not (5.27 MiB).
    big = [entry(i, 900 * 1024) for i in range(13)]
    got = list(batches(big))
    assert [len(b) for b in got] == [5, 5, 3]
    assert [e for b in got for e in b] == big  # nothing lost, order kept
    assert all(sum(e.size for e in b) <= MAX_BYTES_PER_CALL for b in got)


def test_batches_fill_to_exactly_5_mib() -> None:
    # Five records of exactly 1 MiB (data + key) fill a request to the byte; the sixth opens a new one.
    exact = [entry(i, MAX_RECORD_BYTES) for i in range(6)]
    assert [len(b) for b in batches(exact)] == [5, 1]
    assert sum(e.size for e in exact[:5]) == MAX_BYTES_PER_CALL


def test_batches_mixed_sizes_never_exceed_limits() -> None:
    rng = random.Random(5)
    mixed = [entry(i, rng.choice([50, 2_000, 300_000, MAX_RECORD_BYTES])) for i in range(400)]
    got = list(batches(mixed))
    assert [e for b in got for e in b] == mixed
    for b, nxt in itertools.pairwise(got):
        total = sum(e.size for e in b)
        assert len(b) <= 500 and total <= MAX_BYTES_PER_CALL
        assert len(b) == 500 or total + nxt[0].size > MAX_BYTES_PER_CALL  # closed only when full


def test_batches_linger_closes_slow_batches() -> None:
    now = [0.0]

    def clock() -> float:
        now[0] += 0.04  # each entry arrives 40 ms after the previous one
        return now[0]

    sizes = [len(b) for b in batches((entry(i) for i in range(10)), linger_s=0.1, clock=clock)]
    assert sum(sizes) == 10 and max(sizes) <= 3


def test_oversize_limits() -> None:
    assert oversize_reason(entry(1, MAX_RECORD_BYTES)) is None
    assert "limit" in (oversize_reason(entry(1, MAX_RECORD_BYTES + 1)) or "")
    assert oversize_reason(Entry("k", b"x", "k" * 257)) is not None


class FakeKinesis:
    """Answers put_records from a script of callables (records -> response or exception)."""

    def __init__(self, *script: Any) -> None:
        self.script = list(script)
        self.calls: list[list[bytes]] = []

    def put_records(self, StreamName: str, Records: list[dict[str, Any]]) -> dict[str, Any]:
        self.calls.append([r["PartitionKey"] for r in Records])
        action = self.script.pop(0) if self.script else ok
        result = action(Records)
        if isinstance(result, Exception):
            raise result
        return result


def ok(records: list[dict[str, Any]]) -> dict[str, Any]:
    return {"FailedRecordCount": 0, "Records": [{"SequenceNumber": "1", "ShardId": "s"} for _ in records]}


def fail_keys(*keys: str):
    def answer(records: list[dict[str, Any]]) -> dict[str, Any]:
        out = [
            {"ErrorCode": "InternalFailure", "ErrorMessage": "boom"}
            if r["PartitionKey"] in keys
            else {"SequenceNumber": "1", "ShardId": "s"}
            for r in records
        ]
        return {"FailedRecordCount": sum("ErrorCode" in o for o in out), "Records": out}

    return answer


def failing_call(code: str, status: int):
    return lambda _records: client_error(code, status, "m", "PutRecords")


def writer(client: FakeKinesis, **kwargs: Any) -> tuple[KinesisWriter, list[float]]:
    sleeps: list[float] = []
    w = KinesisWriter(client, "s", backoff=Backoff(0.1, 1.0, random.Random(1)), sleep=sleeps.append, **kwargs)
    return w, sleeps


def test_only_failed_entries_are_resent_in_order() -> None:
    client = FakeKinesis(fail_keys("id-1", "id-3"), fail_keys("id-3"))
    w, sleeps = writer(client)
    stats = w.write(entry(i) for i in range(5))
    assert client.calls == [["id-0", "id-1", "id-2", "id-3", "id-4"], ["id-1", "id-3"], ["id-3"]]
    assert (stats.sent, stats.retried, stats.failed) == (5, 3, 0)
    assert len(sleeps) == 2 and 0 <= sleeps[0] <= 0.1 and 0 <= sleeps[1] <= 0.2  # full jitter bounds


def test_entries_failing_past_max_retries_are_reported() -> None:
    client = FakeKinesis(*[fail_keys("id-2")] * 10)
    progress: list[int] = []
    w, _ = writer(client, max_retries=2, on_progress=progress.append)
    stats = w.write(entry(i) for i in range(4))
    assert len(client.calls) == 3
    assert (stats.sent, stats.retried, stats.failed) == (3, 2, 1)
    assert [(f.review_id, f.error_code) for f in stats.failures] == [("id-2", "InternalFailure")]
    assert sum(progress) == 4


@pytest.mark.parametrize(
    "error",
    [
        failing_call("ProvisionedThroughputExceededException", 400),
        failing_call("ServiceUnavailable", 503),
        failing_call("SomethingNew", 502),
        lambda _r: EndpointConnectionError(endpoint_url="http://x"),
        lambda _r: ReadTimeoutError(endpoint_url="http://x"),
    ],
)
def test_retryable_call_errors_resend_the_whole_batch(error) -> None:
    client = FakeKinesis(error, error)
    w, sleeps = writer(client)
    stats = w.write(entry(i) for i in range(3))
    assert len(client.calls) == 3 and client.calls[0] == client.calls[2]
    assert (stats.sent, stats.retried, stats.failed) == (3, 6, 0)
    assert len(sleeps) == 2


def test_fatal_call_error_aborts_and_reports_everything_unsent() -> None:
    client = FakeKinesis(failing_call("AccessDeniedException", 400))
    w, sleeps = writer(client)
    with pytest.raises(WriteAborted, match="AccessDeniedException"):
        w.write(entry(i) for i in range(1100))
    assert len(client.calls) == 1 and sleeps == []
    codes = [f.error_code for f in w.stats.failures]
    assert codes.count("AccessDeniedException") == 500 and codes.count("NotAttempted") == 600


def test_missing_credentials_abort_without_retrying() -> None:
    client = FakeKinesis(lambda _r: NoCredentialsError())
    w, sleeps = writer(client)
    with pytest.raises(WriteAborted, match="NoCredentialsError"):
        w.write(entry(i) for i in range(3))
    assert sleeps == [] and w.stats.failed == 3


def test_call_errors_past_max_retries_abort() -> None:
    client = FakeKinesis(*[failing_call("InternalFailure", 500)] * 5)
    w, _ = writer(client, max_retries=1)
    with pytest.raises(WriteAborted, match="after 1 retries"):
        w.write(entry(i) for i in range(2))
    assert len(client.calls) == 2 and w.stats.failed == 2


def test_oversize_record_is_failed_not_sent() -> None:
    client = FakeKinesis()
    w, _ = writer(client)
    stats = w.write([entry(0), entry(1, MAX_RECORD_BYTES + 1), entry(2)])
    assert client.calls == [["id-0", "id-2"]]
    assert (stats.sent, stats.failed) == (2, 1)
    assert stats.failures[0].error_code == "RecordTooLarge"


def test_backoff_is_exponential_capped_full_jitter() -> None:
    backoff = Backoff(base=0.1, cap=1.0, rng=random.Random(3))
    for attempt, ceiling in [(0, 0.1), (1, 0.2), (3, 0.8), (4, 1.0), (10, 1.0)]:
        delays = [backoff.delay(attempt) for _ in range(200)]
        assert min(delays) >= 0 and max(delays) <= ceiling
        assert max(delays) > ceiling * 0.8  # jitter spans the whole range


def test_token_bucket_paces_to_rate() -> None:
    now = [0.0]
    bucket = TokenBucket(50, clock=lambda: now[0], sleep=lambda s: now.__setitem__(0, now[0] + s))
    for _ in range(101):
        bucket.acquire()
    assert now[0] == pytest.approx(2.0, abs=0.05)  # 100 records beyond the first at 50/s
