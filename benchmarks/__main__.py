"""`python -m benchmarks`: run every benchmark against the local stack and write BENCHMARKS.md.

python -m benchmarks             # full: medians of 3 runs (quota: 1 run of 150 s per setting), ~20 min
python -m benchmarks --quick     # one run each, shorter quota runs, ~8 min
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from benchmarks import backfill as backfill_bench
from benchmarks import cost as cost_bench
from benchmarks import outage, quota, scenarios, waiting
from benchmarks.harness import Bench

T = TypeVar("T")


def median_of(runs: int, fn: Callable[[], T]) -> T:
    """Run `fn` `runs` times; the median of every number (results are dicts, or dicts of dicts)."""
    results = [fn() for _ in range(runs)]

    def merge(values: list[Any]) -> Any:
        first = values[0]
        if isinstance(first, dict):
            return {k: merge([v[k] for v in values]) for k in first}
        if isinstance(first, int | float) and not isinstance(first, bool):
            return statistics.median(values)
        return first

    return merge(results)  # type: ignore[no-any-return]


def machine() -> str:
    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    system = f"{platform.system()} {platform.release()}, Python {platform.python_version()}"
    return f"{os.cpu_count()} cores ({cpu}), {mem:.0f} GiB RAM, {system}"


def table(headers: list[str], rows: list[list[Any]]) -> str:
    def fmt(v: Any) -> str:
        if isinstance(v, float):
            return f"{v:.3g}" if abs(v) < 10 else f"{v:,.0f}"
        return str(v)

    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(fmt(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def render(results: dict[str, Any], args: argparse.Namespace, elapsed: float) -> str:
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    q = results["quota"]
    ref = q[0]["reviews_per_min"]
    w = results["window"]
    s = results["straggler"]
    out = [
        "# Benchmarks",
        "",
        f"Machine: {machine()}. Commit `{commit}`. Took {elapsed / 60:.1f} min.",
        f"Reproduce: `make venv && .venv/bin/python -m benchmarks{' --quick' if args.quick else ''}` "
        "(local stack, lexicon model backend; every number comes from outside the pipeline: the documents in "
        "OpenSearch, the Bedrock server's counters and the kernel's CPU accounting of the dataflow process).",
        f"Repeated runs: {args.repeat} (medians shown), except the quota benchmark: one run of "
        f"{args.quota_seconds:.0f} s per setting, measured after the first 90 s "
        "(the quota's 60 s window plus settling) so the start-up burst is excluded.",
        "",
        "## Quota throughput",
        "",
        "Local Bedrock enforcing 120 requests/min and 240,000 tokens/min (tokens reserved from `maxTokens`), "
        "lognormal latency with a mean of 1 s (sigma 0.5), a backlog of 5,000 reviews, one worker, window ceiling 16.",
        "",
        table(
            [
                "setting",
                "reviews/min",
                "vs reference",
                "throttled (steady)",
                "throttled (whole run)",
                "dead-lettered",
                "$ per 1,000 reviews",
            ],
            [
                [
                    r["config"],
                    r["reviews_per_min"],
                    f"{r['reviews_per_min'] / ref:.1f}x" if ref else "-",
                    f"{r['throttled_share']:.1%}",
                    f"{r['throttled_share_all']:.1%}",
                    r["dead_lettered"],
                    f"{r['cost_per_1000']:.3f}",
                ]
                for r in q
            ],
        ),
        "",
        "## Window efficiency",
        "",
        f"No quota, lognormal latency (median 500 ms, sigma 0.5), limit 16, {args.window_reviews} reviews, one worker.",
        "",
        table(
            ["enrichment", "avg in flight", "of the limit", "requests/s", "ideal (limit / mean latency)"],
            [[k, v["avg_in_flight"], f"{v['window_use']:.0%}", v["throughput"], v["ideal"]] for k, v in w.items()],
        ),
        "",
        "One request 20 s slower than the rest (fixed 50 ms otherwise), 600 reviews: latency from Kinesis arrival "
        "to indexed of all the *other* reviews.",
        "",
        table(
            ["enrichment", "others p50 (s)", "others p99 (s)", "others delayed > 10 s"],
            [[k, v["others_p50_s"], v["others_p99_s"], v["others_delayed_over_10s"]] for k, v in s.items()],
        ),
        "",
        "## Overhead",
        "",
        table(
            ["measure", "value"],
            [
                ["dataflow CPU per review, model excluded (ms)", results["cpu"]["cpu_ms_per_review"]],
                ["added latency p50 at 100 reviews/s, steady state (s)", results["latency"]["p50_s"]],
                ["added latency p99 at 100 reviews/s, steady state (s)", results["latency"]["p99_s"]],
                [
                    "added latency p50 / p99 of arrivals in the first 10 s of indexing (start-up) (s)",
                    startup_pair(results["latency"]),
                ],
                [
                    "of which: arrival to bulk request p50 / p99 (Kinesis polling, enrichment queue, emission, "
                    "writer queue) (s)",
                    f"{results['latency']['to_bulk_s']['p50']:.2f} / {results['latency']['to_bulk_s']['p99']:.2f}",
                ],
                [
                    "of which: bulk request to seen by the observer p50 / p99 (s)",
                    f"{results['latency']['bulk_to_seen_s']['p50']:.2f} / "
                    f"{results['latency']['bulk_to_seen_s']['p99']:.2f}",
                ],
                [
                    "reviews measured / produced",
                    f"{results['latency']['measured']:.0f} / {results['latency']['produced']:.0f}",
                ],
            ],
        ),
        "",
        "CPU: user + system seconds of the `python -m bytewax.run dataflow.flow` process over "
        f"{results['cpu']['reviews']:.0f} reviews with an instant model (Kinesis reads, parsing, prompt building, "
        "aiobotocore calls, validation, bulk indexing). Added latency: the time a review became searchable "
        "(an observer polls OpenSearch every 50 ms) minus its Kinesis arrival time minus its model time "
        "(200 ms per request), with KINESIS_POLL_INTERVAL_S 0.2 (Kinesis's 5 reads per second per shard), "
        "BEDROCK_MAX_CONCURRENCY 64 (a ceiling: Kinesis delivers pages, so arrivals come in bursts) and the "
        "strict local Kinesis (an empty page every 3rd read of a shard with records left). Steady state: "
        "arrivals from 10 s after the first document was indexed. Medians of the runs.",
        "",
        "## Scaling",
        "",
        f"{args.scaling_reviews} reviews on four shards, 100 ms model latency, window 8 per worker.",
        "",
        table(["cluster", "reviews/s"], [[k, v] for k, v in results["scaling"].items()]),
        "",
        "## Cost",
        "",
        cost_bench.render(results["cost"]),
        "",
        "## Waiting",
        "",
        "CPU while waiting: 40 reviews, a model taking 5 s per request, window 2, two workers; the dataflow "
        "process's CPU over the waiting phase per worker, and the delay from a result's completion in the engine "
        "to its emission by the Bytewax step. Single-slot model: one slot and an unbounded queue (like llama.cpp), "
        "1 s per request, BEDROCK_TIMEOUT_S 8, 60 reviews, two workers, default window settings.",
        "",
        table(
            ["measure", "value"],
            [
                [
                    "CPU while waiting, share of a core per worker",
                    f"{results['idle_cpu']['core_share_per_worker']:.2%}",
                ],
                [
                    "of which Bytewax's idle loop (a flow that never has data)",
                    f"{results['idle_cpu']['bytewax_floor_per_worker']:.2%}",
                ],
                ["above Bytewax's floor", f"{results['idle_cpu']['above_floor_per_worker']:.2%}"],
                [
                    "completion to emission p50 / p99 (ms)",
                    f"{results['idle_cpu']['emit_p50_ms']:.0f} / {results['idle_cpu']['emit_p99_ms']:.0f}",
                ],
                [
                    "single-slot: indexed / dead-lettered",
                    f"{results['single_slot']['indexed']:.0f} / {results['single_slot']['dead_lettered']:.0f}",
                ],
                ["single-slot: average in flight at the server", results["single_slot"]["avg_in_flight_at_server"]],
                ["single-slot: wall (s)", results["single_slot"]["wall_s"]],
            ],
        ),
        "",
    ]
    out += quota_noise_section(results)
    out += outage.section(results.get("outage"))
    out += backfill_bench.section(results.get("backfill"))
    return "\n".join(out)


def quota_noise_section(results: dict[str, Any]) -> list[str]:
    """The quota under noisy latency (benchmarks/quota.py): RPM-bound and TPM-bound, one worker and 2 x 2."""
    rows = []
    for kind in ("quota_noise", "quota_uneven", "quota_uneven_other", "quota_tpm"):
        for label, r in results.get(kind, {}).items():
            bound = r.get("admitted_per_min") or quota.RPM * quota.REVIEWS_PER_REQUEST
            rows.append(
                [
                    ("TPM " if kind == "quota_tpm" else "RPM ") + label,
                    r["reviews_per_min"],
                    f"{r['reviews_per_min'] / bound:.0%}",
                    f"{r['throttled_share']:.1%}",
                    f"{r['quota_tokens_per_review']:.0f}",
                    r["dead_lettered"],
                ]
            )
    if not rows:
        return []
    return [
        "## Quota under noisy latency",
        "",
        f"Mean latency 1 s, lognormal (sigma 0.5) or exponential; {quota.RPM} RPM x {quota.REVIEWS_PER_REQUEST} "
        f"reviews per request, or {quota.TPM:,} TPM with the 5x output burndown (admitted = TPM / quota tokens "
        "per review); steady state after 90 s.",
        "",
        table(["setting", "reviews/min", "of the bound", "throttled", "quota tokens/review", "dead-lettered"], rows),
        "",
    ]


def startup_pair(latency: dict) -> str:
    return f"{latency.get('startup_p50_s', 0):.2f} / {latency.get('startup_p99_s', 0):.2f}"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    p.add_argument("--quick", action="store_true", help="one run each and shorter quota runs")
    p.add_argument("--out", type=Path, default=Path("BENCHMARKS.md"))
    p.add_argument("--logs", type=Path, default=Path("out/bench-logs"))
    p.add_argument(
        "--only",
        nargs="*",
        default=None,
        help="quota window straggler cpu latency scaling cost idle_cpu single_slot quota_noise quota_uneven"
        " quota_uneven_other quota_tpm outage backfill",
    )
    args = p.parse_args(argv)
    args.repeat = 1 if args.quick else 3
    args.quota_seconds = 150.0 if args.quick else 210.0
    args.window_reviews = 600 if args.quick else 800
    args.scaling_reviews = 2000
    logging.basicConfig(level=logging.WARNING)
    logging.getLogger("opensearch").setLevel(logging.ERROR)
    started = time.time()
    plan: dict[str, Callable[[Bench], Any]] = {
        "quota": lambda b: scenarios.quota_throughput(b, args.quota_seconds),
        "window": lambda b: median_of(args.repeat, lambda: scenarios.window_efficiency(b, args.window_reviews)),
        "straggler": lambda b: scenarios.straggler(b),
        "cpu": lambda b: median_of(args.repeat, lambda: scenarios.cpu_per_review(b, 3000)),
        "latency": lambda b: median_of(args.repeat, lambda: scenarios.added_latency(b)),
        "scaling": lambda b: median_of(args.repeat, lambda: scenarios.scaling(b, args.scaling_reviews)),
        "cost": lambda b: cost_bench.cost(200),  # deterministic (lexicon backend): one run
        "idle_cpu": lambda b: median_of(args.repeat, lambda: waiting.idle_cpu(b)),
        "single_slot": lambda b: median_of(args.repeat, lambda: waiting.single_slot(b)),
        "quota_noise": lambda b: median_of(args.repeat, lambda: quota.rpm_bound(b, args.quota_seconds + 30, 90)),
        "quota_uneven": lambda b: median_of(args.repeat, lambda: quota.uneven(b, args.quota_seconds + 30, 90)),
        "quota_uneven_other": lambda b: median_of(
            args.repeat, lambda: quota.uneven_other(b, args.quota_seconds + 30, 90)
        ),
        "quota_tpm": lambda b: median_of(args.repeat, lambda: quota.tpm_bound(b, args.quota_seconds + 30, 90)),
        "outage": lambda b: median_of(args.repeat, lambda: outage.read_outage(b)),
        "backfill": lambda b: backfill_bench.backfill(b, 5000),  # one run: its figures are counts and tokens
    }
    # Results accumulate in a JSON file, so `--only` can re-run part of the suite and still write the page.
    saved = args.logs.parent / "bench-results.json"
    results: dict[str, Any] = json.loads(saved.read_text()) if args.only and saved.exists() else {}
    with Bench(args.logs) as bench:
        for name, fn in plan.items():
            if args.only and name not in args.only:
                continue
            print(f"benchmark {name} ...", flush=True)
            t = time.time()
            results[name] = fn(bench)
            saved.write_text(json.dumps(results, indent=1))
            print(f"  {results[name]}  ({time.time() - t:.0f} s)", flush=True)
    if set(plan) - set(results):
        print(f"results saved in {saved}; missing for the page: {sorted(set(plan) - set(results))}")
        return 0
    args.out.write_text(render(results, args, time.time() - started))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
