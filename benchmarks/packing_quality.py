"""Label agreement and answer validity of the llm backend by reviews per request, structured output on and off.

    python -m benchmarks.packing_quality REVIEWS.csv --records FILE.jsonl [--skip 200] [--count 96] \\
        [--packs 1,8,4] [--structured off,on] [--mode joint]
    python -m benchmarks.packing_quality --summary FILE.jsonl [FILE.jsonl ...]

Requests are built exactly as the dataflow builds them (`build_converse_request`, structured or prompt-only),
parsed as the local server parses them (`parse_converse`, which checks `outputConfig`), answered by the llm
backend in process and validated by the dataflow's checks. `joint` mode is the one where packing can matter:
one generation answers the whole request from its own prompt (under the request's schema with structured
output, under the built-in answer grammar without). In `per-review` mode (the backend's default) each review
is scored alone whatever the packing. Rows `--skip` on are used (the first 200 calibrated the threshold).

`--bedrock` sends the same requests to Bedrock instead (boto3's credentials; `--model-id`, e.g. the `global.`
Haiku 4.5 profile): the labelled 1-versus-8 comparison on Claude itself that the local model cannot give.

Every review's outcome is appended to `--records` as it comes (configuration, CSV row, label, answer or error,
the request's tokens), so configurations can run in separate processes, a run interrupted by the clock resumes
where it stopped, and `--summary` compares configurations on the reviews they share (paired), with a 95%
Wilson interval. Each pack size is walked in the same row order, so a partial run is a prefix of the sample.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections import defaultdict
from collections.abc import Awaitable, Callable
from pathlib import Path

from benchmarks.llm_quality import load_labelled
from dataflow.enrich.audit import wilson
from dataflow.enrich.prompt import AnswerError, ReviewAnswer, answer_text, build_converse_request, parse_answer
from dataflow.enrich.schema import SUMMARY_PATTERN

MODEL_ID = "us.anthropic.claude-haiku-4-5-20251001-v1:0"
Config = tuple[int, bool]  # (reviews per request, structured output)


def done_rows(records: Path, pack: int, structured: bool) -> set[int]:
    if not records.exists():
        return set()
    rows = (json.loads(line) for line in records.read_text().splitlines() if line.strip())
    return {r["row"] for r in rows if r["pack"] == pack and r["structured"] == structured}


Answer = Callable[[dict], Awaitable[dict]]  # a Converse request body -> a Converse response


def local_answerer(mode: str, threads: int) -> Answer:
    """The llm backend in process, behind the local server's own parsing and response rendering."""
    from devstack.bedrock.backends.llm import LlmBackend
    from devstack.bedrock.models import resolve_model
    from devstack.bedrock.wire import converse_response, parse_converse

    backend = LlmBackend(mode=mode, threads=threads, parallel=1, ctx_size=8192)

    async def answer(body: dict) -> dict:
        result = await backend.generate(parse_converse(body["modelId"], body, resolve_model(body["modelId"])))
        return json.loads(converse_response(result, 0).body)

    return answer


def bedrock_answerer() -> Answer:
    """Bedrock itself (or whatever AWS_ENDPOINT_URL_BEDROCK_RUNTIME names), through boto3, one request at a time."""
    import boto3
    from botocore.config import Config

    client = boto3.client("bedrock-runtime", config=Config(retries={"mode": "adaptive", "max_attempts": 8}))

    async def answer(body: dict) -> dict:
        return await asyncio.to_thread(lambda: client.converse(**body))

    return answer


async def run(
    answer: Answer, model_id: str, sample: list[tuple[int, str, str]], pack: int, structured: bool, records: Path
) -> None:
    """Answer `sample` in requests of `pack`, skipping requests whose rows `records` already holds."""
    seen = done_rows(records, pack, structured)
    for start in range(0, len(sample), pack):
        chunk = sample[start : start + pack]
        if {row for row, _, _ in chunk} <= seen:
            continue
        body = build_converse_request(model_id, [t for _, t, _ in chunk], 120, structured=structured)
        response = await answer(body)
        usage = response.get("usage", {})
        error = ""
        try:
            answers: dict = parse_answer(answer_text(response), len(chunk), prefilled=not structured)
        except AnswerError as err:
            answers, error = {}, f"{err.kind}: {err}"
        with records.open("a") as out:
            for n, (row, _, label) in enumerate(chunk, start=1):
                got = answers.get(n, error or "missing")
                record = {"pack": pack, "structured": structured, "row": row, "label": label, "request": chunk[0][0]}
                record["size"] = len(chunk)  # the last request of a sample may be short
                record |= {"input_tokens": usage.get("inputTokens"), "output_tokens": usage.get("outputTokens")}
                if isinstance(got, ReviewAnswer):
                    record |= {"sentiment": got.sentiment, "summary": got.summary}
                else:
                    record |= {"error": str(got), "raw": json.dumps(response.get("output"))[:2000]}
                out.write(json.dumps(record) + "\n")
        print(f"pack {pack} structured {structured}: {start + len(chunk)}/{len(sample)}", file=sys.stderr, flush=True)


