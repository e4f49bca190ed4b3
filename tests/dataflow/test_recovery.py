"""Recovery: an aborted execution resumed from its snapshots loses nothing; in-flight reviews are re-issued."""

from __future__ import annotations

import logging
from datetime import timedelta
from pathlib import Path

import pytest
from bytewax.recovery import RecoveryConfig, init_db_dir
from bytewax.testing import TestingSource, run_main

from tests.dataflow.helpers import flow_with, ids, record, settings
from tests.fakes import FakeBedrock, reviews_in

HUNG = {"r0", "r10", "r20"}


def review_id(reviews: list[tuple[str, str]]) -> str:
    return "r" + reviews[0][1].split()[2].rstrip(":")


def test_abort_and_resume_reissues_the_reviews_in_flight(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    init_db_dir(tmp_path, 1)
    recovery = RecoveryConfig(str(tmp_path))
    # The pauses let epochs close (20 ms each) while the hung reviews are in flight, so the abort comes after a
    # snapshot that holds them; the source resumes after that epoch and will not read them again.
    pause = TestingSource.PAUSE(timedelta(milliseconds=300))
    items = [
        *(record(n) for n in range(30)),
        pause,
        *(record(n) for n in range(30, 40)),
        pause,
        TestingSource.ABORT(),
        *(record(n) for n in range(40, 60)),
    ]
    cfg = settings(BEDROCK_MAX_CONCURRENCY=16, BEDROCK_INITIAL_CONCURRENCY=16, BEDROCK_TIMEOUT_S=60)
    # First run: three reviews never get an answer (still in flight at the abort), the rest answer at once.
    hanging = FakeBedrock(behaviour=lambda n, reviews: "hang" if review_id(reviews) in HUNG else None)
    results: list = []
    dead: list = []
    flow, registry = flow_with(items, hanging, cfg, results, dead, batch_size=5)
    run_main(flow, epoch_interval=timedelta(milliseconds=20), recovery_config=recovery)  # stops at the abort
    registry.close()
    first_run = ids(results)
    assert "r59" not in first_run and not HUNG & set(first_run)
    assert {review_id(reviews_in(kw)) for kw in hanging.requests} >= HUNG, "the hung reviews were never sent"

    caplog.set_level(logging.INFO, logger="dataflow.enrich.step")
    answering = FakeBedrock()
    flow, registry = flow_with(items, answering, cfg, results, dead, batch_size=5)
    run_main(flow, epoch_interval=timedelta(milliseconds=20), recovery_config=recovery)
    registry.close()
    assert dead == []
    assert set(ids(results)) == {f"r{n}" for n in range(60)}
    second_run = ids(results)[len(first_run) :]
    # The resumed logic got the hung reviews from its snapshot and sent them again...
    reissued = [r.getMessage() for r in caplog.records if r.getMessage().startswith("enrich.reissue")]
    assert reissued, "the resumed logic received no in-flight reviews"
    seen_by_second = {review_id(reviews_in(kw)) for kw in answering.requests}
    assert seen_by_second >= HUNG
    # ...while the source resumed after the checkpoint: the first reviews, answered before it, are not re-read.
    assert len(second_run) < 60
    assert not {"r1", "r2", "r3"} & set(second_run)
