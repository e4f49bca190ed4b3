"""Test doubles for the outermost boundary only: an async Bedrock client with the `converse` signature.

It answers the way the dataflow's prompt contract asks (one `results` entry per `<review id>` block) and can
be slow, throttle, fail or answer garbage on demand, raising the same botocore `ClientError` shapes as
aiobotocore does against Bedrock. Like Bedrock it validates the request first (known model id, roles
alternating from a user turn, `maxTokens` present), counts tokens from the text (so shares are uneven), and
cuts an answer longer than `maxTokens` off with `stopReason: max_tokens`.
"""

from __future__ import annotations

import asyncio
import contextlib
import html
import itertools
import random
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import orjson

from dataflow.settings import DEFAULT_MODEL_ID
from tests.support.aws import client_error

REVIEW_BLOCK = re.compile(r'<review id="(\d+)">(.*?)</review>', re.S)
KNOWN_MODELS = frozenset({DEFAULT_MODEL_ID, "anthropic.claude-3-haiku-20240307-v1:0"})


def reviews_in(kwargs: dict[str, Any]) -> list[tuple[str, str]]:
    """(id, text) of the reviews in the last user turn."""
    user_turns = [m for m in kwargs["messages"] if m["role"] == "user"]
    text = "".join(block["text"] for block in user_turns[-1]["content"])
    return [(i, html.unescape(t)) for i, t in REVIEW_BLOCK.findall(text)]


def validate_request(kwargs: dict[str, Any]) -> None:
    """Bedrock's own checks before any model runs: ValidationException (400) when one fails."""
    if kwargs.get("modelId") not in KNOWN_MODELS:
        raise client_error("ValidationException", 400, "The provided model identifier is invalid.")
    messages = kwargs.get("messages") or []
    roles = [m.get("role") for m in messages]
    if not roles or roles[0] != "user" or any(a == b for a, b in itertools.pairwise(roles)):
        raise client_error(
            "ValidationException", 400, "A conversation must alternate between user and assistant roles."
        )
    max_tokens = (kwargs.get("inferenceConfig") or {}).get("maxTokens")
    if not isinstance(max_tokens, int) or max_tokens < 1:
        raise client_error("ValidationException", 400, "maxTokens must be a positive integer.")


