"""The few records batch does not take (a remainder below the per-job minimum, or what jobs left unanswered),
sent on demand: the live flow's Converse request and answer validation, one review per request.

A throttle or a server error is retried by botocore (standard mode, BEDROCK_MAX_ATTEMPTS); what still fails,
and an invalid answer, becomes an enrich dead letter with the reason, as in the live flow.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import boto3
from botocore.config import Config

from dataflow.backfill.requests import Outcome
from dataflow.enrich.answers import read_response
from dataflow.enrich.bedrock import request_shape
from dataflow.enrich.catalog import Tier
from dataflow.enrich.errors import classify
from dataflow.enrich.prompt import build_converse_request
from dataflow.records import DeadLetter, EnrichedReview, Review
from dataflow.settings import Settings


def runtime_client(settings: Settings) -> Any:
    config = Config(
        retries={"total_max_attempts": settings.bedrock_max_attempts, "mode": "standard"},
        read_timeout=settings.bedrock_timeout_s,
        max_pool_connections=settings.bedrock_max_concurrency,
    )
    return boto3.client("bedrock-runtime", region_name=settings.aws_region, config=config)


def enrich_one(client: Any, settings: Settings, review: Review, attempts: int) -> Outcome:
    structured, tier = request_shape(settings)
    request = build_converse_request(
        settings.bedrock_model_id,
        [review.text],
        settings.bedrock_max_tokens_per_review,
        structured=structured,
        service_tier=None if tier is Tier.DEFAULT else tier.value,
    )
    started = time.monotonic()
    try:
        response = client.converse(**request)
    except Exception as exc:  # classified like the live flow's failures; never raised past one review
        error = classify(exc, settings.bedrock_model_id, settings.aws_region)
        letter = DeadLetter.for_review(review, "enrich", error.error_type, f"on demand: {error.message}", attempts)
        return Outcome(letter, 0, 0)
    reading = read_response([(review, attempts)], response, settings.bedrock_model_id, time.monotonic() - started)
    result = reading.outcomes[0]
    if isinstance(result, EnrichedReview):
        return Outcome(result, reading.input_tokens, reading.output_tokens)
    letter = DeadLetter.for_review(review, "enrich", result.error_type, result.message, attempts)
    return Outcome(letter, reading.input_tokens, reading.output_tokens)


def enrich_on_demand(client: Any, settings: Settings, reviews: Sequence[tuple[Review, int]]) -> Iterator[Outcome]:
    """Outcomes of `reviews` ((review, attempts)), BEDROCK_MAX_CONCURRENCY requests at a time."""
    if not reviews:
        return
    with ThreadPoolExecutor(max_workers=min(settings.bedrock_max_concurrency, len(reviews))) as pool:
        yield from pool.map(lambda pair: enrich_one(client, settings, pair[0], pair[1]), reviews)
