"""Kinesis source benchmarks: how soon KINESIS_STOP_AT_END ends a run, and what waiting behind full
enrichment buffers costs in CPU.

    python -m benchmarks.kinesis_source [--runs 3] [--reviews 300] [--hold-s 20]

- stop-at-end: a 4-shard stream, `--reviews` synthetic reviews, lexicon backend, 2 workers, default discovery
  interval (30 s): seconds from the last document's `processed_at` to the process's exit.
- hold-back CPU: `benchmarks.source_hold_flow` (the source alone, buffers full forever, 2 workers, 8
  partitions, a 4-shard backlog): CPU seconds per wall second of the dataflow process after start-up, with
  the re-poll back-off (default) and without it (KINESIS_BACKPRESSURE_MAX_WAIT_S=0.02, the old fixed 20 ms).
Medians of `--runs`; numbers on a shared machine are noisy.
"""

from __future__ import annotations

import argparse
import statistics

from benchmarks.harness import ROOT, Bench, Run, parse_time, waiting_flow_cpu


def stop_at_end_s(bench: Bench, reviews: int) -> dict[str, float]:
    bench.knobs()
    with bench.run(shards=4, KINESIS_DISCOVERY_INTERVAL_S="30") as run:
        run.produce(reviews)
        result = run.flow("-w", "2")
        docs = run.documents()
        accounted = len(docs) + run.dead_letters()
        assert accounted >= reviews, f"only {accounted} of {reviews} reviews accounted for"
        ended = result["started"] + result["wall_s"]
        last = max(parse_time(d["processed_at"]) for d in docs)
        return {"wall_s": result["wall_s"], "exit_after_last_s": ended - last}


def hold_cpu(run: Run, max_wait_s: str, settle_s: float, hold_s: float) -> float:
    env = {**run.env, "KINESIS_STOP_AT_END": "false", "KINESIS_BACKPRESSURE_MAX_WAIT_S": max_wait_s}
    # After settle_s the imports and first listing are done: from there on the source only waits.
    return waiting_flow_cpu("benchmarks.source_hold_flow", env, ROOT, settle_s, hold_s)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--reviews", type=int, default=300)
    parser.add_argument("--hold-s", type=float, default=20.0)
    args = parser.parse_args()
    with Bench(ROOT / "out" / "bench-kinesis") as bench:
        stops = [stop_at_end_s(bench, args.reviews) for _ in range(args.runs)]
        cpu: dict[str, list[float]] = {"backoff": [], "fixed_20ms": []}
        with bench.run(shards=4) as run:
            run.produce(400)
            for _ in range(args.runs):
                cpu["backoff"].append(hold_cpu(run, "0.5", 8.0, args.hold_s))
                cpu["fixed_20ms"].append(hold_cpu(run, "0.02", 8.0, args.hold_s))
    med = statistics.median
    exits = ", ".join(f"{s['exit_after_last_s']:.2f}" for s in stops)
    print(
        f"stop_at_end reviews={args.reviews} runs={args.runs} "
        f"wall_s={med(s['wall_s'] for s in stops):.1f} "
        f"exit_after_last_s={med(s['exit_after_last_s'] for s in stops):.2f} "
        f"(all: {exits})"
    )
    for name, values in cpu.items():
        print(
            f"hold_back_cpu mode={name} cpu_per_wall_s={med(values):.4f} (all: {', '.join(f'{v:.4f}' for v in values)})"
        )


if __name__ == "__main__":
    main()
