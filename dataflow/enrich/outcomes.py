"""What the outcome of one Bedrock request does to its reviews and to the window (part of `EnrichEngine`).

- answered: the window learns the latency; each review with a valid answer completes, the others retry
  (a review a packed answer missed or botched goes alone next time);
- throttled (paced) or unavailable: congestion, retried on its own budget; the pacer and AIMD cut;
- timed out: the latency window is cut once per congestion event; at the minimum window a review is sent
  alone, and only then do timeouts count against it;
- a configuration error (access denied, unknown model...): the reviews are held, never dead-lettered, and
  CONFIG_ERRORS_TO_HALT in a row halt the flow;
- anything else: `dataflow.enrich.retry_policy.decide` says retry now, later (backoff with full jitter) or dead-letter.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from typing import TYPE_CHECKING, Any

from dataflow import metrics
from dataflow.enrich.answers import read_response
from dataflow.enrich.concurrency.aimd import full_jitter
from dataflow.enrich.errors import CallError
from dataflow.enrich.pricing import cost_usd
from dataflow.enrich.retry_policy import DEAD_LETTER, HOLD, RETRY_NOW, Job, decide
from dataflow.records import DeadLetter, EnrichedReview
from dataflow.settings import Settings

if TYPE_CHECKING:
    from dataflow.enrich.concurrency.aimd import AimdLimit, RatePacer
    from dataflow.enrich.concurrency.window import Window

log = logging.getLogger("dataflow.enrich.engine")  # one logger name for the engine's lines, as before

CONFIG_ERRORS_TO_HALT = 3  # configuration errors in a row (no success between) that halt the flow


class RequestOutcomes:
    """Mixed into `EnrichEngine`, which owns the state used here."""

    settings: Settings
    worker: str
    stats: Any
    window: Window
    limit: AimdLimit
    pacer: RatePacer | None
    halt_reason: str | None
    _config_errors: int
    _changed: threading.Condition
    _in_flight: int
    _price: Any
    _loop: asyncio.AbstractEventLoop

    if TYPE_CHECKING:

        def _enqueue(self, jobs: list[Job], front: bool) -> None: ...

        def _complete(self, job: Job, result: Any) -> None: ...

    def _failed(self, jobs: list[Job], error: CallError, started: float) -> None:
        metrics.BEDROCK_REQUESTS.labels(error.kind).inc()
        metrics.BEDROCK_LATENCY.observe(time.monotonic() - started)
        if error.kind in ("throttled", "unavailable"):
            self.stats.throttled += 1
            metrics.BEDROCK_THROTTLES.inc()
        if error.kind == "throttled" and self.pacer is not None and self.pacer.on_throttle(started):
            self.limit.on_throttle(started)
            log.info(
                "bedrock.throttled worker=%s limit=%d pace_rps=%.2f",
                self.worker,
                self.limit.current,
                self.pacer.rate or 0.0,
            )
        elif error.kind == "config":
            self._config_error(error)
        elif error.kind == "timeout":
            self._timed_out(jobs, started)
        else:
            self._config_errors = 0
            if error.kind == "request":
                log.warning(
                    "bedrock.request_rejected worker=%s reviews=%d error=%s %s",
                    self.worker,
                    len(jobs),
                    error.error_type,
                    error.message,
                )
        for job in jobs:
            self._after_failure(job, error, packed=len(jobs) > 1)

    def _config_error(self, error: CallError) -> None:
        """A few configuration errors in a row halt the flow; the reviews stay held, nothing is dead-lettered."""
        self._config_errors += 1
        log.warning(
            "bedrock.config_error worker=%s in_a_row=%d error=%s %s",
            self.worker,
            self._config_errors,
            error.error_type,
            error.message,
        )
        if self._config_errors >= CONFIG_ERRORS_TO_HALT and self.halt_reason is None:
            self.halt_reason = f"reviewstream: Bedrock refused every request: {error.fix}"
            log.error("bedrock.halt worker=%s reason=%s", self.worker, self.halt_reason)
            with self._changed:
                self._changed.notify_all()

    def _answered(self, jobs: list[Job], response: dict[str, Any], started: float) -> None:
        latency_s = time.monotonic() - started
        metrics.BEDROCK_LATENCY.observe(latency_s)
        self._config_errors = 0
        self.window.on_answer(started, latency_s, len(jobs), self._in_flight)
        reading = read_response(
            [(j.review, j.attempts) for j in jobs], response, self.settings.bedrock_model_id, latency_s
        )
        metrics.BEDROCK_TOKENS.labels("input").inc(reading.input_tokens)
        metrics.BEDROCK_TOKENS.labels("output").inc(reading.output_tokens)
        metrics.BEDROCK_COST.inc(cost_usd(reading.input_tokens, reading.output_tokens, self._price))
        metrics.BEDROCK_REQUESTS.labels("answered" if reading.valid else "invalid").inc()
        packed = len(jobs) > 1
        for job, outcome in zip(jobs, reading.outcomes, strict=True):
            if isinstance(outcome, EnrichedReview):
                self._complete(job, outcome)
                metrics.REVIEWS_ENRICHED.inc()
            else:
                # A review the combined answer missed or botched goes alone next time, without waiting.
                self._after_failure(job, outcome, packed=packed, answer=None if packed else reading.text)

    def _timed_out(self, jobs: list[Job], started: float) -> None:
        """A timeout is congestion (the window shrinks) until the review, alone at the minimum window, keeps
        timing out: only then does it count against the review (BEDROCK_MAX_TIMEOUT_ATTEMPTS)."""
        if self.window.on_timeout(started):
            log.info("bedrock.timeout worker=%s limit=%d", self.worker, self.window.current)
        for job in jobs:
            # At the minimum window the only way to tell the review from the load is to send it alone.
            job.solo = job.solo or self.window.at_minimum

    def _after_failure(self, job: Job, error: CallError, packed: bool, answer: str | None = None) -> None:
        step = decide(job, error, self.settings, packed, answer)
        if step == DEAD_LETTER:
            repeated = error.kind == "invalid" and answer is not None and job.invalid_answers.count(answer) > 1
            note = f"after {job.attempts} attempt(s)"
            if repeated:
                note += "; the model gave the same invalid answer again"
            self._complete(
                job,
                DeadLetter.for_review(
                    job.review,
                    stage="enrich",
                    error_type=error.error_type,
                    error=f"{error.message} ({note})",
                    attempts=job.attempts,
                ),
            )
            metrics.DEAD_LETTERS.labels("enrich", error.error_type).inc()
            return
        self.stats.retries += 1
        metrics.BEDROCK_RETRIES.inc()
        if step == RETRY_NOW:
            self._enqueue([job], True)
            return
        tries = job.held if step == HOLD else job.attempts - 1
        delay = full_jitter(min(tries, 10), self.settings.bedrock_backoff_base_s, self.settings.bedrock_backoff_max_s)
        self._loop.call_later(delay, self._enqueue, [job], True)
