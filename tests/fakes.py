"""Test doubles for the outermost boundary only: an async Bedrock client with the `converse` signature.

It answers the way the dataflow's prompt contract asks (one `results` entry per `<review id>` block) and can
be slow, throttle, fail or answer garbage on demand, raising the same botocore `ClientError` shapes as
aiobotocore does against Bedrock.
"""

from __future__ import annotations

import asyncio
import contextlib
import html
import random
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import orjson
from botocore.exceptions import ClientError

REVIEW_BLOCK = re.compile(r'<review id="(\d+)">(.*?)</review>', re.S)


def client_error(code: str, status: int, message: str = "injected") -> ClientError:
    return ClientError(
        {"Error": {"Code": code, "Message": message}, "ResponseMetadata": {"HTTPStatusCode": status}}, "Converse"
    )


def reviews_in(kwargs: dict[str, Any]) -> list[tuple[str, str]]:
    """(id, text) of the reviews in the last user turn."""
    user_turns = [m for m in kwargs["messages"] if m["role"] == "user"]
    text = "".join(block["text"] for block in user_turns[-1]["content"])
    return [(i, html.unescape(t)) for i, t in REVIEW_BLOCK.findall(text)]


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
    # ("send", requests in flight including this one) at each call, ("throttled", call number) at each throttle:
    # what the service saw, in order, so tests can assert how the window moved.
    timeline: list[tuple[str, int]] = field(default_factory=list)

    async def converse(self, **kwargs: Any) -> dict[str, Any]:
        self.calls += 1
        number = self.calls
        self.requests.append(kwargs)
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
            if fault == "denied":
                raise client_error("AccessDeniedException", 403, "not authorized")
            if fault == "hang":
                await asyncio.sleep(3600)
            results = [
                {"id": i, "summary": f"Review {i} in one sentence.", "sentiment": lexicon_sentiment(t)}
                for i, t in reviews
            ]
            if fault == "drop_last" and len(results) > 1:
                results = results[:-1]
            body = orjson.dumps({"results": results}).decode()
            text = body[1:]  # the continuation of the prefilled "{"
            if fault == "garbage":
                text = "Sure! Here is the analysis you asked for."
            if fault == "two_sentences":
                text = text.replace("in one sentence.", "in one sentence. And another one.")
            return {
                "output": {"message": {"role": "assistant", "content": [{"text": text}]}},
                "stopReason": "end_turn",
                "usage": {"inputTokens": 100 * len(reviews), "outputTokens": 20 * len(reviews)},
                "metrics": {"latencyMs": 5},
            }
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
