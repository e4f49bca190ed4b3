"""Recovery: an aborted execution resumed from its snapshots loses nothing; in-flight reviews are re-issued."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from bytewax.recovery import RecoveryConfig, init_db_dir
from bytewax.testing import TestingSource, run_main

from tests.dataflow.helpers import flow_with, ids, record, settings
from tests.fakes import FakeBedrock


def test_abort_and_resume_loses_nothing(tmp_path: Path) -> None:
    init_db_dir(tmp_path, 1)
    recovery = RecoveryConfig(str(tmp_path))
    items = [record(n) for n in range(30)] + [TestingSource.ABORT()] + [record(n) for n in range(30, 60)]
    # Slow reviews are still in flight when the abort hits; only the snapshot remembers them.
    bedrock = FakeBedrock(latency=lambda reviews: 0.5 if int(reviews[0][1].split()[2][:-1]) % 5 == 0 else 0.001)
    cfg = settings(BEDROCK_MAX_CONCURRENCY=16)
    results: list = []
    dead: list = []

    flow, registry = flow_with(items, bedrock, cfg, results, dead, batch_size=3)
    run_main(flow, epoch_interval=timedelta(milliseconds=20), recovery_config=recovery)  # stops at the abort
    registry.close()
    first_run = set(ids(results))
    assert "r59" not in first_run
    assert {"r0", "r5", "r10"} - first_run, "slow reviews should still be in flight at the abort"

    flow, registry = flow_with(items, bedrock, cfg, results, dead, batch_size=3)
    run_main(flow, epoch_interval=timedelta(milliseconds=20), recovery_config=recovery)
    registry.close()
    assert dead == []
    assert set(ids(results)) == {f"r{n}" for n in range(60)}
    # At-least-once: repeats are only what the last snapshot had not yet covered; the sink's _id dedupes them.
    assert len(results) - 60 < 30
