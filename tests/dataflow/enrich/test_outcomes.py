"""What one request's outcome does, applied by `RequestOutcomes` alone (no loop, no client): completions,
requeues, the window's samples, and the halt."""

from __future__ import annotations

from typing import Any

import orjson

from dataflow.enrich.audit import PackingAudit
from dataflow.enrich.concurrency.window import Window
from dataflow.enrich.errors import CallError, ErrorKind
from dataflow.enrich.outcomes import CONFIG_ERRORS_TO_HALT, EngineStats, RequestOutcomes
from dataflow.enrich.retry_policy import Job
from dataflow.records import DeadLetter, EnrichedReview, Review
from tests.dataflow.helpers import settings


class Recorder:
    """The engine's side: what `RequestOutcomes` asked it to do."""

    def __init__(self, **env: Any) -> None:
        # The packing audit only where a test asks for it: its requests would join `now` (test_audit.py)
        self.settings = settings(**{"BEDROCK_PACKING_AUDIT_EVERY": "0", **env})
        self.window = Window.from_settings(self.settings)
        self.stats = EngineStats()
        self.now: list[Job] = []
        self.later: list[tuple[float, Job]] = []
        self.done: list[tuple[Job, EnrichedReview | DeadLetter]] = []
        self.halts = 0
        s = self.settings
        self.audit = PackingAudit("t", s.bedrock_packing_audit_every, s.bedrock_packing_min_agreement)
        self.outcomes = RequestOutcomes(
            self.settings,
            "t",
            self.window,
            self.stats,
            requeue=self.now.extend,
            requeue_later=lambda delay, job: self.later.append((delay, job)),
            complete=lambda job, result: self.done.append((job, result)),
            on_halt=self._halted,
            audit=self.audit,
        )

    def _halted(self) -> None:
        self.halts += 1


def jobs(n: int) -> list[Job]:
    out = []
    for i in range(n):
        job = Job(Review(f"r{i}", "u", "2024-01-01T00:00:00.000Z", f"text {i}", "shard", str(i), 0), sink=None)  # type: ignore[arg-type]
        job.attempts = 1
        out.append(job)
    return out


def response(entries: list[dict[str, Any]]) -> dict[str, Any]:
    text = orjson.dumps({"results": entries}).decode()[1:]  # the continuation of the prefilled "{"
    return {
        "output": {"message": {"role": "assistant", "content": [{"text": text}]}},
        "stopReason": "end_turn",
        "usage": {"inputTokens": 90, "outputTokens": 30},
    }


def test_a_valid_packed_answer_completes_each_review_and_the_window_learns() -> None:
    r = Recorder()
    batch = jobs(3)
    entries = [{"id": str(i + 1), "summary": f"Review {i} is fine.", "sentiment": "positive"} for i in range(3)]
    r.outcomes.answered(batch, response(entries), started=0.0, in_flight=1)
    assert [job for job, _ in r.done] == batch and all(isinstance(res, EnrichedReview) for _, res in r.done)
    assert sum(res.input_tokens for _, res in r.done) == 90  # the request's tokens shared out, none lost
    assert r.now == [] and r.later == []
    assert r.window.gradient is not None and r.window.gradient.baseline() is None  # one answer is no round yet
    for _ in range(2):
        r.outcomes.answered(jobs(1), response(entries[:1]), started=0.0, in_flight=1)
    assert r.window.gradient.baseline() is not None  # a round of three answers: the latency window learned


def test_a_review_a_packed_answer_missed_goes_alone_at_once() -> None:
    r = Recorder()
    batch = jobs(2)
    r.outcomes.answered(batch, response([{"id": "1", "summary": "Fine.", "sentiment": "positive"}]), 0.0, 1)
    assert [job for job, _ in r.done] == [batch[0]]
    assert r.now == [batch[1]] and batch[1].solo  # retried now, alone
    assert r.stats.retries == 1


def test_a_throttle_pauses_the_window_and_retries_later_on_its_own_budget() -> None:
    r = Recorder()
    [job] = jobs(1)
    r.outcomes.failed([job], CallError(ErrorKind.THROTTLED, "ThrottlingException", "slow down"), started=0.0)
    assert r.stats.throttled == 1 and job.throttles == 1 and job.counted_attempts == 0
    assert [j for _, j in r.later] == [job] and r.done == []
    assert r.window.delay() > 0  # the pacer pauses every start after a throttle


def test_config_errors_in_a_row_halt_once_and_dead_letter_nothing() -> None:
    r = Recorder()
    denied = CallError(ErrorKind.CONFIG, "AccessDeniedException", "no", fix="grant bedrock:InvokeModel")
    for _ in range(CONFIG_ERRORS_TO_HALT + 2):
        r.outcomes.failed(jobs(1), denied, started=0.0)
    assert r.outcomes.halt_reason is not None and "grant bedrock:InvokeModel" in r.outcomes.halt_reason
    assert r.halts == 1 and r.done == [] and len(r.later) == CONFIG_ERRORS_TO_HALT + 2  # held, not dead