def tokens(text: str) -> int:
    return max(1, len(text) // 4)


def lexicon_sentiment(text: str) -> str:
    lowered = text.lower()
    bad = sum(lowered.count(w) for w in ("bad", "awful", "terrible", "broke", "hate", "worst"))
    good = sum(lowered.count(w) for w in ("good", "great", "love", "excellent", "best", "fine"))
    return "negative" if bad > good else "positive"


@dataclass
class FakeBedrock:
    """`behaviour(call_number, reviews)` may return a fault name to inject for that call."""

    latency: Callable[[list[tuple[str, str]]], float] = lambda reviews: 0.0
    behaviour: Callable[[int, list[tuple[str, str]]], str | None] = lambda n, reviews: None
    calls: int = 0
    in_flight: int = 0
    max_in_flight: int = 0
    review_counts: list[int] = field(default_factory=list)
    requests: list[dict[str, Any]] = field(default_factory=list)
    input_tokens: int = 0  # totals over the answered requests
    output_tokens: int = 0
    # ("send", requests in flight including this one) at each call, ("throttled", call number) at each throttle:
    # what the service saw, in order, so tests can assert how the window moved.
    timeline: list[tuple[str, int]] = field(default_factory=list)

    async def converse(self, **kwargs: Any) -> dict[str, Any]:
        self.calls += 1
        number = self.calls
        self.requests.append(kwargs)
        validate_request(kwargs)
        reviews = reviews_in(kwargs)
        self.review_counts.append(len(reviews))
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        self.timeline.append(("send", self.in_flight))
        try:
            await asyncio.sleep(self.latency(reviews))
            fault = self.behaviour(number, reviews)
            if fault == "throttle":
                self.timeline.append(("throttled", number))
                raise client_error("ThrottlingException", 429, "Too many requests, please wait.")
            if fault == "5xx":
                raise client_error("ServiceUnavailableException", 503)
            if fault == "500":
                raise client_error("InternalServerException", 500)
            if fault == "denied":
                raise client_error("AccessDeniedException", 403, "not authorized")
            if fault == "too_long":
                raise client_error("ValidationException", 400, "Input is too long for requested model.")
            if fault == "exit":
                raise SystemExit("the client's event loop is gone")
            if fault == "hang":
                await asyncio.sleep(3600)
            results = [
                {"id": i, "summary": f"Review {i} in one sentence.", "sentiment": lexicon_sentiment(t)}
                for i, t in reviews
            ]
            if fault == "verbose":  # a rambling answer, longer than any sane maxTokens
                for entry in results:
                    entry["summary"] = "This review goes on " + "and on " * 200 + "about it."
            if fault == "drop_last" and len(results) > 1:
                results = results[:-1]
            body = orjson.dumps({"results": results}).decode()
            text = body[1:]  # the continuation of the prefilled "{"
            if fault == "garbage":
                text = f"Sure! Here is the analysis you asked for (take {number})."
            if fault == "two_sentences":
                text = text.replace("in one sentence.", f"in one sentence. And another one, take {number}.")
            stop = "end_turn"
            max_tokens = kwargs["inferenceConfig"]["maxTokens"]
            if tokens(text) > max_tokens:
                text, stop = text[: max_tokens * 4], "max_tokens"
            prompt = "".join(b.get("text", "") for m in kwargs["messages"] for b in m["content"])
            response: dict[str, Any] = {
                "output": {"message": {"role": "assistant", "content": [{"text": text}]}},
                "stopReason": stop,
                "usage": {"inputTokens": tokens(prompt), "outputTokens": tokens(text)},
                "metrics": {"latencyMs": 5},
            }
            self.input_tokens += response["usage"]["inputTokens"]
            self.output_tokens += response["usage"]["outputTokens"]
            if fault == "no_content":
                response["output"] = {"message": {"role": "assistant"}}
            if fault == "bad_metrics":  # a shape nothing expects: handling it raises inside the engine
                response["metrics"] = "fast"
            if fault == "bad_usage":
                response["usage"] = {"inputTokens": "many", "outputTokens": None}
            return response
        finally:
            self.in_flight -= 1

    def factory(self) -> Callable[[Any], contextlib.AbstractAsyncContextManager[Any]]:
        return lambda settings: contextlib.nullcontext(self)


def sometimes(rate: float, fault: str, seed: int = 7) -> Callable[[int, list[tuple[str, str]]], str | None]:
    rng = random.Random(seed)
    return lambda n, reviews: fault if rng.random() < rate else None


@dataclass
class SingleSlotBedrock(FakeBedrock):
    """A model server with one slot and an unbounded queue (llama.cpp's default): requests are served one at a
    time, `service_s` per review, so latency grows with the number in flight. A request whose caller gave up
    (timed out) is still served: the server does not know, and the slot stays busy."""

    service_s: float = 0.05
    served: int = 0
    abandoned: int = 0
    queued: int = 0  # requests in the server (waiting or served), abandoned ones included
    queue_at_arrival: list[int] = field(default_factory=list)
    _slot: asyncio.Lock | None = None

    async def converse(self, **kwargs: Any) -> dict[str, Any]:
        self.queue_at_arrival.append(self.queued + 1)
        work = asyncio.ensure_future(self._serve(len(reviews_in(kwargs))))
        try:
            await asyncio.shield(work)
        except asyncio.CancelledError:
            self.abandoned += 1
            raise
        return await super().converse(**kwargs)

    async def _serve(self, reviews: int) -> None:
        if self._slot is None:
            self._slot = asyncio.Lock()
        self.queued += 1
        try:
            async with self._slot:
                await asyncio.sleep(self.service_s * reviews)
                self.served += 1
        finally:
            self.queued -= 1
