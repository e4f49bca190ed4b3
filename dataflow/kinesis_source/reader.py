"""The Kinesis reader of one shard: its GetRecords calls, how often it polls, and its retry backoff.

A shard is drained only when GetRecords answers a null NextShardIterator (Kinesis returns empty pages
mid-shard, and a lag of 0 on a closed shard, so neither proves the end). On ExpiredIteratorException,
throughput or other read errors the iterator is dropped and re-acquired from the checkpoint after a backoff
with full jitter.

Only the partition's positions are checkpointed (partition.py); a reader's iterator and pacing are
rebuilt from them after a restart.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from botocore.exceptions import ClientError

from dataflow.backoff import full_jitter
from dataflow.records import KinesisRecord

MIN_POLL_S = 0.2  # Kinesis allows 5 GetRecords calls per second per shard
BACKOFF_BASE_S = 0.2
BACKOFF_MAX_S = 10.0
# A shard counts as caught up after this many consecutive empty pages each reporting at most this lag.
CAUGHT_UP_PAGES = 2
CAUGHT_UP_LAG_MS = 1000


@dataclass(frozen=True)
class Page:
    """One GetRecords answer: its records, its MillisBehindLatest, and whether the shard ended with it."""

    records: list[KinesisRecord]
    lag_ms: int | None
    drained: bool  # a null NextShardIterator: Kinesis's only sign that a closed shard is fully read


@dataclass
class ShardReader:
    """Read state of one active shard.

    `quiet_pages` counts consecutive empty pages near the tip: Kinesis returns empty pages in the middle of a
    shard too, so one is not proof of being caught up.
    """

    shard_id: str
    iterator: str | None = None
    next_poll: datetime = field(default_factory=lambda: datetime.now(UTC))
    failures: int = 0
    quiet_pages: int = 0
    behind: bool = False  # the last page reported MillisBehindLatest > 0: Kinesis has newer records

    @property
    def caught_up(self) -> bool:
        return self.quiet_pages >= CAUGHT_UP_PAGES

    def read(self, client: Any, stream: str, limit: int, iterator_args: Callable[[], dict[str, Any]]) -> Page:
        """One GetRecords call, acquiring an iterator first when there is none (raises the client's errors)."""
        if self.iterator is None:
            resp = client.get_shard_iterator(StreamName=stream, ShardId=self.shard_id, **iterator_args())
            self.iterator = resp["ShardIterator"]
        resp = client.get_records(ShardIterator=self.iterator, Limit=limit)
        self.failures = 0
        records = [
            KinesisRecord(
                shard_id=self.shard_id,
                sequence_number=r["SequenceNumber"],
                partition_key=r.get("PartitionKey", ""),
                arrival_ms=int(r["ApproximateArrivalTimestamp"].timestamp() * 1000),
                data=bytes(r["Data"]),
            )
            for r in resp.get("Records", [])
        ]
        self.iterator = resp.get("NextShardIterator")
        return Page(records, resp.get("MillisBehindLatest"), self.iterator is None)

    def schedule(self, page: Page, now: datetime, poll_s: float, idle_max_s: float) -> None:
        """Set the next poll after a page of a shard that goes on (see `poll_interval`)."""
        quiet = not page.records and (page.lag_ms is None or page.lag_ms <= CAUGHT_UP_LAG_MS)
        self.behind = bool(page.lag_ms)
        self.quiet_pages = self.quiet_pages + 1 if quiet else 0
        self.next_poll = now + timedelta(seconds=poll_interval(self, poll_s, idle_max_s))

    def failed(self, now: datetime) -> float:
        """A read failed: drop the iterator (re-acquired from the checkpoint) and back off; the delay in s."""
        self.iterator = None
        self.quiet_pages = 0
        delay = full_jitter(self.failures, BACKOFF_BASE_S, BACKOFF_MAX_S, floor=MIN_POLL_S)
        self.failures += 1
        self.next_poll = now + timedelta(seconds=delay)
        return delay


def error_code(err: ClientError) -> str:
    return str(err.response.get("Error", {}).get("Code", "ClientError"))


def poll_interval(reader: ShardReader, poll_s: float, idle_max_s: float) -> float:
    """How long a shard waits for its next GetRecords call.

    A shard with a backlog is read as fast as Kinesis allows (5 calls/s). A caught-up shard is read every
    `poll_s`, doubling with each further empty page up to `idle_max_s`: the 5 calls/s are shared by every
    consumer of the stream, AWS recommends one call per second per application on an idle shard, and each
    call costs this process CPU while it waits (a caught-up source polling 4 shards at 4/s used ~0.8% of a core
    per worker). A page with records brings the shard back to full speed at once; a record that arrives on
    an idle shard waits at most `idle_max_s` to be read. An empty page that reports a lag (Kinesis: newer records
    exist; also an empty page mid-shard) does not wait long: the next call comes after `poll_s`.
    """
    if not reader.caught_up:
        return MIN_POLL_S
    if reader.behind:
        return poll_s
    doublings = min(reader.quiet_pages - CAUGHT_UP_PAGES, 16)  # quiet_pages grows without bound on an idle shard
    return min(max(poll_s, idle_max_s), poll_s * 2**doublings)
