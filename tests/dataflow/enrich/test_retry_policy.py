"""What a failed attempt leads to: the budgets of each kind, invalid answers retried differently."""

from __future__ import annotations

from dataflow.enrich.errors import CallError, classify
from dataflow.enrich.retry_policy import Job, Step, decide
from dataflow.records import Review
from tests.dataflow.helpers import settings
from tests.support.aws import client_error


def _job() -> Job:
    review = Review("r1", "u1", "2024-01-01T00:00:00.000Z", "text", "shard", "1", 0)
    return Job(review, sink=None)  # type: ignore[arg-type]


def test_policy_budgets() -> None:
    cfg = settings(BEDROCK_MAX_ATTEMPTS=3, BEDROCK_MAX_THROTTLED_ATTEMPTS=5)
    job = _job()
    throttled = classify(client_error("ThrottlingException", 429))
    steps = []
    for _ in range(5):
        job.attempts += 1
        steps.append(decide(job, throttled, cfg, packed=False))
    assert steps == [Step.RETRY_LATER] * 4 + [Step.DEAD_LETTER]
    assert job.counted_attempts == 0  # congestion never used the review's own budget

    job = _job()
    denied = classify(client_error("AccessDeniedException", 403))
    for _ in range(10):
        job.attempts += 1
        assert decide(job, denied, cfg, packed=False) == Step.HOLD  # held, however often: the engine halts instead

    job = _job()
    too_long = classify(client_error("ValidationException", 400, "Input is too long for requested model."))
    job.attempts += 1
    assert decide(job, too_long, cfg, packed=True) == Step.RETRY_NOW and job.solo
    job.attempts += 1
    assert decide(job, too_long, cfg, packed=False) == Step.DEAD_LETTER


def test_invalid_answers_change_the_retry_and_repeats_stop_early() -> None:
    cfg = settings(BEDROCK_MAX_ATTEMPTS=5)
    job = _job()
    invalid = CallError("invalid", "invalid_answer:not_json", "answer is not valid JSON")
    job.attempts += 1
    assert job.correction is None and job.temperature == 0.0
    assert decide(job, invalid, cfg, packed=False, answer="Sure!") == Step.RETRY_LATER
    assert job.correction == "answer is not valid JSON" and job.temperature > 0.0
    job.attempts += 1
    assert decide(job, invalid, cfg, packed=False, answer="Sure!") == Step.DEAD_LETTER  # the same answer again
