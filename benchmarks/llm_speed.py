"""Throughput and latency of the llm backend on realistic-length reviews, in process (no HTTP, no quota).

    python -m benchmarks.llm_speed [--reviews 60] [--per-request 1] [--window 4] [--parallel 1] [--threads 1]

Requests are built exactly as the dataflow builds them (`dataflow.enrich.prompt.build_converse_request`) and parsed as
the local server parses them, then `window` of them are kept in flight. Review texts are seeded synthetic
reviews stretched to an IMDB-like length distribution (log-normal, median ~170 words, mean ~230, capped at
2,500), or the `review` column of a CSV given with --csv (third-party text stays outside the repository).
Every answer is checked with the dataflow's own validator.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import random
import statistics
import time
from pathlib import Path

from benchmarks.llm_quality import load_labelled
from dataflow.enrich.prompt import ReviewAnswer, build_converse_request, parse_answer
from devstack.bedrock.app import parse_converse
from devstack.bedrock.backends.llm import LlmBackend
from producer.synthetic import synthetic_text

MODEL_ID = "us.anthropic.claude-haiku-4-5-20251001-v1:0"


def realistic_text(rng: random.Random) -> str:
    """A synthetic review of IMDB-like length: log-normal words (median 170, sigma 0.78), 10..2,500."""
    words = min(2500, max(10, round(math.exp(rng.gauss(math.log(170), 0.78)))))
    label = rng.choice(("positive", "negative"))
    parts: list[str] = []
    while sum(len(p.split()) for p in parts) < words:
        parts.append(synthetic_text(rng, label))  # type: ignore[arg-type]
    return " ".join(" ".join(parts).split()[:words])


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def run(backend: LlmBackend, batches: list[list[str]], window: int, tokens_per_review: int) -> dict:
    latencies: list[float] = []
    valid = 0
    queue: asyncio.Queue[list[str]] = asyncio.Queue()
    for batch in batches:
        queue.put_nowait(batch)

    async def worker() -> None:
        nonlocal valid
        while not queue.empty():
            texts = queue.get_nowait()
            request = parse_converse(MODEL_ID, build_converse_request(MODEL_ID, texts, tokens_per_review))
            started = time.monotonic()
            result = await backend.generate(request)
            latencies.append(time.monotonic() - started)
            answers = parse_answer(result.text, len(texts))
            valid += sum(isinstance(answers.get(i), ReviewAnswer) for i in range(1, len(texts) + 1))

    started = time.monotonic()
    await asyncio.gather(*(worker() for _ in range(window)))
    elapsed = time.monotonic() - started
    reviews = sum(len(b) for b in batches)
    return {
        "reviews": reviews,
        "valid": valid,
        "seconds": round(elapsed, 1),
        "reviews_per_s": round(reviews / elapsed, 3),
        "latency_p50_s": round(statistics.median(latencies), 2),
        "latency_p95_s": round(percentile(latencies, 0.95), 2),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.llm_speed", description=__doc__)
    parser.add_argument("--reviews", type=int, default=60)
    parser.add_argument("--per-request", type=int, default=1)
    parser.add_argument("--window", type=int, default=4, help="requests kept in flight")
    parser.add_argument("--parallel", type=int, default=1, help="llama.cpp slots")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--mode", default="per-review")
    parser.add_argument("--tokens-per-review", type=int, default=120)
    parser.add_argument("--csv", type=Path, default=None)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args(argv)
    if args.csv:
        texts = [text for text, _ in load_labelled(args.csv, args.reviews)]
    else:
        rng = random.Random(args.seed)
        texts = [realistic_text(rng) for _ in range(args.reviews)]
    batches = [texts[i : i + args.per_request] for i in range(0, len(texts), args.per_request)]
    backend = LlmBackend(mode=args.mode, threads=args.threads, parallel=args.parallel)
    words = sorted(len(t.split()) for t in texts)
    report = asyncio.run(run(backend, batches, args.window, args.tokens_per_review))
    report.update(
        words_median=words[len(words) // 2],
        words_max=words[-1],
        parallel=args.parallel,
        threads=args.threads,
        window=args.window,
        per_request=args.per_request,
        mode=args.mode,
    )
    print(json.dumps(report))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
