"""What happens to a review after a failed attempt: retry now, retry later, hold, or dead-letter.

Kept apart from the engine so the rules read in one place (docs/DESIGN.md section 3, "three kinds of failure"):

- congestion (throttled, 503) has its own large budget (BEDROCK_MAX_THROTTLED_ATTEMPTS): the quota's
  doing, not the review's; so is a timeout, until the review, sent alone at the minimum window, keeps timing
  out (BEDROCK_MAX_TIMEOUT_ATTEMPTS);
- a request-level rejection of a packed request sends each of its reviews alone, at once; only a review
  rejected alone is dead-lettered;
- an invalid answer is retried alone with the error named in the prompt and a warmer temperature (at
  temperature 0 the same prompt gives the same answer); the same invalid answer twice stops early;
- a configuration error holds the review (no attempt counted): the engine halts the flow after a few in a
  row, and the review is read again after the restart;
- anything else (500s, network) is retried with backoff up to BEDROCK_MAX_ATTEMPTS.
"""

from __future__ import annotations

import collections
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from dataflow.enrich.errors import CallError, ErrorKind
from dataflow.records import EnrichedReview, Review
from dataflow.settings import Settings


class Step(Enum):
    """What happens to a review after a failed attempt."""

    RETRY_NOW = "retry_now"  # back to the front of the queue
    RETRY_LATER = "retry_later"  # after a backoff with full jitter
    HOLD = "hold"  # a configuration error: kept, no attempt counted, until the flow halts
    DEAD_LETTER = "dead_letter"


# Temperatures of the retries after an invalid answer: attempt 1 is always 0 (deterministic, cacheable).
CORRECTION_TEMPERATURES = (0.0, 0.4, 0.7, 1.0)


@dataclass
class Job:
    """One review on its way through the engine, with what its attempts so far have taught us."""

    review: Review
    sink: collections.deque[Any]
    attempts: int = 0
    throttles: int = 0  # attempts lost to congestion (not counted against BEDROCK_MAX_ATTEMPTS)
    timeouts: int = 0  # attempts that timed out (not counted either)
    alone_at_min: bool = False  # the last attempt carried this review alone at the minimum window
    held: int = 0  # attempts lost to a configuration error (not counted either)
    solo: bool = False
    last_error: CallError | None = None
    invalid_answers: list[str] = field(default_factory=list)  # the model's rejected answers, newest last
    done: bool = False
    audit_of: EnrichedReview | None = None  # an audit's request (audit.py): the packed answer it checks

    @property
    def counted_attempts(self) -> int:
        return self.attempts - self.throttles - self.timeouts - self.held

    @property
    def correction(self) -> str | None:
        """The last validation error, named in the next prompt so a retry is not the same request."""
        error = self.last_error
        return error.message if error is not None and error.kind is ErrorKind.INVALID else None

    @property
    def temperature(self) -> float:
        tries = len(self.invalid_answers)
        return CORRECTION_TEMPERATURES[min(tries, len(CORRECTION_TEMPERATURES) - 1)]


def decide(job: Job, error: CallError, settings: Settings, packed: bool, answer: str | None = None) -> Step:
    """Record `error` on `job` and say what to do next."""
    job.last_error = error
    if error.kind is ErrorKind.CONFIG:
        job.held += 1
        return Step.HOLD
    if error.kind in (ErrorKind.THROTTLED, ErrorKind.UNAVAILABLE):
        job.throttles += 1
        return Step.DEAD_LETTER if job.throttles >= settings.bedrock_max_throttled_attempts else Step.RETRY_LATER
    if error.kind is ErrorKind.TIMEOUT:
        job.timeouts += 1
        alone_too_long = job.alone_at_min and job.timeouts >= settings.bedrock_max_timeout_attempts
        return Step.DEAD_LETTER if alone_too_long else Step.RETRY_LATER
    if error.kind is ErrorKind.REQUEST:
        if packed:
            job.solo = True
            return Step.RETRY_NOW
        return Step.DEAD_LETTER
    if error.kind is ErrorKind.INVALID:
        repeated = answer is not None and answer in job.invalid_answers
        if answer is not None:
            job.invalid_answers.append(answer)
        job.solo = True
        if repeated or job.counted_attempts >= settings.bedrock_max_attempts:
            return Step.DEAD_LETTER
        return Step.RETRY_NOW if packed else Step.RETRY_LATER
    return Step.DEAD_LETTER if job.counted_attempts >= settings.bedrock_max_attempts else Step.RETRY_LATER
