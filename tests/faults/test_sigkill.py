"""kill -9 at random moments with Bytewax recovery on: each restart resumes, and the end result is exact."""

from __future__ import annotations

import random
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.faults.accounting import (
    bedrock_stats,
    bedrock_summary,
    check_accounting,
    flow_process,
    kill_group,
    synthetic_ids,
)
from tests.plugins.stack import Pipeline, recovery_args

pytestmark = [pytest.mark.faults, pytest.mark.integration, pytest.mark.slow]

SEED = 20240611
TOTAL = 800


def kill_points(rng: random.Random, kills: int) -> list[float]:
    """One progress fraction per equal slice of [0.1, 0.9], so two kills never land on the same moment."""
    width = 0.8 / kills
    return [0.1 + i * width + rng.uniform(0.1, 0.9) * width for i in range(kills)]


def test_sigkill_at_random_points_loses_and_duplicates_nothing(
    faulty: Pipeline, tmp_path: Path, record_property: Callable[[str, object], None]
) -> None:
    rng = random.Random(SEED)
    kills = rng.choice((2, 3))
    points = kill_points(rng, kills)
    faulty.produce(TOTAL)
    args = recovery_args(tmp_path / "recovery")
    # Slow enough that every kill point falls mid-run.
    faulty.bedrock_config(latency_mean_ms=30, latency_distribution="exponential", seed=SEED)
    slow = {"BEDROCK_MAX_CONCURRENCY": "4", "BEDROCK_REVIEWS_PER_REQUEST": "1"}  # 8 per request outruns the kills
    at_kill: list[int] = []
    for run, point in enumerate(points):
        log = tmp_path / f"run{run}.log"
        with flow_process(faulty, *args, log=log, extra_env=slow) as proc:
            target = int(point * TOTAL)
            faulty.wait_for(
                lambda target=target, proc=proc: faulty.count() >= target or proc.poll() is not None,
                timeout=120,
                what=f"{target} indexed before kill {run + 1}",
            )
            assert proc.poll() is None, f"run {run} ended before its kill point:\n{log.read_text()[-2000:]}"
            kill_group(proc)
        at_kill.append(faulty.count())
    faulty.bedrock_config(latency_mean_ms=0)
    stderr = faulty.run_flow(*args, timeout=180)
    restarts = [*[log.read_text() for log in sorted(tmp_path.glob("run*.log"))][1:], stderr]
    resumed = [sum("shard_started" in ln and "position=seq:" in ln for ln in t.splitlines()) for t in restarts]
    reissued = [
        sum(int(ln.split("reviews=")[1].split()[0]) for ln in t.splitlines() if "enrich.reissue" in ln)
        for t in restarts
    ]
    check_accounting(
        faulty,
        synthetic_ids(TOTAL),
        f"sigkill x{kills}",
        record_property,
        f"kill_points={[round(p, 2) for p in points]} indexed_at_kill={at_kill} "
        f"shards_resumed_from_checkpoint_per_restart={resumed} reissued_in_flight_per_restart={reissued} "
        f"{bedrock_summary(faulty)}",
    )
    assert any(resumed), "no restart resumed from a checkpoint: recovery was not exercised"
    # The checkpoints held reviews still in flight at Bedrock; a restart must hand them to the engine again.
    assert any(reissued), f"no restart re-issued in-flight reviews from its checkpoint: {reissued}"
    assert all(0 < n < TOTAL for n in at_kill), f"every kill should land mid-run: {at_kill}"


def test_a_kill_during_a_backlog_resumes_from_a_checkpoint(
    faulty: Pipeline, tmp_path: Path, record_property: Callable[[str, object], None]
) -> None:
    """With `-s 1`, a kill at half the backlog should cost about a second of work, not the whole run.

    Regression: the enrichment step used to block its worker until a whole GetRecords batch (up to 1,000
    records a shard) was nearly enriched, so no epoch closed during a backlog and every kill restarted from
    the start (800 reviews, killed at half: 0 shards resumed, 1,215 Bedrock requests)."""
    faulty.produce(TOTAL)
    args = recovery_args(tmp_path / "recovery")
    faulty.bedrock_config(latency_mean_ms=30, latency_distribution="exponential", seed=SEED)
    log = tmp_path / "killed.log"
    # Counts requests as reviews: one review per request (the default packs 8).
    env = {"BEDROCK_MAX_CONCURRENCY": "4", "BEDROCK_REVIEWS_PER_REQUEST": "1"}
    with flow_process(faulty, *args, log=log, extra_env=env) as proc:
        # Enriched, not indexed: results leave the enrichment step in bursts while it blocks.
        faulty.wait_for(lambda: bedrock_stats(faulty)["requests"] >= TOTAL // 2, timeout=120, what="half enriched")
        kill_group(proc)
    at_kill = faulty.count()
    faulty.bedrock_config(latency_mean_ms=0)
    stderr = faulty.run_flow(*args, timeout=180)
    resumed = sum("shard_started" in ln and "position=seq:" in ln for ln in stderr.splitlines())
    check_accounting(
        faulty,
        synthetic_ids(TOTAL),
        "sigkill during backlog (default read size)",
        record_property,
        f"indexed_at_kill={at_kill} shards_resumed_from_checkpoint={resumed} {bedrock_summary(faulty)}",
    )
    assert resumed > 0, f"killed with {at_kill}/{TOTAL} indexed, the restart re-read every shard from the start"
    requests = bedrock_stats(faulty)["requests"]
    assert requests < 1.25 * TOTAL, f"{requests} Bedrock requests for {TOTAL} reviews: the kill cost far more than -s 1"
