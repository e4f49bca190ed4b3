"""PutRecords with Kinesis' limits, partial-failure retries, backoff and pacing.

Why not just loop over put_records: a PutRecords call can succeed while some of its entries fail
(`FailedRecordCount`, per-entry `ErrorCode`), and re-sending the whole batch would duplicate the entries
that did land. So only the failed entries are re-sent, with exponential backoff and full jitter, up to
`max_retries` times; the whole call is retried the same way on throttling, 5xx and connection errors
(botocore's own retries are switched off by the caller so that `max_retries` is the only knob).
"""

from __future__ import annotations

import logging
import random
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError, HTTPClientError
from botocore.exceptions import ConnectionError as BotoConnectionError

log = logging.getLogger(__name__)

MAX_RECORDS_PER_CALL = 500
MAX_BYTES_PER_CALL = 5 * 1024 * 1024  # data + partition keys of the whole request
MAX_RECORD_BYTES = 1024 * 1024  # data + partition key of one record
MAX_PARTITION_KEY_CHARS = 256

# Whole-call error codes worth retrying; anything else (missing stream, access denied, KMS key disabled,
# validation) fails the same way on every attempt and aborts the run.
RETRYABLE_CODES = frozenset(
    {
        "ProvisionedThroughputExceededException",
        "LimitExceededException",
        "ThrottlingException",
        "Throttling",
        "RequestLimitExceeded",
        "TooManyRequestsException",
        "KMSThrottlingException",
        "InternalFailure",
        "InternalServerError",
        "InternalError",
        "ServiceUnavailable",
        "ServiceUnavailableException",
        "RequestTimeout",
        "RequestTimeoutException",
    }
)


@dataclass(frozen=True, slots=True)
class Entry:
    """One record to put: its data blob and partition key, and the review id to report it by."""

    review_id: str
    data: bytes
    partition_key: str

    @property
    def size(self) -> int:
        """What counts against the 1 MiB record and 5 MiB request limits."""
        return len(self.data) + len(self.partition_key.encode("utf-8"))


@dataclass(frozen=True, slots=True)
class Failure:
    review_id: str
    error_code: str
    error_message: str


@dataclass
class WriteStats:
    """Running totals; `retried` counts record re-sends (one entry re-sent twice counts 2)."""

    sent: int = 0
    retried: int = 0
    calls: int = 0
    failures: list[Failure] = field(default_factory=list)

    @property
    def failed(self) -> int:
        return len(self.failures)

    def failure_codes(self) -> dict[str, int]:
        return dict(Counter(f.error_code for f in self.failures))


class WriteAborted(RuntimeError):
    """A whole PutRecords call failed for good (not retryable, or retries exhausted); sending stopped."""


@dataclass
class Backoff:
    """Exponential backoff with full jitter: attempt n sleeps uniform(0, min(cap, base * 2**n))."""

    base: float = 0.1
    cap: float = 5.0
    rng: random.Random = field(default_factory=random.Random)

    def delay(self, attempt: int) -> float:
        return self.rng.uniform(0.0, min(self.cap, self.base * (2**attempt)))


