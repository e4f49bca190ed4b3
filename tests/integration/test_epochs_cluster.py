"""2 processes x 2 workers under steady input: epochs, hence checkpoints, must close at the snapshot interval.

Bytewax closes an epoch only once every worker of every process has passed it, so one worker whose frontier
never moves (no source partition of its own, a step that is never woken, an exchange whose receiving side
never advances) stops every checkpoint of the cluster: each restart then re-reads everything since the start.
Measured from outside the flow: the `fronts` and `snaps` tables of the recovery partitions.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
import urllib3

from devstack.processes import free_port
from devstack.stack import create_stream
from tests.plugins.stack import ROOT, Pipeline

pytestmark = [pytest.mark.integration, pytest.mark.slow]

SNAPSHOT_S = 1  # seconds (Bytewax takes whole seconds here)
RUN_S = 24.0
RATE = 14  # reviews per second, produced throughout the run
RECOVERY_PARTITIONS = 8


def epochs(recovery: Path) -> tuple[int, int]:
    """(the lowest worker frontier, the newest snapshot epoch) over the recovery partitions."""
    fronts: list[int] = []
    snaps: list[int] = []
    for db in recovery.glob("part-*.sqlite3"):
        with sqlite3.connect(db) as conn:
            fronts += [row[0] for row in conn.execute("SELECT worker_frontier FROM fronts")]
            snaps += [row[0] for row in conn.execute("SELECT MAX(snap_epoch) FROM snaps") if row[0] is not None]
    return min(fronts, default=0), max(snaps, default=0)


def epoch_age(port: int) -> float:
    """reviewstream_epoch_completed_age_seconds as the process serves it."""
    text = urllib3.PoolManager().request("GET", f"http://127.0.0.1:{port}/metrics", timeout=5).data.decode()
    line = next(line for line in text.splitlines() if line.startswith("reviewstream_epoch_completed_age_seconds "))
    return float(line.split()[1])


@pytest.mark.parametrize("shards", [4, 1], ids=["4-shards", "1-shard"])
def test_epochs_close_at_the_snapshot_interval_in_2x2(pipeline: Pipeline, tmp_path: Path, shards: int) -> None:
    assert pipeline.stack.kinesis is not None
    name = f"epochs-{uuid.uuid4().hex[:8]}"
    create_stream(pipeline.stack.kinesis.url, name, shards)
    pipe = Pipeline(
        {**pipeline.env, "KINESIS_STREAM_NAME": name, "OPENSEARCH_INDEX": f"{name}-processed"}, pipeline.stack
    )
    recovery = tmp_path / "recovery"
    recovery.mkdir()
    subprocess.run(
        [sys.executable, "-m", "bytewax.recovery", str(recovery), str(RECOVERY_PARTITIONS)], check=True, cwd=ROOT
    )
    addresses = f"127.0.0.1:{free_port()};127.0.0.1:{free_port()}"
    args = ("-w", "2", "-a", addresses, "-r", str(recovery), "-s", str(SNAPSHOT_S), "-b", "0")
    # The deployment's listing interval (the shared test environment lists every second).
    env = {"KINESIS_STOP_AT_END": "false", "KINESIS_DISCOVERY_INTERVAL_S": "30"}
    logs = [tmp_path / f"proc{i}.log" for i in range(2)]
    producer = subprocess.Popen(
        [
            sys.executable,
            str(ROOT / "producer" / "main.py"),
            "--synthetic",
            str(int(RATE * (RUN_S + 60))),
            "--rate",
            str(RATE),
            "--lengths",
            "short",
            "--quiet",
        ],
        env=pipe.env,
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    metrics_port = free_port()
    procs = [
        pipe.start_flow(
            *args, "-i", str(i), log=logs[i], extra_env={**env, "METRICS_PORT": str(metrics_port if i == 0 else 0)}
        )
        for i in range(2)
    ]
    samples: list[tuple[float, int, int, int]] = []
    try:

        def first_indexed() -> bool:
            assert all(proc.poll() is None for proc in procs), "a dataflow process ended"
            return pipe.count() > 0

        pipe.wait_for(first_indexed, timeout=60, what="a first review indexed")
        started = time.monotonic()
        while time.monotonic() - started < RUN_S:
            assert all(proc.poll() is None for proc in procs), "a dataflow process ended"
            time.sleep(2)
            samples.append((round(time.monotonic() - started, 1), *epochs(recovery), pipe.count()))
        age = epoch_age(metrics_port)
    finally:
        for proc in (*procs, producer):
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    print(f"shards={shards} samples(t, frontier, newest_snap, indexed)={samples} epoch_age_s={age}")
    elapsed, frontier, newest, indexed = samples[-1]
    _, first_frontier, first_newest, first_indexed_count = samples[0]
    # One epoch per snapshot interval; half of that leaves a generous slack for a loaded machine.
    expected = (elapsed - samples[0][0]) / SNAPSHOT_S / 2
    assert frontier - first_frontier >= expected, samples
    assert newest - first_newest >= expected, samples
    assert indexed > first_indexed_count, "reviews kept arriving and being indexed"
    assert age < 4 * SNAPSHOT_S, f"process 0 says the last epoch completed {age} s ago"
