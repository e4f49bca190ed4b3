"""What the outcome of one Bedrock request does to its reviews and to the window.

- answered: the window learns the latency; each review with a valid answer completes, the others retry
  (a review a packed answer missed or botched goes alone next time);
- throttled (paced) or unavailable: congestion, retried on its own budget; the window (pacer and AIMD) cuts;
- timed out: the latency window is cut once per congestion event; at the minimum window a review is sent
  alone, and only then do timeouts count against it;
- a configuration error (access denied, unknown model...): the reviews are held, never dead-lettered, and
  CONFIG_ERRORS_TO_HALT in a row halt the flow;
- anything else: `dataflow.enrich.retry_policy.decide` says retry now, later (backoff with full jitter) or
  dead-letter.

`RequestOutcomes` is given the window and the three ways a review leaves it (requeue now, requeue after a
delay, complete) by the engine that owns the queue; it owns only what outcomes decide: the halt.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from dataflow import metrics
from dataflow.backoff import full_jitter
from dataflow.enrich.answers import read_response
from dataflow.enrich.audit import PackingAudit
from dataflow.enrich.concurrency.limit import Outcome, Sample
from dataflow.enrich.concurrency.window import Window
from dataflow.enrich.errors import CallError, ErrorKind
from dataflow.enrich.pricing import cost_usd, price_per_mtok, served_tier
from dataflow.enrich.retry_policy import Job, Step, decide
from dataflow.records import DeadLetter, EnrichedReview
from dataflow.settings import Settings

log = logging.getLogger("dataflow.enrich.engine")  # the engine's lines, under one logger name

CONFIG_ERRORS_TO_HALT = 3  # configuration errors in a row (no success between) that halt the flow

Requeue = Callable[[list[Job]], None]  # to the front of the queue, now
RequeueLater = Callable[[float, Job], None]  # to the front of the queue, after a delay in seconds
Complete = Callable[[Job, "EnrichedReview | DeadLetter"], None]


@dataclass
class EngineStats:
    requests: int = 0
    throttled: int = 0
    retries: int = 0


class RequestOutcomes:
    """Applies each request's outcome; `halt_reason` is set when a configuration error halts the flow."""

    def __init__(
        self,
        settings: Settings,
        worker: str,
        window: Window,
        stats: EngineStats,
        *,
        requeue: Requeue,
        requeue_later: RequeueLater,
        complete: Complete,
        on_halt: Callable[[], None],
        audit: PackingAudit,
    ) -> None:
        self._settings = settings
        self._worker = worker
        self._window = window
        self._stats = stats
        self._requeue = requeue
        self._requeue_later = requeue_later
        self._complete = complete
        self._on_halt = on_halt
        self._audit = audit
        self._config_errors = 0
        self.halt_reason: str | None = None

    def failed(self, jobs: list[Job], error: CallError, started: float) -> None:
        metrics.BEDROCK_REQUESTS.labels(error.kind).inc()
        metrics.BEDROCK_LATENCY.observe(time.monotonic() - started)
        if error.kind in (ErrorKind.THROTTLED, ErrorKind.UNAVAILABLE):
            self._stats.throttled += 1
            metrics.BEDROCK_THROTTLES.inc()
        # A throttle the window did not react to (the rest of a burst) is handled like any other failure below.
        if error.kind is ErrorKind.THROTTLED and self._window.on_sample(Sample(Outcome.THROTTLE, started)):
            log.info(
                "bedrock.throttled worker=%s limit=%d pace_rps=%.2f",
                self._worker,
                self._window.current,
                self._window.pace_rps or 0.0,
            )
        elif error.kind is ErrorKind.CONFIG:
            self._config_error(error)
        elif error.kind is ErrorKind.TIMEOUT:
            self._timed_out(jobs, started)
        else:
            self._config_errors = 0
            if error.kind is ErrorKind.REQUEST:
                log.warning(
                    "bedrock.request_rejected worker=%s reviews=%d error=%s %s",
                    self._worker,
                    len(jobs),
                    error.error_type,
                    error.message,
                )
        for job in jobs:
            self.after_failure(job, error, packed=len(jobs) > 1)

    def _config_error(self, error: CallError) -> None:
        """A few configuration errors in a row halt the flow; the reviews stay held, nothing is dead-lettered."""
        self._config_errors += 1
        log.warning(
            "bedrock.config_error worker=%s in_a_row=%d error=%s %s",
            self._worker,
            self._config_errors,
            error.error_type,
            error.message,
        )
        if self._config_errors >= CONFIG_ERRORS_TO_HALT and self.halt_reason is None:
            self.halt_reason = f"reviewstream: Bedrock refused every request: {error.fix}"
            log.error("bedrock.halt worker=%s reason=%s", self._worker, self.halt_reason)
            self._on_halt()

    def answered(
        self, jobs: list[Job], response: dict[str, Any], started: float, in_flight: int, load: int = 0
    ) -> None:
        latency_s = time.monotonic() - started
        metrics.BEDROCK_LATENCY.observe(latency_s)
        self._config_errors = 0
        self._window.on_sample(Sample(Outcome.SUCCESS, started, latency_s, len(jobs), in_flight, load))
        reading = read_response(
            [(j.review, j.attempts) for j in jobs], response, self._settings.bedrock_model_id, latency_s
        )
        metrics.BEDROCK_TOKENS.labels("input").inc(reading.input_tokens)
        metrics.BEDROCK_TOKENS.labels("output").inc(reading.output_tokens)
        s = self._settings
        # Priced at the tier Bedrock says served the request (a flex request may be served in another tier).
        price = price_per_mtok(
            s.bedrock_model_id, s.bedrock_price_input_per_mtok, s.bedrock_price_output_per_mtok, served_tier(response)
        )
        metrics.BEDROCK_COST.inc(cost_usd(reading.input_tokens, reading.output_tokens, price))
        metrics.BEDROCK_REQUESTS.labels("answered" if reading.valid else "invalid").inc()
        packed = len(jobs) > 1
        answered: list[EnrichedReview] = []
        for job, outcome in zip(jobs, reading.outcomes, strict=True):
            if job.audit_of is not None:
                self._audit.record(job.audit_of, outcome if isinstance(outcome, EnrichedReview) else None)
            elif isinstance(outcome, EnrichedReview):
                self._complete(job, outcome)
                metrics.REVIEWS_ENRICHED.inc()
                answered.append(outcome)
            else:
                # A review the combined answer missed or botched goes alone next time, without waiting.
                self.after_failure(job, outcome, packed=packed, answer=None if packed else reading.text)
        if packed and (chosen := self._audit.pick(answered)):
            # Asked again alone, ahead of the queue; an audit never completes, so its sink is never written.
            self._requeue([Job(chosen.review, jobs[0].sink, solo=True, audit_of=chosen)])

    def _timed_out(self, jobs: list[Job], started: float) -> None:
        """A timeout is congestion (the window shrinks) until the review, alone at the minimum window, keeps
        timing out: only then does it count against the review (BEDROCK_MAX_TIMEOUT_ATTEMPTS)."""
        if self._window.on_sample(Sample(Outcome.TIMEOUT, started)):
            log.info("bedrock.timeout worker=%s limit=%d", self._worker, self._window.current)
        for job in jobs:
            # At the minimum window the only way to tell the review from the load is to send it alone.
            job.solo = job.solo or self._window.at_minimum

    def after_failure(self, job: Job, error: CallError, packed: bool, answer: str | None = None) -> None:
        if job.audit_of is not None:  # an audit that fails is a comparison missing: never retried or dead-lettered
            self._audit.record(job.audit_of, None)
            return
        step = decide(job, error, self._settings, packed, answer)
        if step is Step.DEAD_LETTER:
            repeated = error.kind is ErrorKind.INVALID and answer is not None and job.invalid_answers.count(answer) > 1
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
        self._stats.retries += 1
        metrics.BEDROCK_RETRIES.inc()
        if step is Step.RETRY_NOW:
            self._requeue([job])
            return
        s = self._settings
        tries = job.held if step is Step.HOLD else job.attempts - 1
        self._requeue_later(full_jitter(min(tries, 10), s.bedrock_backoff_base_s, s.bedrock_backoff_max_s), job)
