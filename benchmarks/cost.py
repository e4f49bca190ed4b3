"""$ per 1,000 realistic-length reviews for each request design, tokens counted by the local Bedrock server.

    python -m benchmarks --only cost          (or: python -m benchmarks.cost [--reviews 200])

Each design sends the same seeded realistic-length synthetic reviews (IMDB-like lengths, producer.synthetic)
through an unmodified aiobotocore client to the local server, built exactly as the dataflow builds them
(`dataflow.enrich.prompt.build_converse_request`) and validated by the dataflow's checks; a review without a
valid answer is retried alone with the error named and a warmer temperature, up to BEDROCK_MAX_ATTEMPTS, as the
dataflow does. Tokens are what the server reports (lexicon backend: 4 characters per token over everything the
model reads, the structured-output schema included); dollars are the model table's prices for the model,
profile and the tier the response says served it (`dataflow.enrich.catalog`). A second part measures what flex
costs in latency: default and flex requests together on a server with 2 slots and 100 ms per request.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time
from dataclasses import dataclass
from typing import Any

from dataflow.enrich.catalog import card_for
from dataflow.enrich.pricing import cost_usd, price_per_mtok, served_tier
from dataflow.enrich.prompt import AnswerError, ReviewAnswer, answer_text, build_converse_request, parse_answer
from devstack.processes import start_bedrock
from producer.synthetic import synthetic_reviews

HAIKU_45 = "anthropic.claude-haiku-4-5-20251001-v1:0"
MAX_ATTEMPTS = 5


@dataclass(frozen=True)
class Design:
    name: str
    model_id: str
    per_request: int
    structured: bool
    tier: str | None = None


def designs(new_default_pack: int) -> list[Design]:
    return [
        Design(
            "reference design (Claude 3 Haiku, 1/request, prompt-only)",
            "anthropic.claude-3-haiku-20240307-v1:0",
            1,
            False,
        ),
        Design("today's defaults (1/request, prompt-only)", f"global.{HAIKU_45}", 1, False),
        Design(
            f"defaults ({new_default_pack}/request, structured output where the model has it)",
            f"global.{HAIKU_45}",
            new_default_pack,
            True,
        ),
        Design("1/request, structured output", f"global.{HAIKU_45}", 1, True),
        Design("4/request, prompt-only", f"global.{HAIKU_45}", 4, False),
        Design("4/request, structured output", f"global.{HAIKU_45}", 4, True),
        Design("8/request, prompt-only", f"global.{HAIKU_45}", 8, False),
        Design("8/request, structured output", f"global.{HAIKU_45}", 8, True),
        Design("8/request, structured output, through us. (data stays in the US)", f"us.{HAIKU_45}", 8, True),
        Design("Nova Micro, 8/request, default tier", "amazon.nova-micro-v1:0", 8, False),
        Design("Nova Micro, 8/request, flex", "amazon.nova-micro-v1:0", 8, False, "flex"),
    ]


async def run_design(client: Any, design: Design, texts: list[str]) -> dict[str, Any]:
    """Send every review under `design`; retries as the dataflow does; tokens and dollars as billed."""
    tokens_in = tokens_out = requests = invalid = retries = 0
    dollars = 0.0
    pending = [(i, 1, None) for i in range(len(texts))]  # (review index, attempt, correction)
    answered = 0
    while pending:
        batch, pending = pending[: design.per_request], pending[design.per_request :]
        lone = batch[0] if len(batch) == 1 else None
        correction = lone[2] if lone else None
        request = build_converse_request(
            design.model_id,
            [texts[i] for i, _, _ in batch],
            120,
            correction=correction,
            temperature=0.7 if correction else 0.0,
            structured=design.structured,
            service_tier=design.tier,
        )
        response = await client.converse(**request)
        requests += 1
        usage = response["usage"]
        tokens_in, tokens_out = tokens_in + usage["inputTokens"], tokens_out + usage["outputTokens"]
        price = price_per_mtok(design.model_id, tier=served_tier(response))
        dollars += cost_usd(usage["inputTokens"], usage["outputTokens"], price)
        try:
            answers: dict[int, ReviewAnswer | AnswerError] = parse_answer(
                answer_text(response), len(batch), prefilled=not design.structured
            )
        except AnswerError as err:
            answers = {n: err for n in range(1, len(batch) + 1)}
        bad = [(n, item) for n, item in enumerate(batch, start=1) if not isinstance(answers.get(n), ReviewAnswer)]
        invalid += bool(bad)
        answered += len(batch) - len(bad)
        for n, (index, attempt, _) in bad:
            if attempt < MAX_ATTEMPTS:
                retries += 1
                error = answers.get(n)
                pending.insert(0, (index, attempt + 1, str(error) if error else "the entry was missing"))
    n = len(texts)
    return {
        "design": design.name,
        "model": design.model_id,
        "requests": requests,
        "input_per_review": round(tokens_in / n, 1),
        "output_per_review": round(tokens_out / n, 1),
        "invalid_share": invalid / requests,
        "retry_share": retries / n,
        "unanswered": n - answered,
        "cost_per_1000": dollars / n * 1000,
        "features": "structured output" if card_for(design.model_id).structured_output else "prompt-only",
    }


async def flex_latency(client: Any, url: str, requests: int) -> dict[str, float]:
    """p50 / p95 latency of default and flex requests sent together to a 2-slot server at 100 ms a request."""
    from tests.devstack.conftest import admin  # the admin helper the tests use

    admin(url, "/_admin/config", {"max_concurrency": 2, "latency_ms": 100, "queue_timeout_s": 0})
    model = "amazon.nova-micro-v1:0"
    latencies: dict[str, list[float]] = {"default": [], "flex": []}

    async def one(tier: str) -> None:
        started = time.monotonic()
        await client.converse(**build_converse_request(model, ["Fine."], 120, service_tier=tier))
        latencies[tier].append(time.monotonic() - started)

    await asyncio.gather(*(one("flex" if k % 2 else "default") for k in range(requests)))
    admin(url, "/_admin/config", {"max_concurrency": 0, "latency_ms": 0, "queue_timeout_s": 20})
    out = {}
    for tier, values in latencies.items():
        values.sort()
        out[f"{tier}_p50_s"] = round(statistics.median(values), 2)
        out[f"{tier}_p95_s"] = round(values[int(0.95 * (len(values) - 1))], 2)
    return out


async def measure(reviews: int, new_default_pack: int, lengths: str = "realistic") -> dict[str, Any]:
    from aiobotocore.session import get_session
    from botocore.config import Config

    texts = [r.text for r in synthetic_reviews(reviews, 7, lengths)]
    server = start_bedrock(backend="lexicon", extra_args=["--seed", "7"])
    try:
        config = Config(retries={"mode": "standard", "total_max_attempts": 1}, max_pool_connections=64)
        session = get_session()
        async with session.create_client(
            "bedrock-runtime",
            endpoint_url=server.url,
            region_name="us-east-1",
            config=config,
            aws_access_key_id="local",  # the local server accepts any signature
            aws_secret_access_key="local",
        ) as client:
            rows = [await run_design(client, d, texts) for d in designs(new_default_pack)]
            flex = await flex_latency(client, server.url, 40)
    finally:
        server.stop()
    words = sorted(len(t.split()) for t in texts)
    return {"reviews": reviews, "median_words": words[len(words) // 2], "rows": rows, "flex_latency": flex}


def cost(reviews: int = 200, new_default_pack: int = 8, lengths: str = "realistic") -> dict[str, Any]:
    return asyncio.run(measure(reviews, new_default_pack, lengths))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.cost", description=__doc__)
    parser.add_argument("--reviews", type=int, default=200)
    parser.add_argument("--pack", type=int, default=8, help="the new default BEDROCK_REVIEWS_PER_REQUEST")
    parser.add_argument("--lengths", choices=("realistic", "short"), default="realistic")
    args = parser.parse_args(argv)
    print(json.dumps(cost(args.reviews, args.pack, args.lengths), indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())


def render(result: dict[str, Any]) -> str:
    """The Cost section's tables (BENCHMARKS.md)."""
    lines = [
        f"{result['reviews']} seeded realistic-length synthetic reviews (median {result['median_words']} words); "
        "tokens counted by the local server (4 characters per token over everything the model reads, schema "
        "included), priced from `dataflow/enrich/catalog.py` at the tier served. Invalid: requests with at least "
        "one answer the dataflow rejects; retries: extra single-review requests per review.",
        "",
        "| design | model | requests | input tokens/review | output tokens/review | invalid | retries | "
        "$ per 1,000 reviews |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in result["rows"]:
        lines.append(
            f"| {r['design']} | `{r['model']}` | {r['requests']} | {r['input_per_review']} | {r['output_per_review']} "
            f"| {r['invalid_share']:.1%} | {r['retry_share']:.1%} | {r['cost_per_1000']:.3f} |"
        )
    flex = result["flex_latency"]
    lines += [
        "",
        f"Flex under load (40 requests at once, half flex, 2 slots, 100 ms each): default p50 / p95 "
        f"{flex['default_p50_s']} / {flex['default_p95_s']} s, flex {flex['flex_p50_s']} / {flex['flex_p95_s']} s.",
    ]
    return "\n".join(lines)
