"""Which foundation model a configured id names (the start-up lifecycle check asks Bedrock about that one)."""

from __future__ import annotations

import pytest

from dataflow.enrich.lifecycle import foundation_model_id

BASE = "anthropic.claude-haiku-4-5-20251001-v1:0"


@pytest.mark.parametrize(
    "model_id,expected",
    [
        (BASE, BASE),
        (f"us.{BASE}", BASE),
        (f"global.{BASE}", BASE),
        (f"eu.{BASE}", BASE),
        (f"us-gov.{BASE}", BASE),
        (f"apac.{BASE}", BASE),
        (f"arn:aws:bedrock:us-east-1::foundation-model/{BASE}", BASE),
        (f"arn:aws:bedrock:us-east-1:123456789012:inference-profile/us.{BASE}", BASE),
        ("arn:aws:bedrock:us-east-1:123456789012:application-inference-profile/abc123", None),
    ],
)
def test_the_foundation_model_behind_an_id(model_id: str, expected: str | None) -> None:
    assert foundation_model_id(model_id) == expected