def test_a_success_between_config_errors_resets_the_count() -> None:
    r = Recorder()
    denied = CallError(ErrorKind.CONFIG, "AccessDeniedException", "no")
    for _ in range(CONFIG_ERRORS_TO_HALT - 1):
        r.outcomes.failed(jobs(1), denied, started=0.0)
    r.outcomes.answered(jobs(1), response([{"id": "1", "summary": "Fine.", "sentiment": "positive"}]), 0.0, 1)
    r.outcomes.failed(jobs(1), denied, started=0.0)
    assert r.outcomes.halt_reason is None and r.halts == 0


def test_a_timeout_at_the_minimum_window_sends_the_review_alone() -> None:
    r = Recorder(BEDROCK_INITIAL_CONCURRENCY=1, BEDROCK_MIN_CONCURRENCY=1)
    batch = jobs(2)
    r.outcomes.failed(batch, CallError(ErrorKind.TIMEOUT, "Timeout", "too slow"), started=0.0)
    assert r.window.at_minimum and all(job.solo for job in batch)
    assert [j for _, j in r.later] == batch and r.done == []  # congestion: never dead-lettered by itself


def test_the_last_attempt_dead_letters_with_the_reason() -> None:
    r = Recorder(BEDROCK_MAX_ATTEMPTS=1)
    [job] = jobs(1)
    r.outcomes.failed([job], CallError(ErrorKind.TRANSIENT, "InternalServerException", "boom"), started=0.0)
    [(done_job, letter)] = r.done
    assert done_job is job and isinstance(letter, DeadLetter)
    assert letter.stage == "enrich" and letter.error_type == "InternalServerException"
    assert "boom" in letter.error and "after 1 attempt(s)" in letter.error


def test_a_throttle_the_window_ignores_resets_the_config_count_as_other_failures_do() -> None:
    """Only a throttle the window reacted to leaves the count of configuration errors in a row alone."""
    r = Recorder()
    denied = CallError(ErrorKind.CONFIG, "AccessDeniedException", "no")
    throttled = CallError(ErrorKind.THROTTLED, "ThrottlingException", "slow down")
    r.outcomes.failed(jobs(1), throttled, started=0.0)  # the window reacts: a congestion event
    for _ in range(CONFIG_ERRORS_TO_HALT - 1):
        r.outcomes.failed(jobs(1), denied, started=0.0)
    r.outcomes.failed(jobs(1), throttled, started=0.0)  # sent before the cut: the rest of the burst
    r.outcomes.failed(jobs(1), denied, started=0.0)
    assert r.outcomes.halt_reason is None


def test_an_audited_answer_is_asked_again_alone_and_only_compared() -> None:
    r = Recorder(BEDROCK_PACKING_AUDIT_EVERY="10")  # every pack at first
    entries = [{"id": str(i + 1), "summary": f"Review {i} is fine.", "sentiment": "positive"} for i in range(4)]
    audits = []
    for _ in range(2):
        r.outcomes.answered(jobs(4), response(entries), started=0.0, in_flight=1)
        audits += r.now
        r.now.clear()
    assert len(r.done) == 8  # the packed answers are the results
    assert [a.review.review_id for a in audits] == ["r1", "r2"] and all(a.solo for a in audits)
    assert [a.audit_of.review.review_id for a in audits if a.audit_of] == ["r1", "r2"]
    for a in audits:
        a.attempts = 1
    agree = [{"id": "1", "summary": "Fine alone.", "sentiment": "positive"}]
    r.outcomes.answered([audits[0]], response(agree), started=0.0, in_flight=1)
    r.outcomes.answered([audits[1]], response([agree[0] | {"sentiment": "negative"}]), started=0.0, in_flight=1)
    assert len(r.done) == 8 and r.now == [] and r.later == []  # an audit's answer is never a result
    assert (r.audit.audited, r.audit.agreed) == (2, 1)
    r.outcomes.answered(jobs(1), response(agree), started=0.0, in_flight=1)
    assert r.now == []  # a request of one review is not a pack: nothing to audit


def test_a_failed_audit_is_neither_retried_nor_dead_lettered() -> None:
    r = Recorder(BEDROCK_PACKING_AUDIT_EVERY="1")
    entries = [{"id": str(i + 1), "summary": "Fine.", "sentiment": "positive"} for i in range(2)]
    for _ in range(2):
        r.outcomes.answered(jobs(2), response(entries), started=0.0, in_flight=1)
    audits, done = list(r.now), len(r.done)
    r.now.clear()
    for a in audits:
        a.attempts = 1
    r.outcomes.failed([audits[0]], CallError(ErrorKind.THROTTLED, "ThrottlingException", "slow down"), 0.0)
    r.outcomes.answered([audits[1]], response([]), started=0.0, in_flight=1)  # no entry: an invalid answer
    assert r.now == [] and r.later == [] and len(r.done) == done
    assert r.audit.audited == 0  # a missing comparison is not evidence either way
