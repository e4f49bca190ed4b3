"""The real dataflow (`python -m bytewax.run dataflow.flow`) against the local stack, end to end."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest

from tests.faults.accounting import put_raw
from tests.plugins.stack import Pipeline, recovery_args

pytestmark = pytest.mark.integration


def test_every_review_is_indexed_or_dead_lettered(pipeline: Pipeline) -> None:
    pipeline.produce(300)
    put_raw(pipeline, [b"not json", b'{"review_id": "no-text", "user_id": "u", "date_time": 1}'])
    pipeline.run_flow("-w", "2", extra_env={"BEDROCK_REVIEWS_PER_REQUEST": "4"})
    assert pipeline.count() == 300
    assert pipeline.count("OPENSEARCH_DLQ_INDEX") == 2
    doc = pipeline.opensearch.get(index=pipeline.env["OPENSEARCH_INDEX"], id="synthetic-7-0")["_source"]
    assert doc["sentiment"] in ("positive", "negative") and doc["summary"]
    assert doc["shard_id"].startswith("shardId-") and int(doc["input_tokens"]) > 0
    # A replay of the whole stream overwrites: still one document per review.
    pipeline.run_flow("-w", "1")
    assert pipeline.count() == 300


def test_two_processes_share_the_shards(pipeline: Pipeline, tmp_path: Path) -> None:
    from devstack.processes import free_port

    pipeline.produce(400)
    addresses = f"127.0.0.1:{free_port()};127.0.0.1:{free_port()}"
    procs = [pipeline.start_flow("-i", str(i), "-a", addresses, log=tmp_path / f"proc{i}.log") for i in range(2)]
    try:
        pipeline.wait_for(lambda: all(p.poll() is not None for p in procs), what="both processes to end")
        assert [proc.returncode for proc in procs] == [0, 0]
    finally:
        for proc in procs:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
    logs = [(tmp_path / f"proc{i}.log").read_text() for i in range(2)]
    started = [log.count("kinesis.shard_started") for log in logs]
    assert sum(started) == 4 and all(started), f"each process should read some of the 4 shards: {started}"
    assert pipeline.count() == 400
    assert len(set(pipeline.ids())) == 400


def test_sigkill_and_recover_loses_nothing(pipeline: Pipeline, tmp_path: Path) -> None:
    total = 600
    pipeline.produce(total)
    args = recovery_args(tmp_path / "recovery")
    pipeline.bedrock_config(latency_ms=40)
    slow = {"BEDROCK_MAX_CONCURRENCY": "3"}
    proc = pipeline.start_flow(*args, log=tmp_path / "first.log", extra_env=slow)
    try:
        pipeline.wait_for(lambda: pipeline.count() >= total // 4, timeout=120, what="a quarter indexed")
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    at_kill = pipeline.count()
    assert 0 < at_kill < total, "the kill should land mid-run"
    pipeline.bedrock_config(latency_ms=0)
    pipeline.run_flow(*args)
    assert pipeline.count() == total
    assert pipeline.count("OPENSEARCH_DLQ_INDEX") == 0
    assert len(set(pipeline.ids())) == total
