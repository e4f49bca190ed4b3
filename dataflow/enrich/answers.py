"""From a Converse response to one outcome per review of the request: an `EnrichedReview`, or why not.

Kept apart from the engine (which decides what to do with a failure) so the matching of answers to reviews
reads in one place: entries are matched by request-local id; a review whose entry is missing or invalid, or
whose request got an unusable answer as a whole, gets a `CallError` of kind `invalid` naming the reason; the
request's tokens are shared out over the reviews it answered.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from dataflow.enrich.errors import CallError, ErrorKind
from dataflow.enrich.prompt import AnswerError, ReviewAnswer, answer_text, parse_answer
from dataflow.records import EnrichedReview, Review


@dataclass(frozen=True)
class Reading:
    """What one response says: the outcome per review (in request order) and the request's usage."""

    outcomes: list[EnrichedReview | CallError]
    text: str | None  # the model's text, when there was one
    valid: bool  # the answer as a whole was usable (some entries may still be invalid)
    input_tokens: int
    output_tokens: int


def _tokens(usage: Any, name: str) -> int:
    try:
        return max(0, int(usage.get(name, 0) or 0))
    except (AttributeError, TypeError, ValueError):
        return 0  # a malformed usage block costs nothing we can count, and must not lose the answer


def read_response(
    reviews: Sequence[tuple[Review, int]], response: dict[str, Any], model_id: str, latency_s: float
) -> Reading:
    """`reviews` are (review, attempts so far) in request order; ids in the prompt are their positions."""
    usage = response.get("usage") or {}
    input_tokens, output_tokens = _tokens(usage, "inputTokens"), _tokens(usage, "outputTokens")
    latency_ms = int((response.get("metrics") or {}).get("latencyMs", latency_s * 1000))
    n = len(reviews)
    text: str | None = None
    try:
        text = answer_text(response)
        answers: dict[int, ReviewAnswer | AnswerError] = parse_answer(text, n)
        whole_error: AnswerError | None = None
    except AnswerError as err:
        answers, whole_error = {}, err
    outcomes: list[EnrichedReview | CallError] = []
    for i, (review, attempts) in enumerate(reviews, start=1):
        answer = answers.get(i)
        if isinstance(answer, ReviewAnswer):
            outcomes.append(
                EnrichedReview(
                    review=review,
                    summary=answer.summary,
                    sentiment=answer.sentiment,
                    model_id=model_id,
                    input_tokens=input_tokens // n + (input_tokens % n if i == 1 else 0),
                    output_tokens=output_tokens // n + (output_tokens % n if i == 1 else 0),
                    latency_ms=latency_ms,
                    attempts=attempts,
                )
            )
            continue
        err = answer if isinstance(answer, AnswerError) else whole_error
        if err is None:
            err = AnswerError("incomplete_answer", f"the combined answer has no entry for review {i} of {n}")
        outcomes.append(CallError(ErrorKind.INVALID, f"invalid_answer:{err.kind}", str(err)))
    return Reading(outcomes, text, whole_error is None, input_tokens, output_tokens)
