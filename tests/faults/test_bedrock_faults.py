"""Bedrock misbehaving: a storm of throttles, 5xx, timeouts and malformed answers is retried until every
review is enriched; throttles at start-up do not stall the run; a fault that never clears for a subset of
reviews dead-letters exactly that subset, at stage `enrich`, with the reason."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from tests.faults.accounting import (
    bedrock_stats,
    bedrock_summary,
    check_accounting,
    flow_process,
    synthetic_ids,
    wait_exit,
    wait_until,
)
from tests.plugins.stack import Pipeline

pytestmark = [pytest.mark.faults, pytest.mark.integration, pytest.mark.slow]

STORM = {
    "throttle_rate": 0.25,
    "error_rate": 0.1,
    "timeout_rate": 0.05,
    "timeout_hold_s": 1.5,  # held past BEDROCK_TIMEOUT_S: the client gives up first, as with a hung call
    "malformed_rate": 0.1,
}
STALL_S = 60  # a run fails only when nothing moves this long: no document, dead letter or Bedrock request
STORM_ENV = {
    "BEDROCK_TIMEOUT_S": "0.5",
    # About 42% of requests fail; 40 attempts leave a review no real chance of running out (0.42^40 ~ 1e-15).
    "BEDROCK_MAX_ATTEMPTS": "40",
    "BEDROCK_BACKOFF_BASE_S": "0.02",
    "BEDROCK_BACKOFF_MAX_S": "0.3",
    "BEDROCK_MAX_CONCURRENCY": "8",
}


@pytest.mark.parametrize("per_request", [1, 4])
def test_storm_of_throttles_errors_timeouts_and_malformed_answers_is_retried(
    faulty: Pipeline, per_request: int, tmp_path: Path, record_property: Callable[[str, object], None]
) -> None:
    total = 300
    faulty.produce(total)
    faulty.bedrock_config(**STORM, seed=1000 + per_request)
    log = tmp_path / "flow.log"
    env = {**STORM_ENV, "BEDROCK_REVIEWS_PER_REQUEST": str(per_request)}
    with flow_process(faulty, "-w", "2", log=log, extra_env=env) as proc:
        # A stalled window shows as a stall with the last progress and the flow's log tail.
        wait_exit(proc, log, timeout=STALL_S, progress=faulty.progress)
    stats = bedrock_stats(faulty)
    result = check_accounting(
        faulty,
        synthetic_ids(total),
        f"bedrock storm reviews_per_request={per_request}",
        record_property,
        bedrock_summary(faulty),
    )
    assert not result.dead, f"every review should eventually succeed: {result.summary}"
    for kind in ("throttle", "error", "timeout", "malformed"):
        assert stats["faults"].get(kind, 0) > 0, f"no {kind} fault was injected: {result.summary}"
    assert max(int(doc["attempts"]) for doc in result.indexed.values()) > 1, result.summary


def test_an_early_throttle_does_not_stall_the_run(
    faulty: Pipeline, tmp_path: Path, record_property: Callable[[str, object], None]
) -> None:
    """Throttles for the first moment of a run only, then none: the window and the pacer must open up again
    quickly (a pacer that judged the quota from a few seconds of history once pinned a worker near 0 rps)."""
    total = 300
    faulty.produce(total)
    faulty.bedrock_config(throttle_rate=1.0, seed=5)
    log = tmp_path / "flow.log"
    env = {"BEDROCK_MAX_ATTEMPTS": "20", "BEDROCK_MAX_CONCURRENCY": "8"}
    with flow_process(faulty, "-w", "2", log=log, extra_env=env) as proc:
        wait_until(lambda: bedrock_stats(faulty)["throttles"] > 0, STALL_S, "a first throttle", log, faulty.progress)
        faulty.bedrock_config(throttle_rate=0.0)
        wait_exit(proc, log, timeout=STALL_S, progress=faulty.progress)
    result = check_accounting(
        faulty, synthetic_ids(total), "bedrock early throttle", record_property, bedrock_summary(faulty)
    )
    assert not result.dead, result.summary


def test_malformed_answers_for_a_subset_are_dead_lettered_at_enrich(
    faulty: Pipeline, tmp_path: Path, record_property: Callable[[str, object], None]
) -> None:
    """A long-running flow: good reviews, then a phase where every answer is malformed, then good again."""
    log = tmp_path / "flow.log"
    env = {"KINESIS_STOP_AT_END": "false", "BEDROCK_MAX_ATTEMPTS": "2"}
    with flow_process(faulty, "-w", "2", log=log, extra_env=env) as proc:
        faulty.produce(100, seed=7)
        wait_until(lambda: faulty.count() == 100, STALL_S, "the first 100 indexed", log, faulty.progress)
        faulty.bedrock_config(malformed_rate=1.0, seed=77)
        faulty.produce(60, seed=8)
        wait_until(lambda: faulty.count("OPENSEARCH_DLQ_INDEX") == 60, STALL_S, "60 dead letters", log, faulty.progress)
        faulty.bedrock_config(malformed_rate=0.0)
        faulty.produce(100, seed=9)
        wait_until(lambda: faulty.count() == 200, STALL_S, "the last 100 indexed", log, faulty.progress)
        assert proc.poll() is None, log.read_text()[-3000:]
    expected = synthetic_ids(100, 7) | synthetic_ids(60, 8) | synthetic_ids(100, 9)
    label = "bedrock malformed_rate=1.0 for 60 of 260"
    result = check_accounting(faulty, expected, label, record_property, bedrock_summary(faulty))
    assert set(result.dead) == synthetic_ids(60, 8), result.summary
    for doc_id, letter in result.dead.items():
        assert letter["stage"] == "enrich", letter
        assert letter["error_type"].startswith("invalid_answer:"), letter
        assert letter["attempts"] == 2 and "after 2 attempt(s)" in letter["error"], letter
        assert letter["review_id"] == doc_id and doc_id in letter["raw"], letter
