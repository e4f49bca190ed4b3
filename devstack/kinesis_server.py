"""moto's server as the local Kinesis, with its resharding behaviour made faithful to Kinesis.

moto differs from Kinesis in three ways that matter to a reader that follows resharding:
- it routes a record to the first shard whose hash range covers the key, closed or not, so new records
  can land in a closed parent (whose EndingSequenceNumber then keeps moving);
- SplitShard moves the parent's records into the children, under new sequence numbers;
- MergeShards copies both parents' records into the merged shard, so they exist twice.
Kinesis leaves records in the closed parents and writes new ones only to open shards. This launcher patches
those three methods to behave like Kinesis, then runs moto's own server CLI unchanged:

    python -m devstack.kinesis_server -H 127.0.0.1 -p 4567
"""

from __future__ import annotations

import sys

from moto.kinesis import models
from moto.kinesis.exceptions import InvalidArgumentError
from moto.utilities.utils import md5_hash


def _open_shard_for_key(self: models.Stream, partition_key: str, explicit_hash_key: str) -> models.Shard | None:
    if not isinstance(partition_key, str) or len(partition_key) > 256:
        raise InvalidArgumentError("partition_key")
    if explicit_hash_key:
        key = int(explicit_hash_key)
        if key >= 2**128:
            raise InvalidArgumentError("explicit_hash_key")
    else:
        key = int(md5_hash(partition_key.encode("utf-8")).hexdigest(), 16)
    for shard in self.shards.values():
        if shard.is_open and shard.starting_hash <= key <= shard.ending_hash:
            return shard
    return None


def _next_shard_number(self: models.Stream) -> int:
    return max(shard._shard_id for shard in self.shards.values()) + 1


def _split_shard(self: models.Stream, shard_to_split: str, new_starting_hash_key: str) -> None:
    shard = self.shards[shard_to_split]
    split_at = int(new_starting_hash_key)
    if not shard.starting_hash < split_at <= shard.ending_hash:
        raise InvalidArgumentError(f"NewStartingHashKey {split_at} is outside shard {shard_to_split}")
    if not shard.is_open:
        raise InvalidArgumentError(f"Shard {shard_to_split} has already been merged or split")
    first = _next_shard_number(self)
    for number, (low, high) in enumerate(((shard.starting_hash, split_at - 1), (split_at, shard.ending_hash))):
        child = models.Shard(first + number, low, high, parent=shard.shard_id)
        self.shards[child.shard_id] = child
    shard.is_open = False


def _merge_shards(self: models.Stream, shard_to_merge: str, adjacent_shard_to_merge: str) -> None:
    shard1, shard2 = self.shards[shard_to_merge], self.shards[adjacent_shard_to_merge]
    low, high = sorted((shard1, shard2), key=lambda s: s.starting_hash)
    if low.ending_hash + 1 != high.starting_hash or not (shard1.is_open and shard2.is_open):
        raise InvalidArgumentError(adjacent_shard_to_merge)
    merged = models.Shard(
        _next_shard_number(self),
        low.starting_hash,
        high.ending_hash,
        parent=shard1.shard_id,
        adjacent_parent=shard2.shard_id,
    )
    self.shards[merged.shard_id] = merged
    shard1.is_open = False
    shard2.is_open = False


def patch_moto() -> None:
    models.Stream.get_shard_for_key = _open_shard_for_key  # type: ignore[method-assign]
    models.Stream.split_shard = _split_shard  # type: ignore[method-assign]
    models.Stream.merge_shards = _merge_shards  # type: ignore[method-assign]


def main(argv: list[str] | None = None) -> None:
    patch_moto()
    from moto.server import main as moto_main

    moto_main(argv if argv is not None else sys.argv[1:])


if __name__ == "__main__":
    main()
