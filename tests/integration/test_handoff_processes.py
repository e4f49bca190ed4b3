"""Two processes, one shard, read in one process and enriched in the other, so the reader's backpressure (its
own, idle, buffers) cannot hold it back. Epochs, hence checkpoints, must keep closing while the enrichment works
through what it was sent, and what it holds must stay bounded.

Since the keyer finds each shard a key enriched where it is read (dataflow/channels/routes.py), this happens
only when it finds none; ENRICH_LOCAL_KEY_TRIES=1 keys by shard id alone, which Bytewax sends to the other
process here. The default is tested in test_local_routing.py."""

from __future__ import annotations

import pickle
import sqlite3
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from devstack.stack import create_stream
from tests.faults.accounting import kill_group
from tests.integration.conftest import ROOT, Pipeline

pytestmark = pytest.mark.integration


def checkpointed_frontier(recovery: Path) -> int:
    """The epoch every worker of the latest execution has completed (the checkpoint a resume would use)."""
    fronts: list[int] = []
    for db in recovery.glob("part-*.sqlite3"):
        with sqlite3.connect(db) as conn:
            fronts += [row[0] for row in conn.execute("SELECT worker_frontier FROM fronts")]
    return min(fronts, default=0)


def held_for_enrichment(recovery: Path) -> int:
    """Reviews in the latest snapshot of the enrichment step (queued, in flight, or emitted and not yet stored):
    what it holds in memory."""
    held = 0
    for db in recovery.glob("part-*.sqlite3"):
        with sqlite3.connect(db) as conn:
            rows = conn.execute(
                "SELECT ser_change FROM snaps WHERE step_id LIKE '%.enrich' ORDER BY snap_epoch DESC LIMIT 1"
            ).fetchall()
        held += sum(len(pickle.loads(row[0]) or []) for row in rows)
    return held


def test_enrichment_fed_from_another_process_never_stops_checkpoints(pipeline: Pipeline, tmp_path: Path) -> None:
    from devstack.processes import free_port

    assert pipeline.stack.kinesis is not None
    name = f"handoff-{uuid.uuid4().hex[:8]}"
    create_stream(pipeline.stack.kinesis.url, name, 1)
    one_shard = Pipeline(
        {**pipeline.env, "KINESIS_STREAM_NAME": name, "OPENSEARCH_INDEX": f"{name}-processed"}, pipeline.stack
    )
    total = 80
    one_shard.produce(total)
    # 2 reviews/s (window 2, 1 s each) against a reader that takes ~20 records/s: the reader outpaces the
    # enrichment even on a loaded machine (at 4 reviews/s it did not, once in four runs).
    one_shard.bedrock_config(latency_ms=1000)
    recovery = tmp_path / "recovery"
    recovery.mkdir()
    subprocess.run([sys.executable, "-m", "bytewax.recovery", str(recovery), "2"], check=True, cwd=ROOT)
    # A streaming run (no end of input: at the end of input Bytewax closes the step, which then finishes all it
    # holds before emitting anything); it is stopped once three quarters are indexed.
    slow = {
        "BEDROCK_MAX_CONCURRENCY": "2",
        "BEDROCK_INITIAL_CONCURRENCY": "2",
        "BEDROCK_MAX_BUFFERED": "4",
        "OPENSEARCH_MAX_PENDING_DOCS": "4",
        "KINESIS_STOP_AT_END": "false",
        "ENRICH_LOCAL_KEY_TRIES": "1",
    }
    addresses = f"127.0.0.1:{free_port()};127.0.0.1:{free_port()}"
    args = ("-w", "1", "-a", addresses, "-r", str(recovery), "-s", "1", "-b", "0")
    logs = [tmp_path / f"proc{i}.log" for i in range(2)]
    procs = [one_shard.start_flow(*args, "-i", str(i), log=logs[i], extra_env=slow) for i in range(2)]
    frontiers: list[int] = []
    indexed: list[int] = []
    held: list[int] = []
    try:
        # The reader takes in ~20 records/s (its own idle buffers let it), the enrichment does 2 reviews/s:
        # while it works through that backlog, record the checkpointed epoch.
        def progress() -> bool:
            assert all(proc.poll() in (None, 0) for proc in procs), "a dataflow process failed"
            indexed.append(one_shard.count())
            frontiers.append(checkpointed_frontier(recovery))
            held.append(held_for_enrichment(recovery))
            return indexed[-1] >= total * 3 // 4

        one_shard.wait_for(progress, timeout=180, what="three quarters of the reviews indexed")
    finally:
        for proc in procs:
            kill_group(proc)
    text = [log.read_text() for log in logs]
    reader = [i for i in range(2) if "kinesis.shard_started" in text[i]]
    enricher = [i for i in range(2) if "enrich.engine_started" in text[i]]
    assert len(reader) == 1 and len(enricher) == 1
    assert reader != enricher, "premise: the shard is read in one process and enriched in the other"
    # Checkpoints kept moving while the enrichment was saturated, one epoch (1 s) at a time; a step that
    # blocks until it has room would let through one epoch per ~20 records read, i.e. per ~10 s of enrichment.
    # So: at least one checkpoint per 8 reviews indexed (2 reviews/s: one per 4 s).
    moved = len(set(frontiers))
    assert moved >= indexed[-1] // 8, f"{moved} {sorted(set(zip(indexed, frontiers, strict=True)))}"
    # Memory stayed bounded: what the step held never passed its queue's cap (4 x BEDROCK_MAX_BUFFERED) plus
    # what its engine may hold, plus the results it emitted that the background writer has not stored yet (its
    # OPENSEARCH_MAX_PENDING_DOCS, and one drain of the engine on its way to the sink), although the reader
    # could have sent it everything (without the cap: ~60).
    assert 0 < max(held) <= 4 * 4 + 4 + 4 + 4, held
    assert "enrich.held_back_full" in text[enricher[0]], "premise: the reader outpaced the enrichment"