class TokenBucket:
    """Paces records to `rate` per second with bursts of at most a quarter second's worth."""

    def __init__(
        self,
        rate: float,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if rate <= 0:
            raise ValueError("rate must be positive")
        self.rate = rate
        self.capacity = max(1.0, rate / 4)
        self.tokens = 1.0  # start nearly empty so the first second is not one big burst
        self._clock = clock
        self._sleep = sleep
        self._last = clock()

    def acquire(self, n: float = 1.0) -> None:
        while True:
            now = self._clock()
            self.tokens = min(self.capacity, self.tokens + (now - self._last) * self.rate)
            self._last = now
            if self.tokens >= n - 1e-9:  # tolerance: float refills may land a hair short of n forever
                self.tokens -= n
                return
            self._sleep((n - self.tokens) / self.rate)


def batches(
    entries: Iterable[Entry],
    *,
    max_records: int = MAX_RECORDS_PER_CALL,
    max_bytes: int = MAX_BYTES_PER_CALL,
    linger_s: float | None = None,
    clock: Callable[[], float] = time.monotonic,
) -> Iterator[list[Entry]]:
    """Group entries into PutRecords requests of at most `max_records` entries and `max_bytes` bytes.

    With `linger_s`, a batch is also closed once its first entry is that old, so a paced (slow) input is
    sent steadily instead of waiting to fill 500 records. Entries must each fit `max_bytes`.
    """
    batch: list[Entry] = []
    size = 0
    started = 0.0
    for entry in entries:
        if batch and (len(batch) >= max_records or size + entry.size > max_bytes):
            yield batch
            batch, size = [], 0
        if not batch:
            started = clock()
        batch.append(entry)
        size += entry.size
        if linger_s is not None and clock() - started >= linger_s:
            yield batch
            batch, size = [], 0
    if batch:
        yield batch


def oversize_reason(entry: Entry) -> str | None:
    """Why Kinesis would reject this record outright, or None."""
    if entry.size > MAX_RECORD_BYTES:
        return f"record is {entry.size} bytes with its partition key; Kinesis' limit is {MAX_RECORD_BYTES}"
    if not 1 <= len(entry.partition_key) <= MAX_PARTITION_KEY_CHARS:
        return f"partition key must be 1-{MAX_PARTITION_KEY_CHARS} characters"
    return None


def _call_error(err: Exception) -> tuple[str, str, bool]:
    """(code, message, retryable) for an exception raised by the whole put_records call."""
    if isinstance(err, ClientError):
        error = err.response.get("Error", {})
        code = str(error.get("Code") or "Unknown")
        status = int(err.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)
        retryable = code in RETRYABLE_CODES or status >= 500 or status == 429
        return code, str(error.get("Message") or err), retryable
    # Connection resets and timeouts are worth another try; missing credentials and the like are not.
    return type(err).__name__, str(err), isinstance(err, HTTPClientError | BotoConnectionError)


class KinesisWriter:
    """Sends entries to one stream; `write()` returns the totals, with every final failure listed."""

    def __init__(
        self,
        client: Any,
        stream_name: str,
        *,
        max_retries: int = 5,
        backoff: Backoff | None = None,
        sleep: Callable[[float], None] = time.sleep,
        on_progress: Callable[[int], None] | None = None,
    ) -> None:
        self.client = client
        self.stream_name = stream_name
        self.max_retries = max_retries
        self.backoff = backoff or Backoff()
        self.sleep = sleep
        self.on_progress = on_progress or (lambda _n: None)
        self.stats = WriteStats()
        self._aborted = False

    def write(self, entries: Iterable[Entry], *, rate: float = 0.0) -> WriteStats:
        """Send everything (paced to `rate` records/s when > 0). Raises WriteAborted, stats kept in .stats."""
        self._aborted = False
        if rate > 0:
            entries = self._paced(entries, TokenBucket(rate))
        pending = batches(self._valid(entries), linger_s=0.1 if rate > 0 else None)
        try:
            for batch in pending:
                self.put_batch(batch)
        except WriteAborted:
            # Account for every record: what was read but not attempted is reported as failed too.
            self._aborted = True
            for batch in pending:
                self._fail(batch, "NotAttempted", "not sent: the run was aborted by an earlier error")
            raise
        return self.stats

    def _paced(self, entries: Iterable[Entry], bucket: TokenBucket) -> Iterator[Entry]:
        for entry in entries:
            if not self._aborted:
                bucket.acquire()
            yield entry

    def _valid(self, entries: Iterable[Entry]) -> Iterator[Entry]:
        """Report records Kinesis would refuse as failed, without sending them."""
        for entry in entries:
            reason = oversize_reason(entry)
            if reason is None:
                yield entry
                continue
            log.warning("not sending %s: %s", entry.review_id, reason)
            self.stats.failures.append(Failure(entry.review_id, "RecordTooLarge", reason))
            self.on_progress(1)

    def put_batch(self, batch: list[Entry]) -> None:
        """Put one batch, re-sending only failed entries, until all landed or retries ran out."""
        pending = batch
        attempt = 0
        while pending:
            try:
                response = self.client.put_records(
                    StreamName=self.stream_name,
                    Records=[{"Data": e.data, "PartitionKey": e.partition_key} for e in pending],
                )
            except (ClientError, BotoCoreError) as err:
                code, message, retryable = _call_error(err)
                self.stats.calls += 1
                if not retryable or attempt >= self.max_retries:
                    self._fail(pending, code, message)
                    why = "not retryable" if not retryable else f"after {attempt} retries"
                    raise WriteAborted(f"PutRecords failed ({why}): {code}: {message}") from err
                log.info("PutRecords call failed (%s), retrying %d records", code, len(pending))
                self._retry_later(pending, attempt)
                attempt += 1
                continue
            self.stats.calls += 1
            results = response.get("Records", [])
            if len(results) != len(pending):  # never seen; guard against mis-matching entries and results
                self._fail(pending, "BadResponse", f"{len(results)} results for {len(pending)} records")
                raise WriteAborted("PutRecords answered a different number of results than records sent")
            failed: list[tuple[Entry, dict[str, Any]]] = [
                (entry, result) for entry, result in zip(pending, results, strict=True) if result.get("ErrorCode")
            ]
            landed = len(pending) - len(failed)
            self.stats.sent += landed
            self.on_progress(landed)
            if not failed:
                return
            codes = Counter(str(result["ErrorCode"]) for _, result in failed)
            if attempt >= self.max_retries:
                for entry, result in failed:
                    code, message = str(result["ErrorCode"]), str(result.get("ErrorMessage", ""))
                    self.stats.failures.append(Failure(entry.review_id, code, message))
                self.on_progress(len(failed))
                log.warning("%d records failed after %d retries: %s", len(failed), attempt, dict(codes))
                return
            log.info("%d of %d records failed (%s), retrying them", len(failed), len(pending), dict(codes))
            pending = [entry for entry, _ in failed]
            self._retry_later(pending, attempt)
            attempt += 1

    def _retry_later(self, pending: list[Entry], attempt: int) -> None:
        self.stats.retried += len(pending)
        self.sleep(self.backoff.delay(attempt))

    def _fail(self, pending: list[Entry], code: str, message: str) -> None:
        self.stats.failures.extend(Failure(e.review_id, code, message) for e in pending)
        self.on_progress(len(pending))
