"""Sentiment accuracy of the llm backend on labelled reviews, with the threshold calibrated on the other half.

    python -m benchmarks.llm_quality REVIEWS.csv [--count 400] [--threads 1]

REVIEWS.csv has `review` and `sentiment` ("positive"|"negative") columns (the IMDB layout). Review text is
third-party data: keep it outside the repository. The first half of the sample calibrates the threshold (the
margin that maximises accuracy there); the second half is scored with it, untouched by the calibration.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import itertools
import json
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from dataflow.enrich.prompt import ReviewAnswer, parse_answer
from devstack.bedrock.backends.llm import REVIEW_MAX_TOKENS, LlmBackend

SENTIMENTS = ("positive", "negative")


@dataclass(frozen=True)
class Scored:
    label: str
    margin: float
    summary: str
    valid: bool  # what the dataflow's validator accepts: one sentence, not cut off


def load_labelled(path: Path, count: int) -> list[tuple[str, str]]:
    """The first `count` rows with a valid label, as (text, label)."""
    out: list[tuple[str, str]] = []
    with path.open(newline="", encoding="utf-8") as handle:
        for row in csv.DictReader(handle):
            label = (row.get("sentiment") or row.get("label") or "").strip().lower()
            text = row.get("review") or row.get("text") or ""
            if label in SENTIMENTS and text.strip():
                out.append((text, label))
            if len(out) == count:
                break
    return out


def accuracy(scored: list[Scored], threshold: float) -> float:
    return sum((s.margin > threshold) == (s.label == "positive") for s in scored) / max(1, len(scored))


def calibrate(scored: list[Scored]) -> float:
    """The threshold (midpoint between two neighbouring margins) with the best accuracy on `scored`."""
    margins = sorted({s.margin for s in scored})
    candidates = [0.0] + [(a + b) / 2 for a, b in itertools.pairwise(margins)]
    return max(candidates, key=lambda t: (accuracy(scored, t), -abs(t)))


async def score_all(backend: LlmBackend, sample: list[tuple[str, str]]) -> list[Scored]:
    async def one(text: str, label: str) -> Scored:
        score, summary = await backend.review(text, REVIEW_MAX_TOKENS)
        entry = {"id": "1", "summary": summary.text, "sentiment": score.sentiment(backend.threshold)}
        answer = parse_answer(json.dumps({"results": [entry]}), 1, prefilled=False).get(1)
        return Scored(label, score.margin, summary.text, not summary.truncated and isinstance(answer, ReviewAnswer))

    return list(await asyncio.gather(*(one(text, label) for text, label in sample)))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.llm_quality", description=__doc__)
    parser.add_argument("csv", type=Path)
    parser.add_argument("--count", type=int, default=400)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--parallel", type=int, default=1)
    parser.add_argument("--out", type=Path, default=None, help="write per-review margins here (JSON)")
    args = parser.parse_args(argv)
    sample = load_labelled(args.csv, args.count)
    backend = LlmBackend(threads=args.threads, parallel=args.parallel)
    started = time.monotonic()
    scored = asyncio.run(score_all(backend, sample))
    elapsed = time.monotonic() - started
    half = len(scored) // 2
    calibration, test = scored[:half], scored[half:]
    threshold = calibrate(calibration)
    valid = sum(s.valid for s in scored)
    report = {
        "reviews": len(scored),
        "labels": dict(Counter(s.label for s in scored)),
        "calibration_threshold": round(threshold, 3),
        "calibration_accuracy": round(accuracy(calibration, threshold), 3),
        "test_accuracy": round(accuracy(test, threshold), 3),
        "test_accuracy_at_builtin_threshold": round(accuracy(test, backend.threshold), 3),
        "builtin_threshold": backend.threshold,
        "valid_summaries": f"{valid}/{len(scored)}",
        "reviews_per_s": round(len(scored) / elapsed, 2),
    }
    print(json.dumps(report, indent=2))
    if args.out:
        args.out.write_text(json.dumps([s.__dict__ for s in scored]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
