"""A shard split and, later, a merge while the flow runs and the producer keeps producing: the source
follows the new shards (children after their parents) and every record, in parents or children, is
accounted for."""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Callable
from itertools import pairwise
from pathlib import Path
from typing import Any

import pytest

from tests.faults.accounting import (
    bedrock_summary,
    check_accounting,
    flow_process,
    kinesis,
    read_stream,
    synthetic_ids,
    wait_until,
)
from tests.integration.conftest import Pipeline

pytestmark = [pytest.mark.faults, pytest.mark.integration, pytest.mark.slow]

SEED = 99
PHASE = 200


def open_shards(pipeline: Pipeline) -> list[dict[str, Any]]:
    """Open shards (no ending sequence number) in hash-key order."""
    shards = kinesis(pipeline).list_shards(StreamName=pipeline.env["KINESIS_STREAM_NAME"])["Shards"]
    live = [s for s in shards if "EndingSequenceNumber" not in s["SequenceNumberRange"]]
    return sorted(live, key=lambda s: int(s["HashKeyRange"]["StartingHashKey"]))


def wait_active(pipeline: Pipeline) -> None:
    client = kinesis(pipeline)
    name = pipeline.env["KINESIS_STREAM_NAME"]
    wait_until(
        lambda: client.describe_stream_summary(StreamName=name)["StreamDescriptionSummary"]["StreamStatus"] == "ACTIVE",
        30,
        "the stream to be ACTIVE",
    )


def event_line(text: str, event: str, shard_id: str) -> int:
    """The line number of the first `event` for `shard_id` in the flow's log; -1 when absent."""
    lines = text.splitlines()
    return next((i for i, ln in enumerate(lines) if f"event={event} " in ln and f"shard={shard_id}" in ln), -1)


def assert_children_after_parents(pipeline: Pipeline, text: str) -> None:
    """One process owns every partition, so a child must start only after each parent has drained."""
    shards = kinesis(pipeline).list_shards(StreamName=pipeline.env["KINESIS_STREAM_NAME"])["Shards"]
    for shard in shards:
        parents = [p for p in (shard.get("ParentShardId"), shard.get("AdjacentParentShardId")) if p]
        started = event_line(text, "kinesis.shard_started", shard["ShardId"])
        for parent in parents:
            drained = event_line(text, "kinesis.shard_drained", parent)
            assert 0 <= drained < started, f"{shard['ShardId']} started (line {started}) before {parent} drained"


def test_split_and_merge_mid_stream_lose_nothing(
    faulty: Pipeline, tmp_path: Path, record_property: Callable[[str, object], None]
) -> None:
    rng = random.Random(SEED)
    client = kinesis(faulty)
    name = faulty.env["KINESIS_STREAM_NAME"]
    log = tmp_path / "flow.log"
    # Runs until stopped: it must follow shards born while it runs, not end when it first catches up.
    env = {"KINESIS_STOP_AT_END": "false", "KINESIS_DISCOVERY_INTERVAL_S": "1"}
    faulty.produce(PHASE, seed=1)
    with flow_process(faulty, "-w", "2", log=log, extra_env=env) as proc:
        wait_until(lambda: faulty.count() >= PHASE // 2, 60, "half of phase 1 indexed", log)
        parent = rng.choice(open_shards(faulty))
        low, high = int(parent["HashKeyRange"]["StartingHashKey"]), int(parent["HashKeyRange"]["EndingHashKey"])
        client.split_shard(StreamName=name, ShardToSplit=parent["ShardId"], NewStartingHashKey=str((low + high) // 2))
        wait_active(faulty)
        faulty.produce(PHASE, seed=2)
        wait_until(lambda: faulty.count() >= PHASE + PHASE // 2, 60, "half of phase 2 indexed", log)
        shards = open_shards(faulty)
        # Prefer a pair with different parents: a child of the split and an original shard.
        pairs = [(a, b) for a, b in pairwise(shards) if a.get("ParentShardId") != b.get("ParentShardId")]
        first, second = rng.choice(pairs)
        client.merge_shards(StreamName=name, ShardToMerge=first["ShardId"], AdjacentShardToMerge=second["ShardId"])
        wait_active(faulty)
        faulty.produce(PHASE, seed=3)
        total = 3 * PHASE
        wait_until(
            lambda: faulty.count() + faulty.count("OPENSEARCH_DLQ_INDEX") >= total or proc.poll() is not None,
            90,
            "every record indexed or dead-lettered",
            log,
        )
        assert proc.poll() is None, f"the flow died:\n{log.read_text()[-3000:]}"
    stream = read_stream(faulty)
    per_shard = dict(sorted(Counter(r.shard_id.rsplit("-", 1)[1].lstrip("0") or "0" for r in stream).items()))
    expected = synthetic_ids(PHASE, 1) | synthetic_ids(PHASE, 2) | synthetic_ids(PHASE, 3)
    result = check_accounting(
        faulty,
        expected,
        "reshard split+merge",
        record_property,
        f"split={parent['ShardId'][-3:]} merged={first['ShardId'][-3:]}+{second['ShardId'][-3:]} "
        f"records_per_shard={per_shard} {bedrock_summary(faulty)}",
    )
    assert_children_after_parents(faulty, log.read_text())
    read_from = {doc["shard_id"] for doc in result.indexed.values()}
    children = {s for s in {r.shard_id for r in stream} if int(s.rsplit("-", 1)[1]) >= 4}
    assert children and children <= read_from, f"children {children} not all read: {read_from}"
