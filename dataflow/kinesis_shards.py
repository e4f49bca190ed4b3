"""Shard bookkeeping for the Kinesis source: who owns a shard, what is drained, what a shard is and how far
its reader got. Pure state, no I/O: `dataflow.kinesis_source` does the reading."""

from __future__ import annotations

import hashlib
import random
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

MIN_POLL_S = 0.2  # Kinesis allows 5 GetRecords calls per second per shard
BACKOFF_BASE_S = 0.2
BACKOFF_MAX_S = 10.0


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

    @property
    def caught_up(self) -> bool:
        return self.quiet_pages >= CAUGHT_UP_PAGES


# A shard counts as caught up after this many consecutive empty pages each reporting at most this lag.
CAUGHT_UP_PAGES = 2
CAUGHT_UP_LAG_MS = 1000
