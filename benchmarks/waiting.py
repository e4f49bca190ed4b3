"""Benchmarks of waiting: CPU the dataflow burns while the model is slow, and the window against a queueing model.

- `idle_cpu`: 40 reviews, a model taking 5 s per request, window 2, two workers: almost all of the run is
  waiting. Measured: the dataflow process's CPU time (/proc/<pid>/stat, all threads) over the waiting phase,
  as a share of one core per worker, and the delay from a result's completion in the engine to its emission
  by the Bytewax logic (the `enrich.emit_delay` log lines, one per key at the end of input). Beside it, the
  same share for a Bytewax flow that never has data (`benchmarks.empty_flow`): Bytewax's own idle loop, the
  floor under any flow, so the figure above it is the pipeline's.
- `idle_stream` (only with `python -m benchmarks.waiting --only idle_stream`): a streaming flow on an empty
  4-shard stream, nothing to read and nothing in flight, beside the same Bytewax floor.
- `single_slot`: a model server with one slot and an unbounded queue (like llama.cpp by default), 1 s per
  request, BEDROCK_TIMEOUT_S 8, default window settings: does the window settle where requests fit in the
  timeout, and is anything dead-lettered?

Both run the dataflow from `root` (default: this checkout), so the same scenario can measure another checkout
(e.g. main) for a before/after comparison: `python -m benchmarks.waiting --root /path/to/other/checkout`.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any

from benchmarks.harness import ROOT, Bench, Run, cpu_seconds, spawn_flow, stats, waiting_flow_cpu

EMIT = re.compile(
    r"enrich\.emit_delay worker=\S+ reviews=(\d+) p50_ms=(\S+) p99_ms=(\S+) max_ms=(\S+)"
    r" after_eof=(\d+) eof_max_ms=(\S+)"
)


def run_sampled(run: Run, root: Path, workers: int, log_name: str, timeout: float = 900) -> dict[str, Any]:
    """Run the dataflow to the end of input, sampling its CPU time and the model server's stats every 0.25 s."""
    env = {**run.env, "PYTHONPATH": str(root)}
    log_path = run.bench.log_dir / f"{log_name}.log"
    samples: list[tuple[float, float, dict[str, Any]]] = []
    with open(log_path, "wb") as log:
        started = time.time()
        proc = spawn_flow(["dataflow.flow", "-w", str(workers)], env, log, cwd=root)
        stop = threading.Event()

        def sample() -> None:
            while not stop.is_set():
                with contextlib.suppress(OSError, ValueError, IndexError):
                    samples.append((time.time(), cpu_seconds(proc.pid), stats(run.bedrock_url)))
                stop.wait(0.25)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        try:
            proc.wait(timeout=timeout)
        finally:
            stop.set()
            sampler.join()
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
    return {"wall_s": time.time() - started, "samples": samples, "log": log_path.read_text(errors="replace")}


def emit_delays(log: str) -> dict[str, float]:
    lines = [tuple(float(x) for x in m.groups()) for m in EMIT.finditer(log)]
    nan = float("nan")
    if not lines:
        return {"emit_p50_ms": nan, "emit_p99_ms": nan, "emit_max_ms": nan, "after_eof": nan, "eof_max_ms": nan}
    # Per key; the worst key's p99 is reported (conservative), p50 weighted by reviews. Results finished after
    # the input ended are reported apart: Bytewax emits them when the key's last one is done.
    total = sum(line[0] for line in lines) or 1
    return {
        "emit_p50_ms": sum(line[0] * line[1] for line in lines) / total,
        "emit_p99_ms": max(line[2] for line in lines),
        "emit_max_ms": max(line[3] for line in lines),
        "after_eof": sum(line[4] for line in lines),
        "eof_max_ms": max(line[5] for line in lines),
    }


