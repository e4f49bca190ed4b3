"""A review as an Anthropic Messages body, and an output line read through the live flow's validation."""

from __future__ import annotations

import orjson
import pytest

from dataflow.backfill.requests import UnsupportedModel, check_model, model_input, read_output_line
from dataflow.enrich.prompt import SYSTEM_PROMPT
from dataflow.records import DeadLetter, EnrichedReview, Review

MODEL = "us.anthropic.claude-haiku-4-5-20251001-v1:0"
REVIEW = Review("r-1", "u-1", "2024-01-01T00:00:00.000Z", "Great <b>phone</b>", "archive", "1", 5, raw=b"{}")


def answer(text: str, stop: str = "end_turn") -> dict:
    return {
        "recordId": "r-1",
        "modelInput": {},
        "modelOutput": {
            "type": "message",
            "role": "assistant",
            "content": [{"type": "text", "text": text}],
            "stop_reason": stop,
            "usage": {"input_tokens": 300, "output_tokens": 20},
        },
    }


def test_model_input_is_the_live_prompt_as_an_anthropic_body() -> None:
    body = model_input(MODEL, REVIEW.text, 120)
    assert body["anthropic_version"] == "bedrock-2023-05-31"
    assert body["system"] == SYSTEM_PROMPT  # batch takes no structured output: the prompt-only contract
    assert body["max_tokens"] == 24 + 120 and body["temperature"] == 0.0
    roles = [m["role"] for m in body["messages"]]
    assert roles == ["user", "assistant", "user", "assistant"]  # worked example, the review, the `{` prefill
    assert body["messages"][-1]["content"] == [{"type": "text", "text": "{"}]
    assert "Great &lt;b&gt;phone&lt;/b&gt;" in body["messages"][2]["content"][0]["text"]
    assert orjson.loads(orjson.dumps(body)) == body


def test_a_valid_answer_becomes_the_document_with_its_tokens() -> None:
    text = '"results": [{"id": "1", "summary": "A great phone.", "sentiment": "Positive"}]}'
    outcome = read_output_line(REVIEW, answer(text), MODEL, 1)
    assert isinstance(outcome.item, EnrichedReview)
    assert (outcome.item.sentiment, outcome.item.summary) == ("positive", "A great phone.")
    assert (outcome.input_tokens, outcome.output_tokens) == (300, 20)


@pytest.mark.parametrize(
    ("line", "error_type"),
    [
        ({"recordId": "r-1", "error": {"errorCode": 400, "errorMessage": "bad request"}}, "batch:400"),
        ({"recordId": "r-1"}, "batch:BatchRecordError"),
        (answer('"results": [{"id": "1", "summary": "Good. Very good.", "sentiment": "positive"}]}'),
         "invalid_answer:multi_sentence"),
        (answer('"results": [{"id": "1", "summary": "Meh.", "sentiment": "neutral"}]}'),
         "invalid_answer:bad_sentiment"),
        (answer('"results": [{"id": "1", "summ', stop="max_tokens"), "invalid_answer:truncated"),
    ],
)  # fmt: skip
def test_errors_and_invalid_answers_become_enrich_dead_letters(line: dict, error_type: str) -> None:
    outcome = read_output_line(REVIEW, line, MODEL, 2)
    assert isinstance(outcome.item, DeadLetter)
    assert (outcome.item.stage, outcome.item.error_type, outcome.item.doc_id) == ("enrich", error_type, "r-1")
    assert outcome.item.attempts == 2


def test_a_model_without_an_anthropic_body_stops_the_backfill_naming_the_setting() -> None:
    with pytest.raises(UnsupportedModel, match="BEDROCK_MODEL_ID"):
        check_model("amazon.nova-lite-v1:0")
    check_model(MODEL)
