"""Counters for every request the server saw, read by tests and benchmarks over `GET /_admin/stats`; and what
it answered, review by review (`GET /_admin/answered`), so a fault test can name what a restart asked for again
instead of inferring it from counts and clocks."""

from __future__ import annotations

import hashlib
import time
from collections import Counter, deque
from dataclasses import dataclass, field

ANSWERED_KEPT = 200_000  # the newest answers kept (a few MB); the tests that read them answer a few thousand


def fingerprint(text: str) -> str:
    """Names a review by its text: the server never sees the pipeline's review ids."""
    return hashlib.sha1(text.encode()).hexdigest()[:16]


@dataclass
class Stats:
    """Plain counters; the server is one asyncio loop, so no locking is needed."""

    requests: int = 0
    by_operation: Counter[str] = field(default_factory=Counter)
    by_status: Counter[str] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)
    faults: Counter[str] = field(default_factory=Counter)
    throttles: int = 0
    quota_throttles: Counter[str] = field(default_factory=Counter)
    reviews: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    quota_tokens: int = 0  # what answered requests burned of a tokens-per-minute quota (output x burndown)
    in_flight: int = 0
    max_in_flight: int = 0
    shed: int = 0  # refused at once by load shedding (admission.py)
    schema_compiles: int = 0  # structured-output schemas compiled (the first use of each, see app.py)
    by_tier: Counter[str] = field(default_factory=Counter)  # answered requests by the tier that served them
    latency_ms_sum: float = 0.0
    latency_ms_max: float = 0.0
    started_at: float = field(default_factory=time.time)
    # (time.monotonic() of the answer, fingerprint of the review's text): comparable with a test's own clock
    answered: deque[tuple[float, str]] = field(default_factory=lambda: deque(maxlen=ANSWERED_KEPT))

    def begin(self, operation: str) -> None:
        self.requests += 1
        self.by_operation[operation] += 1
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)

    def end(self, status: int, latency_ms: float, error_code: str | None = None) -> None:
        self.in_flight -= 1
        self.by_status[str(status)] += 1
        self.latency_ms_sum += latency_ms
        self.latency_ms_max = max(self.latency_ms_max, latency_ms)
        if error_code:
            self.errors[error_code] += 1
            if error_code == "ThrottlingException":
                self.throttles += 1

    def note_answered(self, texts: list[str]) -> None:
        now = time.monotonic()
        self.answered.extend((now, fingerprint(text)) for text in texts)

    def to_dict(self) -> dict:
        completed = self.by_status.get("200", 0)
        return {
            "requests": self.requests,
            "completed": completed,
            "by_operation": dict(self.by_operation),
            "by_status": dict(self.by_status),
            "errors": dict(self.errors),
            "faults": dict(self.faults),
            "throttles": self.throttles,
            "quota_throttles": dict(self.quota_throttles),
            "reviews": self.reviews,
            "input_tokens": self.input_tokens,
            "output_tokens": self.output_tokens,
            "quota_tokens": self.quota_tokens,
            "in_flight": self.in_flight,
            "max_in_flight": self.max_in_flight,
            "shed": self.shed,
            "schema_compiles": self.schema_compiles,
            "by_tier": dict(self.by_tier),
            "latency_ms_sum": round(self.latency_ms_sum, 3),
            "latency_ms_max": round(self.latency_ms_max, 3),
            "latency_ms_avg": round(self.latency_ms_sum / self.requests, 3) if self.requests else 0.0,
            "uptime_s": round(time.time() - self.started_at, 3),
        }

    def reset(self) -> None:
        """Zero everything except the requests still in flight (they will still call `end`)."""
        in_flight = self.in_flight
        self.__init__()  # type: ignore[misc]
        self.in_flight = in_flight
        self.max_in_flight = in_flight
