"""Four workers in two processes (the default deployment) on one Bedrock requests-per-minute quota.

The accounting, not the throughput (that is benchmarks/quota.py): every review indexed once and none dead-
lettered although the quota throttles, and the tokens the documents report are the tokens the model was
asked to produce, which are what the quota burned (output at Haiku 4.5's 5x burndown)."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest

from devstack.processes import free_port
from tests.faults.accounting import bedrock_stats, documents, reset_bedrock
from tests.plugins.stack import Pipeline

pytestmark = pytest.mark.integration

REVIEWS, PER_REQUEST, RPM = 320, 8, 30  # 40 requests at least: the quota admits 30 in the first minute


def test_four_workers_in_two_processes_share_one_quota(pipeline: Pipeline, tmp_path: Path) -> None:
    reset_bedrock(pipeline)  # no faults, a noisy (exponential) model latency, zeroed stats
    pipeline.bedrock_config(rpm=RPM)
    try:
        pipeline.produce(REVIEWS)
        addresses = f"127.0.0.1:{free_port()};127.0.0.1:{free_port()}"
        # No packing audit: its requests are answered and billed, but charged to no document (test_audit.py), and
        # this test's claim is that the documents account for every token the model was asked for.
        env = {"BEDROCK_REVIEWS_PER_REQUEST": str(PER_REQUEST), "BEDROCK_PACKING_AUDIT_EVERY": "0"}
        procs = [
            pipeline.start_flow("-i", str(i), "-a", addresses, "-w", "2", log=tmp_path / f"p{i}.log", extra_env=env)
            for i in range(2)
        ]
        try:
            pipeline.wait_for(
                lambda: all(p.poll() is not None for p in procs),
                timeout=120,
                what="both processes to end",
                progress=pipeline.progress,
            )
            assert [p.returncode for p in procs] == [0, 0]
        finally:
            for proc in procs:
                if proc.poll() is None:
                    os.killpg(proc.pid, signal.SIGKILL)
        docs = documents(pipeline)
        stats = bedrock_stats(pipeline)
    finally:
        reset_bedrock(pipeline)
    assert len(docs) == REVIEWS and pipeline.count("OPENSEARCH_DLQ_INDEX") == 0
    assert stats["quota_throttles"].get("requests", 0) > 0  # the quota did bite
    assert stats["completed"] >= REVIEWS // PER_REQUEST and stats["reviews"] == REVIEWS  # each answered once
    reported_in = sum(int(d["input_tokens"]) for d in docs.values())
    reported_out = sum(int(d["output_tokens"]) for d in docs.values())
    assert (reported_in, reported_out) == (stats["input_tokens"], stats["output_tokens"])
    assert stats["quota_tokens"] == reported_in + 5 * reported_out
