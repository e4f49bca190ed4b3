"""Baseline for the window-efficiency benchmark: the per-batch `asyncio.gather` pattern.

This is how Bytewax users commonly call an async API: each Bytewax batch is sent as chunks of at most
BEDROCK_MAX_CONCURRENCY concurrent requests, and the step returns when the whole chunk has answered. Same
source, parsing, prompt, validation and sinks as the real pipeline; only the enrichment pattern differs.
Run it as `python -m bytewax.run benchmarks.gather_flow`.
"""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

import bytewax.operators as op
from bytewax.dataflow import Dataflow

from dataflow.enrich.bedrock import aiobotocore_client
from dataflow.enrich.prompt import AnswerError, ReviewAnswer, build_converse_request, parse_answer
from dataflow.kinesis_source import KinesisSource
from dataflow.opensearch_sink.sink import OpenSearchSink
from dataflow.parse import parse_record
from dataflow.records import DeadLetter, EnrichedReview, Review
from dataflow.settings import load_settings

settings = load_settings()
_local = threading.local()


def _client() -> tuple[asyncio.AbstractEventLoop, Any]:
    if not hasattr(_local, "client"):
        _local.loop = asyncio.new_event_loop()
        _local.client = _local.loop.run_until_complete(aiobotocore_client(settings).__aenter__())
    return _local.loop, _local.client


async def _one(client: Any, review: Review) -> EnrichedReview | DeadLetter:
    started = time.monotonic()
    request = build_converse_request(settings.bedrock_model_id, [review.text], settings.bedrock_max_tokens_per_review)
    try:
        response = await asyncio.wait_for(client.converse(**request), settings.bedrock_timeout_s)
        text = "".join(b.get("text", "") for b in response["output"]["message"]["content"])
        answer = parse_answer(text, 1).get(1)
        if not isinstance(answer, ReviewAnswer):
            raise answer or AnswerError("incomplete_answer", "no answer")
    except Exception as err:  # the common pattern: no retries
        return DeadLetter.for_review(review, "enrich", type(err).__name__, str(err), 1)
    usage = response.get("usage", {})
    return EnrichedReview(
        review,
        answer.summary,
        answer.sentiment,
        settings.bedrock_model_id,
        int(usage.get("inputTokens", 0)),
        int(usage.get("outputTokens", 0)),
        int((time.monotonic() - started) * 1000),
        1,
    )


def enrich_batch(reviews: list[Review]) -> list[EnrichedReview | DeadLetter]:
    loop, client = _client()
    out: list[EnrichedReview | DeadLetter] = []
    size = settings.bedrock_max_concurrency

    async def chunk(part: list[Review]) -> list[EnrichedReview | DeadLetter]:
        return list(await asyncio.gather(*(_one(client, r) for r in part)))

    for i in range(0, len(reviews), size):
        out.extend(loop.run_until_complete(chunk(reviews[i : i + size])))
    return out


flow = Dataflow("gather_baseline")
records = op.input("kinesis", flow, KinesisSource(settings))
parsed = op.map("parse", records, lambda r: parse_record(r, settings.review_max_chars))
valid = op.branch("valid", parsed, lambda item: isinstance(item, Review))
enriched = op.flat_map_batch("enrich_gather", valid.trues, enrich_batch)
succeeded = op.branch("succeeded", enriched, lambda item: isinstance(item, EnrichedReview))
op.output("opensearch_results", succeeded.trues, OpenSearchSink(settings, "results"))
op.output(
    "opensearch_dead_letters",
    op.merge("dead", valid.falses, succeeded.falses),
    OpenSearchSink(settings, "dead_letters"),
)
