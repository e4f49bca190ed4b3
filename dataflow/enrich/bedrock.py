"""The Bedrock call: the Converse client, and one request with its timeout, its outcome classified.

The client is aiobotocore's `bedrock-runtime`; `AWS_ENDPOINT_URL_BEDROCK_RUNTIME` (read by botocore itself)
points it at the local Bedrock-compatible server, so there is one code path for AWS and local. botocore's
own retries are off (`total_max_attempts=1`: one HTTP request per call; botocore's `max_attempts` counts
*retries*, so `max_attempts=1` would send two): the enrichment engine owns retries, so every throttle reaches
the concurrency window and the pacer, and no hidden backoff eats into BEDROCK_TIMEOUT_S.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Sequence
from typing import Any

from aiobotocore.config import AioConfig
from aiobotocore.session import get_session

from dataflow.enrich.catalog import Tier, card_for, tier_to_send
from dataflow.enrich.errors import CallError, classify
from dataflow.enrich.prompt import build_converse_request
from dataflow.enrich.retry_policy import Job
from dataflow.settings import Settings

# A factory returns an async context manager yielding an object with `async converse(**kwargs)`.
ClientFactory = Callable[[Settings], contextlib.AbstractAsyncContextManager[Any]]


def aiobotocore_client(settings: Settings) -> contextlib.AbstractAsyncContextManager[Any]:
    """The real `bedrock-runtime` client, sized for the concurrency window."""
    config = AioConfig(
        retries={"total_max_attempts": 1, "mode": "standard"},
        connect_timeout=5,
        read_timeout=settings.bedrock_timeout_s + 5,
        max_pool_connections=settings.bedrock_max_concurrency,
    )
    return get_session().create_client("bedrock-runtime", region_name=settings.aws_region, config=config)


def request_shape(settings: Settings) -> tuple[bool, Tier]:
    """(structured output?, tier to ask for) for the configured model, from its row in the model table: an
    unknown model, or BEDROCK_STRUCTURED_OUTPUT=off, gets the prompt-only path; a tier the model does not offer
    is not sent (the default tier serves it; `enrich.request_shape` says so once at start)."""
    structured = settings.bedrock_structured_output == "auto" and card_for(settings.bedrock_model_id).structured_output
    return structured, tier_to_send(settings.bedrock_model_id, Tier(settings.bedrock_service_tier))


async def converse(client: Any, settings: Settings, jobs: Sequence[Job]) -> dict[str, Any] | CallError:
    """One Converse request for `jobs` (several reviews, or one with the last error named and a warmer
    temperature): the response, or the failure classified (a timeout after BEDROCK_TIMEOUT_S included)."""
    lone = jobs[0] if len(jobs) == 1 else None
    structured, tier = request_shape(settings)
    request = build_converse_request(
        settings.bedrock_model_id,
        [j.review.text for j in jobs],
        settings.bedrock_max_tokens_per_review,
        correction=lone.correction if lone else None,
        temperature=lone.temperature if lone else 0.0,
        structured=structured,
        service_tier=None if tier is Tier.DEFAULT else tier.value,
    )
    try:
        response: dict[str, Any] = await asyncio.wait_for(client.converse(**request), settings.bedrock_timeout_s)
    except Exception as exc:
        return classify(exc, settings.bedrock_model_id, settings.aws_region)
    return response
