"""Label agreement and answer validity of the llm backend by reviews per request, structured output on and off.

    python -m benchmarks.packing_quality REVIEWS.csv [--skip 200] [--count 24] [--mode joint]

Requests are built exactly as the dataflow builds them (`build_converse_request`, structured or prompt-only),
parsed as the local server parses them (`parse_converse`, which checks `outputConfig`), answered by the llm
backend in process and validated by the dataflow's checks. `joint` mode is the one where packing can matter:
one generation answers the whole request from its own prompt (under the request's schema with structured
output, under the built-in answer grammar without). In `per-review` mode (the backend's default) each review
is scored alone whatever the packing. Rows `--skip` on are used (the first 200 calibrated the threshold).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time

from benchmarks.llm_quality import load_labelled
from dataflow.enrich.prompt import AnswerError, ReviewAnswer, answer_text, build_converse_request, parse_answer
from devstack.bedrock.backends.llm import LlmBackend
from devstack.bedrock.models import resolve_model
from devstack.bedrock.wire import converse_response, parse_converse

MODEL_ID = "us.anthropic.claude-haiku-4-5-20251001-v1:0"


async def score(backend: LlmBackend, sample: list[tuple[str, str]], pack: int, structured: bool) -> dict:
    spec = resolve_model(MODEL_ID)
    agree = valid = requests = invalid_requests = 0
    started = time.monotonic()
    for start in range(0, len(sample), pack):
        chunk = sample[start : start + pack]
        body = build_converse_request(MODEL_ID, [t for t, _ in chunk], 120, structured=structured)
        result = await backend.generate(parse_converse(MODEL_ID, body, spec))
        response = json.loads(converse_response(result, 0).body)  # type: ignore[arg-type]
        requests += 1
        try:
            answers = parse_answer(answer_text(response), len(chunk), prefilled=not structured)
        except AnswerError:
            answers = {}
        good = [(answers.get(n), label) for n, (_, label) in enumerate(chunk, start=1)]
        ok = [(a, label) for a, label in good if isinstance(a, ReviewAnswer)]
        invalid_requests += len(ok) < len(chunk)
        valid += len(ok)
        agree += sum(a.sentiment == label for a, label in ok)  # type: ignore[union-attr]
    n = len(sample)
    return {
        "pack": pack,
        "structured": structured,
        "reviews": n,
        "agreement": round(agree / n, 3),  # an invalid answer counts as a miss
        "valid_answers": round(valid / n, 3),
        "invalid_requests": f"{invalid_requests}/{requests}",
        "seconds": round(time.monotonic() - started, 1),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.packing_quality", description=__doc__)
    parser.add_argument("csv")
    parser.add_argument("--skip", type=int, default=200)
    parser.add_argument("--count", type=int, default=24)
    parser.add_argument("--mode", choices=("joint", "per-review"), default="joint")
    parser.add_argument("--packs", default="1,4,8")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    from pathlib import Path

    sample = load_labelled(Path(args.csv), args.skip + args.count)[args.skip :]
    backend = LlmBackend(mode=args.mode, threads=args.threads, parallel=1, ctx_size=8192)
    for pack in (int(p) for p in args.packs.split(",")):
        for structured in (False, True):
            print(json.dumps({"mode": args.mode, **asyncio.run(score(backend, sample, pack, structured))}), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
