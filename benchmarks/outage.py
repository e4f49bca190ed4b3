"""What a Kinesis read outage costs in CPU: every GetRecords answers HTTP 500 for 40 s, against the same flow idle.

    python -m benchmarks --only outage                  # part of the suite (medians of 3; --quick: one run)
    python -m benchmarks.outage [--root CHECKOUT] [--runs 3]

200 reviews wait on a 4-shard stream; the streaming dataflow (KINESIS_STOP_AT_END false, 2 workers) starts behind
a loopback fault proxy (tests/fault_proxy.py) that answers every GetRecords with a 500 (awsJson InternalFailure),
so nothing is read. After a settle of 8 s (imports, the first listing) the dataflow process's CPU (user + system,
/proc/<pid>/stat, all threads) is measured over 40 s of outage. Then GetRecords is let through, the 200 reviews
are indexed, and the same process is measured again over 40 s with nothing left to read: the flow waiting idle.
The bar: the outage costs no more than waiting idle, within 2 points of a core. `--root` runs another checkout's
dataflow with the same scenario (a before/after comparison).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import sys
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from benchmarks.harness import ROOT, Bench, cpu_seconds, spawn_flow
from tests.fault_proxy import Decision, FaultProxy, aws_json_error

GET_RECORDS = "Kinesis_20131202.GetRecords"
INTERNAL = aws_json_error("InternalFailure", "injected outage", "500", status=500)
SETTLE_S = 8.0


class Outage:
    """Every GetRecords answered 500 while `on`; counts the GetRecords requests that reach the proxy."""

    def __init__(self) -> None:
        self.on = True
        self.get_records = 0
        self._lock = threading.Lock()

    def inspect(self, method: str, path: str, headers: Mapping[str, str], body: bytes) -> Decision:
        if headers.get("X-Amz-Target") != GET_RECORDS:
            return None
        with self._lock:
            self.get_records += 1
        return INTERNAL if self.on else None


def core_share(pid: int, seconds: float) -> float:
    first, begin = cpu_seconds(pid), time.monotonic()
    time.sleep(seconds)
    return (cpu_seconds(pid) - first) / (time.monotonic() - begin)


def read_outage(
    bench: Bench, root: Path = ROOT, reviews: int = 200, workers: int = 2, seconds: float = 40.0
) -> dict[str, float]:
    bench.knobs()
    outage = Outage()
    with (
        bench.run(shards=4, KINESIS_STOP_AT_END="false") as run,
        FaultProxy(run.env["AWS_ENDPOINT_URL_KINESIS"], inspect=outage.inspect) as proxy,
    ):
        run.produce(reviews)
        env = {**run.env, "AWS_ENDPOINT_URL_KINESIS": proxy.url, "PYTHONPATH": str(root)}
        log = open(bench.log_dir / f"outage-{run.env['KINESIS_STREAM_NAME']}.log", "wb")  # noqa: SIM115
        proc = spawn_flow(["dataflow.flow", "-w", str(workers)], env, log, cwd=root)
        try:
            time.sleep(SETTLE_S)
            assert proc.poll() is None, "the dataflow exited during its start-up"
            calls = outage.get_records
            during = core_share(proc.pid, seconds)
            rate = (outage.get_records - calls) / seconds
            indexed_in_outage = len(run.documents())
            outage.on = False
            lifted = time.monotonic()
            while len(run.documents()) < reviews and time.monotonic() - lifted < 120:
                time.sleep(0.5)
            recovered_s = time.monotonic() - lifted
            indexed = len(run.documents())
            time.sleep(5.0)  # the enrichment and the writer settle; the shards go back to idle polling
            idle = core_share(proc.pid, seconds)
        finally:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            log.close()
    return {
        "outage_core_share": during,
        "idle_core_share": idle,
        "outage_minus_idle_points": 100 * (during - idle),
        "get_records_per_s": rate,
        "indexed_during_outage": indexed_in_outage,
        "indexed": indexed,
        "reviews": reviews,
        "recovered_s": recovered_s,
    }


def section(r: dict[str, Any] | None) -> list[str]:
    """The page's section (BENCHMARKS.md), when the suite ran this benchmark."""
    if not r:
        return []
    rows = [
        ("CPU during the outage, share of one core", f"{r['outage_core_share']:.1%}"),
        ("CPU waiting idle, share of one core", f"{r['idle_core_share']:.1%}"),
        ("outage minus idle (points of a core; bar <= 2)", f"{r['outage_minus_idle_points']:.1f}"),
        ("GetRecords requests/s during the outage", f"{r['get_records_per_s']:.2f}"),
        ("indexed after the outage / reviews", f"{r['indexed']:.0f} / {r['reviews']:.0f}"),
    ]
    return [
        "## Kinesis read outage",
        "",
        "Every GetRecords answering 500 for 40 s, 200 reviews waiting on 4 shards, streaming flow, two workers; "
        "then the same process idle for 40 s once all is indexed (`benchmarks/outage.py`).",
        "",
        "| measure | value |",
        "|---|---|",
        *(f"| {name} | {value} |" for name, value in rows),
        "",
    ]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.outage", description=__doc__)
    p.add_argument("--root", type=Path, default=ROOT, help="checkout whose dataflow to run")
    p.add_argument("--runs", type=int, default=1)
    p.add_argument("--logs", type=Path, default=Path("out/bench-logs"))
    args = p.parse_args(argv)
    with Bench(args.logs) as bench:
        runs = [read_outage(bench, args.root.resolve()) for _ in range(args.runs)]
    for run in runs:
        print(json.dumps(run), flush=True)
    medians: dict[str, Any] = {k: statistics.median(r[k] for r in runs) for k in runs[0]}
    print("median", json.dumps(medians))
    return 0


if __name__ == "__main__":
    sys.exit(main())
