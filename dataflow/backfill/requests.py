"""A review as a batch job record, and a job's output line back as the live flow's outcome.

The job's `modelInput` is the InvokeModel body of the model: for Claude the Anthropic Messages body, built from
the SAME Converse request the live flow sends (`dataflow.enrich.prompt.build_converse_request`), one review per
record (`recordId` = review id). Batch inference takes no structured output (AWS, "Process multiple prompts
with batch inference"), so the prompt-only contract is used: format instructions, worked example, `{` prefill.
An output line's `modelOutput` is turned back into a Converse-shaped response and read by the SAME validation
(`dataflow.enrich.answers.read_response`); its `error` becomes an enrich dead letter with Bedrock's code.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from dataflow.enrich.answers import read_response
from dataflow.enrich.catalog import card_for
from dataflow.enrich.prompt import build_converse_request
from dataflow.records import DeadLetter, EnrichedReview, Review

ANTHROPIC_VERSION = "bedrock-2023-05-31"


class UnsupportedModel(ValueError):
    """The model has no batch request shape here; the message names the fix."""


def check_model(model_id: str) -> None:
    """Only Anthropic Messages bodies are built: any other model stops the backfill at start, naming the fix."""
    if "anthropic." not in model_id:
        raise UnsupportedModel(
            f"BEDROCK_MODEL_ID: {model_id!r} is not an Anthropic Claude model; the backfill builds Anthropic "
            "Messages bodies only (use a Claude model id or inference profile for the backfill)"
        )
    if card_for(model_id).batch is False:
        raise UnsupportedModel(f"BEDROCK_MODEL_ID: {model_id!r} does not offer batch inference (model table)")


def model_input(model_id: str, text: str, max_tokens_per_review: int) -> dict[str, Any]:
    """The Anthropic Messages body for one review, from the live flow's Converse request (prompt-only)."""
    converse = build_converse_request(model_id, [text], max_tokens_per_review, prefill=True, structured=False)
    messages = [
        {"role": m["role"], "content": [{"type": "text", "text": block["text"]} for block in m["content"]]}
        for m in converse["messages"]
    ]
    return {
        "anthropic_version": ANTHROPIC_VERSION,
        "max_tokens": converse["inferenceConfig"]["maxTokens"],
        "temperature": converse["inferenceConfig"]["temperature"],
        "system": "".join(block["text"] for block in converse["system"]),
        "messages": messages,
    }


def as_converse_response(output: dict[str, Any]) -> dict[str, Any]:
    """An Anthropic Messages response in the Converse response's shape, for `read_response`."""
    content = output.get("content")
    blocks = [{"text": b.get("text", "")} for b in content if isinstance(b, dict)] if isinstance(content, list) else []
    usage = output.get("usage") if isinstance(output.get("usage"), dict) else {}
    return {
        "output": {"message": {"role": "assistant", "content": blocks}},
        "stopReason": output.get("stop_reason"),
        "usage": {"inputTokens": usage.get("input_tokens", 0), "outputTokens": usage.get("output_tokens", 0)},
    }


@dataclass(frozen=True)
class Outcome:
    """What one output line did to its review, and the tokens it used (billed even when the answer is invalid)."""

    item: EnrichedReview | DeadLetter
    input_tokens: int
    output_tokens: int


def read_output_line(review: Review, line: dict[str, Any], model_id: str, attempts: int) -> Outcome:
    """One `<input>.jsonl.out` line (`modelOutput` or `error`) -> an `EnrichedReview` or an enrich dead letter."""
    error = line.get("error")
    output = line.get("modelOutput")
    if error is not None or not isinstance(output, dict):
        code, message = "BatchRecordError", "the job's output line has neither modelOutput nor error"
        if isinstance(error, dict):
            code = str(error.get("errorCode", code))
            message = str(error.get("errorMessage", error))
        elif error is not None:
            message = str(error)
        letter = DeadLetter.for_review(review, "enrich", f"batch:{code}", f"batch record error: {message}", attempts)
        return Outcome(letter, 0, 0)
    reading = read_response([(review, attempts)], as_converse_response(output), model_id, 0.0)
    result = reading.outcomes[0]
    if isinstance(result, EnrichedReview):
        return Outcome(result, reading.input_tokens, reading.output_tokens)
    letter = DeadLetter.for_review(review, "enrich", result.error_type, result.message, attempts)
    return Outcome(letter, reading.input_tokens, reading.output_tokens)
