"""A shard split and, later, a merge while the flow runs and the producer keeps producing: the source
follows the new shards (children after their parents) and every record, in parents or children, is
accounted for."""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Callable
from contextlib import ExitStack
from itertools import pairwise
from pathlib import Path
from typing import Any

import pytest

from devstack.processes import free_port
from tests.faults.accounting import (
    bedrock_summary,
    check_accounting,
    flow_process,
    kinesis,
    log_size,
    read_stream,
    synthetic_ids,
    wait_until,
)
from tests.integration.conftest import Pipeline

pytestmark = [pytest.mark.faults, pytest.mark.integration, pytest.mark.slow]

SEED = 99
PHASE = 200


def list_shards(pipeline: Pipeline) -> list[dict[str, Any]]:
    client = kinesis(pipeline)
    resp = client.list_shards(StreamName=pipeline.env["KINESIS_STREAM_NAME"])
    shards = list(resp["Shards"])
    while resp.get("NextToken"):
        resp = client.list_shards(NextToken=resp["NextToken"])
        shards.extend(resp["Shards"])
    return shards


def open_shards(pipeline: Pipeline) -> list[dict[str, Any]]:
    """Open shards (no ending sequence number) in hash-key order."""
    live = [s for s in list_shards(pipeline) if "EndingSequenceNumber" not in s["SequenceNumberRange"]]
    return sorted(live, key=lambda s: int(s["HashKeyRange"]["StartingHashKey"]))


def wait_active(pipeline: Pipeline) -> None:
    client = kinesis(pipeline)
    name = pipeline.env["KINESIS_STREAM_NAME"]
    status = lambda: client.describe_stream_summary(StreamName=name)["StreamDescriptionSummary"]["StreamStatus"]  # noqa: E731
    wait_until(lambda: status() == "ACTIVE", 30, "the stream to be ACTIVE", progress=status)


def accounted(pipeline: Pipeline) -> int:
    return pipeline.count() + pipeline.count("OPENSEARCH_DLQ_INDEX")


def wait_accounted(pipeline: Pipeline, at_least: int, what: str, log: Path, procs: list) -> None:
    """Wait until `at_least` reviews are indexed or dead-lettered, failing if a flow dies or all stalls."""

    def done() -> bool:
        dead = [p for p in procs if p.poll() is not None]
        assert not dead, f"a flow process died:\n{log.read_text()[-3000:]}"
        return accounted(pipeline) >= at_least

    wait_until(done, 90, what, log, progress=lambda: (accounted(pipeline), log_size(log)))


def event_line(text: str, event: str, shard_id: str) -> int:
    """The line number of the first `event` for `shard_id` in the flow's log; -1 when absent."""
    lines = text.splitlines()
    return next((i for i, ln in enumerate(lines) if f"event={event} " in ln and f"shard={shard_id}" in ln), -1)


def assert_children_after_parents(pipeline: Pipeline, text: str) -> None:
    """One process owns every partition, so a child must start only after each parent has drained."""
    for shard in list_shards(pipeline):
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
        wait_accounted(faulty, PHASE // 2, "half of phase 1 indexed", log, [proc])
        parent = rng.choice(open_shards(faulty))
        low, high = int(parent["HashKeyRange"]["StartingHashKey"]), int(parent["HashKeyRange"]["EndingHashKey"])
        client.split_shard(StreamName=name, ShardToSplit=parent["ShardId"], NewStartingHashKey=str((low + high) // 2))
        wait_active(faulty)
        faulty.produce(PHASE, seed=2)
        wait_accounted(faulty, PHASE + PHASE // 2, "half of phase 2 indexed", log, [proc])
        shards = open_shards(faulty)
        # Prefer a pair with different parents: a child of the split and an original shard.
        pairs = [(a, b) for a, b in pairwise(shards) if a.get("ParentShardId") != b.get("ParentShardId")]
        first, second = rng.choice(pairs)
        client.merge_shards(StreamName=name, ShardToMerge=first["ShardId"], AdjacentShardToMerge=second["ShardId"])
        wait_active(faulty)
        faulty.produce(PHASE, seed=3)
        total = 3 * PHASE
        wait_accounted(faulty, total, "every record indexed or dead-lettered", log, [proc])
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


def shard_events(text: str) -> dict[tuple[str, str], int]:
    """(event, shard) -> line number of its first occurrence, for the source's shard events in one log."""
    out: dict[tuple[str, str], int] = {}
    for number, line in enumerate(text.splitlines()):
        for event in ("kinesis.shard_started", "kinesis.shard_drained"):
            if f"event={event} " in line:
                shard = line.split("shard=", 1)[1].split()[0]
                out.setdefault((event, shard), number)
    return out


def test_reshard_in_a_two_process_run(
    faulty: Pipeline, tmp_path: Path, record_property: Callable[[str, object], None]
) -> None:
    """Every shard split while two processes read: nothing lost or duplicated; a child whose parent is read
    by the same process starts only after that parent drained (exact); a child whose parent is read by the
    other process starts only once the parent is closed (the best-effort rule the README states)."""
    client = kinesis(faulty)
    name = faulty.env["KINESIS_STREAM_NAME"]
    env = {"KINESIS_STOP_AT_END": "false", "KINESIS_DISCOVERY_INTERVAL_S": "1"}
    # Bytewax needs every address up front: these ports are chosen before the processes bind them.
    addresses = ";".join(f"127.0.0.1:{free_port()}" for _ in range(2))
    logs = [tmp_path / f"proc{i}.log" for i in range(2)]
    faulty.produce(PHASE, seed=1)
    with ExitStack() as stack:
        procs = [
            stack.enter_context(
                flow_process(faulty, "-w", "1", "-i", str(i), "-a", addresses, log=logs[i], extra_env=env)
            )
            for i in range(2)
        ]
        wait_accounted(faulty, PHASE // 2, "half of phase 1 indexed", logs[0], procs)
        parents = open_shards(faulty)
        for shard in parents:
            low, high = int(shard["HashKeyRange"]["StartingHashKey"]), int(shard["HashKeyRange"]["EndingHashKey"])
            client.split_shard(
                StreamName=name, ShardToSplit=shard["ShardId"], NewStartingHashKey=str((low + high) // 2)
            )
        wait_active(faulty)
        faulty.produce(PHASE, seed=2)
        wait_accounted(faulty, 2 * PHASE, "every record indexed or dead-lettered", logs[0], procs)
    check_accounting(
        faulty,
        synthetic_ids(PHASE, 1) | synthetic_ids(PHASE, 2),
        "reshard 2 processes",
        record_property,
        f"split={len(parents)} {bedrock_summary(faulty)}",
    )
    events = [shard_events(log.read_text()) for log in logs]
    reader_of = {shard: i for i, ev in enumerate(events) for (kind, shard) in ev if kind == "kinesis.shard_started"}
    same = cross = 0
    for shard in list_shards(faulty):
        for parent in (shard.get("ParentShardId"), shard.get("AdjacentParentShardId")):
            if not parent:
                continue
            child_proc, parent_proc = reader_of[shard["ShardId"]], reader_of[parent]
            started = events[child_proc][("kinesis.shard_started", shard["ShardId"])]
            if child_proc == parent_proc:
                same += 1
                drained = events[child_proc].get(("kinesis.shard_drained", parent), -1)
                assert 0 <= drained < started, f"{shard['ShardId']} started before {parent} drained (same process)"
            else:
                cross += 1
    record_property("reshard_pairs", f"same_process={same} cross_process={cross}")
    assert same and cross, f"the split should give both kinds of parent/child pairs: same={same} cross={cross}"
