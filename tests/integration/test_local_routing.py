"""2 processes x 2 workers on 2 shards (the deployment's default shape, fewer shards than workers): each shard is
enriched in the process that reads it, so its reader's backpressure holds, no step waits at its queue's cap
holding up the cluster's epochs, and results leave as they finish rather than in lumps (BENCHMARKS.md "Uneven
work"; dataflow/channels/routes.py).

The routing is left to ENRICH_LOCAL_KEY_TRIES's default, `auto`, which each process decides from the stream's open
shards and the `-w`/`-a` it was started with. Keyed by shard id alone (ENRICH_LOCAL_KEY_TRIES=1, what `auto`
chooses for a shard per worker), Bytewax sends a shard of this stream to the other process, and this test fails
on both counts."""

from __future__ import annotations

import re
import uuid
from pathlib import Path

import pytest

from devstack.stack import create_stream
from tests.faults.accounting import kill_group
from tests.integration.conftest import Pipeline

pytestmark = pytest.mark.integration


def shards_read(log: str) -> set[str]:
    return set(re.findall(r"kinesis\.shard_started partition=\d+ shard=(\S+)", log))


def shards_enriched(log: str) -> set[str]:
    return set(re.findall(r"enrich\.key_started worker=\S+ shard=(\S+) key=", log))


def test_each_shard_is_enriched_where_it_is_read(pipeline: Pipeline, tmp_path: Path) -> None:
    from devstack.processes import free_port

    assert pipeline.stack.kinesis is not None
    name = f"routing-{uuid.uuid4().hex[:8]}"
    create_stream(pipeline.stack.kinesis.url, name, 2)
    two_shards = Pipeline(
        {
            **pipeline.env,
            "KINESIS_STREAM_NAME": name,
            "OPENSEARCH_INDEX": f"{name}-processed",
            "OPENSEARCH_DLQ_INDEX": f"{name}-dlq",
        },
        pipeline.stack,
    )
    total = 600
    two_shards.produce(total)
    # ~10 reviews/s per engine (window 2, 200 ms) against a reader allowed 8 per poll, 5 polls/s: a shard read in
    # the other process fills its enriching step's queue past the cap (4 x 8) within a second or two.
    two_shards.bedrock_config(latency_ms=200)
    env = {
        "BEDROCK_MAX_CONCURRENCY": "2",
        "BEDROCK_INITIAL_CONCURRENCY": "2",
        "BEDROCK_MAX_BUFFERED": "8",
        "KINESIS_POLL_INTERVAL_S": "0.2",
        "LOG_LEVEL": "INFO",
    }
    addresses = f"127.0.0.1:{free_port()};127.0.0.1:{free_port()}"
    logs = [tmp_path / f"proc{i}.log" for i in range(2)]
    args = ("-w", "2", "-a", addresses)
    procs = [two_shards.start_flow(*args, "-i", str(i), log=logs[i], extra_env=env) for i in (0, 1)]
    try:
        for proc in procs:
            assert proc.wait(timeout=300) == 0, "a dataflow process failed"
    finally:
        for proc in procs:
            kill_group(proc)
    text = [log.read_text() for log in logs]
    for i in (0, 1):
        assert "enrich.route_auto open_shards=2 processes=2 workers=4 tries=16" in text[i], f"process {i}"
    assert sorted(two_shards.ids()) == sorted(set(two_shards.ids())) and two_shards.count() == total
    read = [shards_read(t) for t in text]
    assert sorted(read[0] | read[1]) == sorted(read[0] ^ read[1]) and len(read[0] | read[1]) == 2, read
    for i in (0, 1):
        missing = read[i] - shards_enriched(text[i])
        assert not missing, f"process {i} reads {sorted(missing)} but another process enriches them"
    waited = [i for i in (0, 1) if "enrich.held_back_full" in text[i]]
    assert not waited, f"process {waited} waited at its queue's cap, holding up every epoch"
