"""A Converse response matched back to the reviews it carried: outcomes by id, usage shared out."""

from __future__ import annotations

import orjson

from dataflow.enrich.answers import read_response
from dataflow.enrich.errors import ErrorKind
from dataflow.records import EnrichedReview, Review


def reviews(n: int) -> list[tuple[Review, int]]:
    return [(Review(f"r{i}", "u", "2024-01-01T00:00:00.000Z", f"text {i}", "s", str(i), 0), 2) for i in range(n)]


def response(text: str, usage: object = None, stop: str = "end_turn") -> dict:
    return {
        "output": {"message": {"content": [{"text": text}]}},
        "stopReason": stop,
        "usage": {"inputTokens": 101, "outputTokens": 31} if usage is None else usage,
        "metrics": {"latencyMs": 1234},
    }


def entries(*ids: int) -> str:
    body = [{"id": str(i), "summary": f"Review {i} is good.", "sentiment": "positive"} for i in ids]
    return orjson.dumps({"results": body}).decode()[1:]


def test_entries_are_matched_by_id_and_tokens_are_shared_out_without_loss() -> None:
    reading = read_response(reviews(3), response(entries(3, 1, 2)), "model-x", 1.0)
    assert reading.valid and [o.review.review_id for o in reading.outcomes] == ["r0", "r1", "r2"]  # type: ignore[union-attr]
    assert all(isinstance(o, EnrichedReview) and o.model_id == "model-x" and o.attempts == 2 for o in reading.outcomes)
    assert sum(o.input_tokens for o in reading.outcomes) == 101  # type: ignore[union-attr]
    assert sum(o.output_tokens for o in reading.outcomes) == 31  # type: ignore[union-attr]
    assert {o.latency_ms for o in reading.outcomes} == {1234}  # type: ignore[union-attr]


def test_a_missing_entry_is_an_invalid_outcome_for_that_review_only() -> None:
    reading = read_response(reviews(2), response(entries(1)), "m", 1.0)
    ok, missing = reading.outcomes
    assert isinstance(ok, EnrichedReview)
    assert not isinstance(missing, EnrichedReview) and missing.kind is ErrorKind.INVALID
    assert missing.error_type == "invalid_answer:incomplete_answer"


def test_an_unusable_answer_fails_every_review_with_its_reason() -> None:
    reading = read_response(reviews(2), response(entries(1, 2), stop="max_tokens"), "m", 1.0)
    assert not reading.valid and reading.text is None
    assert [o.error_type for o in reading.outcomes] == ["invalid_answer:truncated"] * 2  # type: ignore[union-attr]


def test_a_malformed_usage_block_costs_nothing_and_loses_no_answer() -> None:
    reading = read_response(reviews(1), response(entries(1), usage={"inputTokens": "lots"}), "m", 1.0)
    assert reading.input_tokens == 0 and reading.output_tokens == 0
    assert isinstance(reading.outcomes[0], EnrichedReview)
