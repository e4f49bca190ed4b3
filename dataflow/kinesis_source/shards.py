"""Shard bookkeeping for the Kinesis source: who owns a shard, what is drained, what a shard is, how far its
reader got, where a shard with no checkpoint starts, and how long to wait while held back.
`dataflow.kinesis_source.partition` does the reading."""

from __future__ import annotations

import hashlib
import random
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from dataflow.settings import StartPosition

MIN_POLL_S = 0.2  # Kinesis allows 5 GetRecords calls per second per shard
BACKOFF_BASE_S = 0.2
BACKOFF_MAX_S = 10.0
BACKPRESSURE_WAIT_S = 0.02  # first look again this soon when the enrichment buffers are full, then back off


def shard_owner(shard_id: str, partitions: int) -> int:
    """The virtual partition that owns a shard: a stable hash, the same in every process and run.

    MD5 rather than CRC32: CRC is linear, so sequential shard ids land on partitions of one parity.
    """
    return int.from_bytes(hashlib.md5(shard_id.encode(), usedforsecurity=False).digest()[:8], "big") % partitions


def backoff_s(attempt: int, base: float = BACKOFF_BASE_S, cap: float = BACKOFF_MAX_S) -> float:
    """Exponential backoff with full jitter (AWS architecture blog), never below the poll floor."""
    return max(MIN_POLL_S, random.uniform(0, min(cap, base * (2**attempt))))


class DrainLedger:
    """Which shards are drained, shared by the partitions of one process (they may run on any worker)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._drained: set[tuple[str, str]] = set()
        self._local_parts: set[tuple[str, int]] = set()
        self._caught_up: dict[tuple[str, int], bool] = {}

    def reset(self) -> None:
        """Forget everything: a process-global ledger must not leak from one run (or test) into the next."""
        with self._lock:
            self._drained.clear()
            self._local_parts.clear()
            self._caught_up.clear()

    def register(self, stream: str, index: int) -> None:
        with self._lock:
            self._local_parts.add((stream, index))

    def owns(self, stream: str, index: int) -> bool:
        with self._lock:
            return (stream, index) in self._local_parts

    def mark_drained(self, stream: str, shard_id: str) -> None:
        with self._lock:
            self._drained.add((stream, shard_id))

    def forget(self, stream: str, shard_id: str) -> None:
        """The shard left the listing: nothing will ask about it again."""
        with self._lock:
            self._drained.discard((stream, shard_id))

    def is_drained(self, stream: str, shard_id: str) -> bool:
        with self._lock:
            return (stream, shard_id) in self._drained

    def set_caught_up(self, stream: str, index: int, caught_up: bool) -> None:
        with self._lock:
            self._caught_up[(stream, index)] = caught_up

    def all_caught_up(self, stream: str) -> bool:
        """True when every partition of this process reading `stream` has caught up."""
        with self._lock:
            parts = [p for p in self._local_parts if p[0] == stream]
            return all(self._caught_up.get(p, False) for p in parts)


LEDGER = DrainLedger()


@dataclass(frozen=True)
class ShardInfo:
    shard_id: str
    parents: tuple[str, ...]
    ending_sequence: str | None

    @classmethod
    def from_api(cls, shard: dict[str, Any]) -> ShardInfo:
        parents = tuple(p for p in (shard.get("ParentShardId"), shard.get("AdjacentParentShardId")) if p)
        return cls(shard["ShardId"], parents, shard.get("SequenceNumberRange", {}).get("EndingSequenceNumber"))

    @property
    def closed(self) -> bool:
        return self.ending_sequence is not None


@dataclass
class ShardReader:
    """Read state of one active shard; only the partition's positions are checkpointed.

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


# A shard counts as caught up after this many consecutive empty pages each reporting at most this lag.
CAUGHT_UP_PAGES = 2
CAUGHT_UP_LAG_MS = 1000


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


def list_all_shards(client: Any, stream: str) -> list[dict[str, Any]]:
    """Every shard of `stream`, following ListShards pages (Kinesis wants NextToken alone, without the name)."""
    resp = client.list_shards(StreamName=stream)
    shards: list[dict[str, Any]] = list(resp.get("Shards", []))
    while resp.get("NextToken"):
        resp = client.list_shards(NextToken=resp["NextToken"])
        shards.extend(resp.get("Shards", []))
    return shards


def start_iterator(
    position: str | None, start: StartPosition, info: ShardInfo | None, job_start: datetime | None, now: datetime
) -> tuple[dict[str, Any], str | None]:
    """GetShardIterator arguments for a shard, and the `ts:` position to checkpoint before its first record.

    A checkpoint wins. Without one, KINESIS_START_POSITION applies to every shard, children included: a child
    under LATEST starts at the job's start (all of it when its parents were read by this job, nothing from
    before the job); without a known job start (a state from an older version) it falls back to TRIM_HORIZON.
    """
    if position and position.startswith("seq:"):
        return {"ShardIteratorType": "AFTER_SEQUENCE_NUMBER", "StartingSequenceNumber": position[4:]}, None
    if position and position.startswith("ts:"):
        return {"ShardIteratorType": "AT_TIMESTAMP", "Timestamp": datetime.fromisoformat(position[3:])}, None
    stamp: datetime | None = None
    if start.kind == "AT_TIMESTAMP" and start.timestamp is not None:
        stamp = start.timestamp
    elif start.kind == "LATEST" and info is not None and info.parents:
        if job_start is None:
            return {"ShardIteratorType": "TRIM_HORIZON"}, None
        stamp = job_start
    elif start.kind == "LATEST":
        # Remember when we started so a restart before the first record loses nothing.
        return {"ShardIteratorType": "LATEST"}, f"ts:{now.isoformat()}"
    if stamp is not None:
        return {"ShardIteratorType": "AT_TIMESTAMP", "Timestamp": stamp}, f"ts:{stamp.isoformat()}"
    return {"ShardIteratorType": "TRIM_HORIZON"}, None


@dataclass
class HoldBack:
    """How long a source held back by full enrichment buffers waits before it looks at the room again.

    Results free room; while none completes (a slow model) the wait doubles up to `max_wait_s`, so a long
    wait costs no CPU (Bytewax wakes a source only at its `next_awake`); once room was freed since the last
    look, the buffer is moving and the wait starts again at 20 ms.
    """

    max_wait_s: float
    wait_s: float = BACKPRESSURE_WAIT_S
    held: bool = False
    freed_seen: int = -1

    def hold(self, freed: int) -> None:
        still = self.held and freed == self.freed_seen
        self.wait_s = min(self.wait_s * 2, max(BACKPRESSURE_WAIT_S, self.max_wait_s)) if still else BACKPRESSURE_WAIT_S
        self.held, self.freed_seen = True, freed

    def release(self) -> None:
        self.held = False
