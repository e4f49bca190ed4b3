"""What a shard is, who owns it, how to list them all, and where a shard with no checkpoint starts.

Pure functions of the API's answers and the settings; `partition.py` does the reading.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from dataflow.settings import StartPosition


def shard_owner(shard_id: str, partitions: int) -> int:
    """The virtual partition that owns a shard: a stable hash, the same in every process and run.

    MD5 rather than CRC32: CRC is linear, so sequential shard ids land on partitions of one parity.
    """
    return int.from_bytes(hashlib.md5(shard_id.encode(), usedforsecurity=False).digest()[:8], "big") % partitions


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
