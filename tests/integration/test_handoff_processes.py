"""Two processes, one shard: the shard is read in one process and enriched in the other (the enrichment step
is keyed by shard, and Bytewax routes keys by hash), so the reader's backpressure (its own, idle, buffers)
cannot hold it back. The enrichment step must still never block: epochs, hence checkpoints, keep closing
while it works through what it was sent."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from devstack.stack import create_stream
from tests.integration.conftest import ROOT, Pipeline

pytestmark = pytest.mark.integration


def checkpointed_frontier(recovery: Path) -> int:
    """The epoch every worker of the latest execution has completed (the checkpoint a resume would use)."""
    fronts: list[int] = []
    for db in recovery.glob("part-*.sqlite3"):
        with sqlite3.connect(db) as conn:
            fronts += [row[0] for row in conn.execute("SELECT worker_frontier FROM fronts")]
    return min(fronts, default=0)


def test_enrichment_fed_from_another_process_never_stops_checkpoints(pipeline: Pipeline, tmp_path: Path) -> None:
    from devstack.processes import free_port

    assert pipeline.stack.kinesis is not None
    name = f"handoff-{uuid.uuid4().hex[:8]}"
    create_stream(pipeline.stack.kinesis.url, name, 1)
    one_shard = Pipeline(
        {**pipeline.env, "KINESIS_STREAM_NAME": name, "OPENSEARCH_INDEX": f"{name}-processed"}, pipeline.stack
    )
    total = 160
    one_shard.produce(total)
    one_shard.bedrock_config(latency_ms=150)
    recovery = tmp_path / "recovery"
    recovery.mkdir()
    subprocess.run([sys.executable, "-m", "bytewax.recovery", str(recovery), "2"], check=True, cwd=ROOT)
    slow = {"BEDROCK_MAX_CONCURRENCY": "2", "BEDROCK_INITIAL_CONCURRENCY": "2", "BEDROCK_MAX_BUFFERED": "4"}
    addresses = f"127.0.0.1:{free_port()};127.0.0.1:{free_port()}"
    args = ("-w", "1", "-a", addresses, "-r", str(recovery), "-s", "1", "-b", "0")
    logs = [tmp_path / f"proc{i}.log" for i in range(2)]
    procs = [one_shard.start_flow(*args, "-i", str(i), log=logs[i], extra_env=slow) for i in range(2)]
    frontiers: list[int] = []
    try:
        # While the enrichment works through its backlog (~10 reviews/s), record the checkpointed epoch.
        def progress() -> bool:
            assert all(proc.poll() in (None, 0) for proc in procs), "a dataflow process failed"
            if one_shard.count() < total // 2:
                frontiers.append(checkpointed_frontier(recovery))
                return False
            return True

        one_shard.wait_for(progress, timeout=120, what="half of the reviews indexed")
        for proc in procs:
            assert proc.wait(timeout=120) == 0
    finally:
        for proc in procs:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
    text = [log.read_text() for log in logs]
    reader = [i for i in range(2) if "kinesis.shard_started" in text[i]]
    enricher = [i for i in range(2) if "enrich.emit_delay" in text[i]]
    assert len(reader) == 1 and len(enricher) == 1
    assert reader != enricher, "premise: the shard is read in one process and enriched in the other"
    assert one_shard.count() == total
    # Checkpoints kept moving while the enrichment was saturated (a blocked step would freeze them).
    assert len(set(frontiers)) >= 3, frontiers