def idle_cpu(bench: Bench, root: Path = ROOT, reviews: int = 40, workers: int = 2) -> dict[str, float]:
    bench.knobs(latency_ms=5000)
    with bench.run(shards=4, BEDROCK_MAX_CONCURRENCY="2") as run:
        run.produce(reviews)
        out = run_sampled(run, root, workers, f"idle-cpu-{run.env['KINESIS_STREAM_NAME']}")
        indexed = len(run.documents())
    samples = out["samples"]
    busy = [(t, cpu) for t, cpu, s in samples if s["in_flight"] > 0]
    # The waiting phase: from 2 s after the first request (start-up done) to the last sample with one in flight.
    begin = busy[0][0] + 2.0
    window = [(t, cpu) for t, cpu in busy if t >= begin]
    waited_s = window[-1][0] - window[0][0]
    waited_cpu = window[-1][1] - window[0][1]
    floor = framework_floor(root, workers)  # measured right after, under the same machine conditions
    return {
        "wall_s": out["wall_s"],
        "cpu_total_s": samples[-1][1],
        "waiting_s": waited_s,
        "waiting_cpu_s": waited_cpu,
        "core_share_per_worker": waited_cpu / waited_s / workers,
        "bytewax_floor_per_worker": floor,
        "above_floor_per_worker": waited_cpu / waited_s / workers - floor,
        "indexed": indexed,
        **emit_delays(out["log"]),
    }


def framework_floor(root: Path = ROOT, workers: int = 2, seconds: float = 20.0) -> float:
    """CPU share of one core per worker of a Bytewax flow that never has data (`benchmarks.empty_flow`)."""
    env = {**os.environ, "PYTHONPATH": str(root)}
    return waiting_flow_cpu("benchmarks.empty_flow", env, root, 3.0, seconds, workers) / workers


def idle_stream(bench: Bench, root: Path = ROOT, workers: int = 2, seconds: float = 20.0) -> dict[str, float]:
    """A streaming flow (no stop at end) on an empty 4-shard stream: the state a deployment spends most time in."""
    with bench.run(shards=4) as run:
        env = {**run.env, "PYTHONPATH": str(root), "KINESIS_STOP_AT_END": "false", "KINESIS_POLL_INTERVAL_S": "0.25"}
        share = waiting_flow_cpu("dataflow.flow", env, root, 8.0, seconds, workers) / workers
    floor = framework_floor(root, workers)
    return {"core_share_per_worker": share, "bytewax_floor_per_worker": floor, "above_floor_per_worker": share - floor}


def single_slot(bench: Bench, root: Path = ROOT, reviews: int = 60, workers: int = 2) -> dict[str, float]:
    bench.knobs(latency_ms=1000, max_concurrency=1)
    with bench.run(shards=4, BEDROCK_TIMEOUT_S="8") as run:
        run.produce(reviews)
        out = run_sampled(run, root, workers, f"single-slot-{run.env['KINESIS_STREAM_NAME']}")
        indexed = len(run.documents())
        dead = run.dead_letters()
    bench.knobs()
    samples = out["samples"]
    busy = [s for _, _, s in samples if s["in_flight"] > 0]
    last = samples[-1][2]
    timeouts = last["requests"] - last["completed"] - sum(v for k, v in last["by_status"].items() if k != "200")
    return {
        "wall_s": out["wall_s"],
        "indexed": indexed,
        "dead_lettered": dead,
        "requests": last["requests"],
        "abandoned_by_client": max(0, timeouts),
        "avg_in_flight_at_server": sum(s["in_flight"] for s in busy) / max(1, len(busy)),
        "max_in_flight_at_server": max((s["in_flight"] for s in busy), default=0),
        "latency_max_s": last["latency_ms_max"] / 1000,
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.waiting", description=__doc__)
    p.add_argument("--root", type=Path, default=ROOT, help="checkout whose dataflow to run")
    p.add_argument("--only", nargs="*", default=["idle_cpu", "single_slot"])
    p.add_argument("--logs", type=Path, default=Path("out/bench-logs"))
    args = p.parse_args(argv)
    results: dict[str, Any] = {}
    with Bench(args.logs) as bench:
        for name in args.only:
            fn = {"idle_cpu": idle_cpu, "idle_stream": idle_stream, "single_slot": single_slot}[name]
            results[name] = fn(bench, args.root.resolve())
            print(name, json.dumps(results[name]), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
