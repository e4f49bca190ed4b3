"""A time range of the stream as the backfill's input: every shard read from BACKFILL_FROM to BACKFILL_TO.

One partition per shard listed at start (closed parents included: a range from before a reshard lives in
them). Each starts with an `AT_TIMESTAMP` iterator at the range's start (or after its snapshot's sequence
number) and reads with the live source's `ShardReader`; it ends at the first record that arrived at or after
the range's end, at the shard's end, or when it is caught up (an empty page at MillisBehindLatest 0: nothing
newer is there yet, and the range ended before the backfill started). Records keep their real shard, sequence
number and arrival time, so a result has the same external version the live flow writes for the same record.
A throttle or another read error is the live source's: the iterator is dropped and re-acquired from the last
sequence number handed on after a full-jitter backoff (`ShardReader.failed`), never the end of the run.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError
from bytewax.inputs import FixedPartitionedSource, StatefulSourcePartition

from dataflow import metrics
from dataflow.kinesis_source.reader import MIN_POLL_S, ShardReader, error_code
from dataflow.kinesis_source.shards import list_all_shards
from dataflow.records import KinesisRecord

log = logging.getLogger(__name__)


class _RangePartition(StatefulSourcePartition[KinesisRecord, str | None]):
    def __init__(self, client: Any, stream: str, shard: str, start: datetime, end: datetime, last: str | None) -> None:
        self._client, self._stream = client, stream
        self._reader = ShardReader(shard)
        self._start, self._end_ms = start, int(end.timestamp() * 1000)
        self._last = last
        self._done = False
        self._awake = datetime.now(UTC)

    def _iterator_args(self) -> dict[str, Any]:
        if self._last:
            return {"ShardIteratorType": "AFTER_SEQUENCE_NUMBER", "StartingSequenceNumber": self._last}
        return {"ShardIteratorType": "AT_TIMESTAMP", "Timestamp": self._start}

    def next_batch(self) -> list[KinesisRecord]:
        if self._done:
            raise StopIteration
        try:
            page = self._reader.read(self._client, self._stream, 1000, self._iterator_args)
        except (ClientError, BotoCoreError) as err:
            code = error_code(err) if isinstance(err, ClientError) else type(err).__name__
            if code == "ResourceNotFoundException":
                raise RuntimeError(f"Kinesis stream {self._stream!r} is gone (KINESIS_STREAM_NAME)") from err
            metrics.KINESIS_ERRORS.labels(code).inc()
            delay = self._reader.failed(datetime.now(UTC))
            log.warning("backfill.read_failed shard=%s error=%s retry_in_s=%.2f", self._reader.shard_id, code, delay)
            self._awake = self._reader.next_poll
            return []
        batch = []
        for record in page.records:
            if record.arrival_ms >= self._end_ms:
                self._done = True
                break
            batch.append(record)
            self._last = record.sequence_number
        if page.drained or (not page.records and page.lag_ms == 0):
            self._done = True
        self._awake = datetime.now(UTC) + timedelta(seconds=MIN_POLL_S)  # 5 GetRecords per second per shard
        return batch

    def next_awake(self) -> datetime | None:
        return None if self._done else self._awake

    def snapshot(self) -> str | None:
        return self._last


class StreamRangeSource(FixedPartitionedSource[KinesisRecord, str | None]):
    """The stream between two times; a partition's snapshot is the last sequence number it handed on."""

    def __init__(self, client: Any, stream: str, start: datetime, end: datetime) -> None:
        self._client, self._stream, self._start, self._end = client, stream, start, end

    def list_parts(self) -> list[str]:
        return sorted(s["ShardId"] for s in list_all_shards(self._client, self._stream))

    def build_part(self, step_id: str, for_part: str, resume_state: str | None) -> _RangePartition:
        return _RangePartition(self._client, self._stream, for_part, self._start, self._end, resume_state)