def summarise(paths: list[Path]) -> list[dict]:
    """Per configuration: agreement (an invalid answer is a miss), valid answers, invalid requests, retries,
    tokens per review, and the paired difference in agreement against 1/request prompt-only on shared rows."""
    by: dict[Config, dict[int, dict]] = defaultdict(dict)
    for path in paths:
        for line in path.read_text().splitlines():
            if line.strip():
                r = json.loads(line)
                by[(r["pack"], r["structured"])][r["row"]] = r
    full = {c: rows for c, rows in by.items() if _complete(rows, c[0])}
    base = full.get((1, False), {})
    out = []
    for (pack, structured), rows in sorted(full.items()):
        n = len(rows)
        agree = sum(r.get("sentiment") == r["label"] for r in rows.values())
        valid = sum("sentiment" in r for r in rows.values())
        requests: dict[int, list[dict]] = defaultdict(list)
        for r in rows.values():
            requests[r["request"]].append(r)
        invalid = sum(any("error" in r for r in req) for req in requests.values())
        low, high = wilson(agree, n)
        item = {
            "pack": pack,
            "structured": structured,
            "reviews": n,
            "agreement": round(agree / n, 3),
            "agreement_95ci": [round(low, 3), round(high, 3)],
            "valid_answers": round(valid / n, 3),
            "invalid_requests": f"{invalid}/{len(requests)}",
            "retries_per_review": round((n - valid) / n, 3),  # each invalid or missing answer is resent alone
            # Valid is not good: a small model may give every review of a pack the same summary.
            "distinct_summaries": round(sum(len({r.get("summary") for r in req}) for req in requests.values()) / n, 3),
            "input_tokens_per_review": _tokens_per_review(list(requests.values())),
            "errors": sorted({r["error"].split(":")[0] for r in rows.values() if "error" in r}),
        }
        shared = sorted(set(rows) & set(base))
        if shared and (pack, structured) != (1, False):
            win = sum(rows[i].get("sentiment") == rows[i]["label"] != base[i].get("sentiment") for i in shared)
            lose = sum(base[i].get("sentiment") == base[i]["label"] != rows[i].get("sentiment") for i in shared)
            item["vs_1_off"] = {"shared": len(shared), "points": round(100 * (win - lose) / len(shared), 1)}
            item["vs_1_off"] |= {"right_only_here": win, "right_only_at_1_off": lose}
        out.append(item)
    return out


def _tokens_per_review(requests: list[list[dict]]) -> float | None:
    counted = [req for req in requests if req[0].get("input_tokens") is not None]
    return round(sum(req[0]["input_tokens"] for req in counted) / sum(map(len, counted)), 1) if counted else None


def _complete(rows: dict[int, dict], pack: int) -> bool:
    """Whether every request this configuration started has all its rows (a killed run leaves none half)."""
    sizes: dict[int, int] = defaultdict(int)
    expected: dict[int, int] = {}
    for r in rows.values():
        sizes[r["request"]] += 1
        expected[r["request"]] = r.get("size", pack)  # records before `size` was kept: full requests only
    return bool(rows) and all(size == expected[request] for request, size in sizes.items())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.packing_quality", description=__doc__)
    parser.add_argument("csv", nargs="?")
    parser.add_argument("--summary", type=Path, nargs="+", default=None)
    parser.add_argument("--skip", type=int, default=200)
    parser.add_argument("--count", type=int, default=96)
    parser.add_argument("--mode", choices=("joint", "per-review"), default="joint")
    parser.add_argument("--packs", default="1,8,4")
    parser.add_argument("--structured", default="off,on", help="off, on or off,on")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--records", type=Path, default=Path("out/packing_quality.jsonl"))
    parser.add_argument(
        "--bedrock", action="store_true", help="ask Bedrock (boto3's credentials and endpoint), not the local model"
    )
    parser.add_argument("--model-id", default=MODEL_ID)
    args = parser.parse_args(argv)
    if args.summary:
        for item in summarise(args.summary):
            print(json.dumps(item))
        return 0
    modes = [{"off": False, "on": True}[m] for m in args.structured.split(",")]
    rows = load_labelled(Path(args.csv), args.skip + args.count)[args.skip :]
    sample = [(args.skip + i, text, label) for i, (text, label) in enumerate(rows)]
    print(f"summary pattern under structured output: {SUMMARY_PATTERN}", file=sys.stderr)
    answer = bedrock_answerer() if args.bedrock else local_answerer(args.mode, args.threads)
    for pack in (int(p) for p in args.packs.split(",")):
        for structured in modes:
            asyncio.run(run(answer, args.model_id, sample, pack, structured, args.records))
    for item in summarise([args.records]):
        print(json.dumps(item), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
