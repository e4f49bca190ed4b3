"""Which partitions a pod holds, and what its init step must do to hold exactly those (pure: no I/O).

Partition i lives on the pod whose ordinal is i % replicas: every pod computes the same answer from the same
BYTEWAX_REPLICAS, so the set is spread once, whatever the cluster's size. The plan refuses, with one line
naming the fix, to start from a set that Bytewax would refuse or, worse, silently resume from the stream's
start: a partition count that changed, a partition missing from the store, a file from another set.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from dataflow.recovery.partition_file import PartitionInfo
from dataflow.recovery.store import Manifest, StoredCopy


class LayoutError(RuntimeError):
    """Starting would lose or duplicate recovery state; the message is one line naming the fix."""


def owned(ordinal: int, replicas: int, count: int) -> list[int]:
    return [i for i in range(count) if i % replicas == ordinal]


@dataclass
class Plan:
    """What the init step does: fetch the stored copy, keep the local one (written by this pod's last run, at
    least as new as anything it stored), or drop a partition this pod no longer owns (its last run stored it)."""

    fetch: list[int] = field(default_factory=list)
    keep: list[int] = field(default_factory=list)
    drop: list[int] = field(default_factory=list)


def plan(
    *,
    ordinal: int,
    replicas: int,
    count: int,
    manifest: Manifest,
    stored: dict[int, StoredCopy],
    local: dict[int, PartitionInfo],
    store_url: str,
) -> Plan:
    if manifest.partitions != count:
        raise LayoutError(
            f"recovery.partition_count_changed store={store_url} holds {manifest.partitions} partitions but "
            f"RECOVERY_PARTITIONS={count}: Bytewax keys its state by the count, so it cannot change on a running "
            f"deployment; set it back to {manifest.partitions} (or point RECOVERY_STORE_URL at a new prefix to "
            "start over from KINESIS_START_POSITION)"
        )
    missing = sorted(set(range(count)) - stored.keys())
    if missing:
        raise LayoutError(
            f"recovery.partitions_missing store={store_url} lacks partitions {missing} of {count}: restore them "
            'from the bucket\'s previous object versions (docs/DEPLOY.md "Operating it"); starting without them '
            "would re-read their shards from KINESIS_START_POSITION"
        )
    strangers = sorted(i for i, info in local.items() if info.count != count or info.index != i)
    if strangers:
        raise LayoutError(
            f"recovery.foreign_partitions files {strangers} in this pod's directory belong to a set of another "
            f"size than {count}: delete them (the store holds the set)"
        )
    mine = set(owned(ordinal, replicas, count))
    result = Plan()
    for i in sorted(mine):
        (result.keep if i in local else result.fetch).append(i)
    result.drop = sorted(local.keys() - mine)
    return result
