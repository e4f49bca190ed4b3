"""The model table's routing (structured output or the prompt-only path, tiers) and the cost arithmetic."""

from __future__ import annotations

import orjson
import pytest

from dataflow.enrich.bedrock import request_shape
from dataflow.enrich.catalog import CARDS, UNKNOWN, Tier, card_for, tier_to_send
from dataflow.enrich.lifecycle import recommended_replacement
from dataflow.enrich.pricing import cost_usd, price_per_mtok, served_tier
from dataflow.enrich.prompt import EXAMPLE_ANSWER, PREFILL, build_converse_request, parse_answer
from dataflow.settings import load_settings

HAIKU = "anthropic.claude-haiku-4-5-20251001-v1:0"


@pytest.mark.parametrize(
    "model_id,structured",
    [
        (f"us.{HAIKU}", True),
        (f"global.{HAIKU}", True),
        (f"arn:aws:bedrock:us-east-1:123456789012:inference-profile/eu.{HAIKU}", True),
        ("us.anthropic.claude-sonnet-4-5-20250929-v1:0", True),
        ("anthropic.claude-3-haiku-20240307-v1:0", False),
        ("us.anthropic.claude-haiku-5-5", False),  # not verified on AWS's structured-output page
        ("amazon.nova-micro-v1:0", False),
        ("someone.else-v1", False),  # unknown: the safe path
    ],
)
def test_which_models_get_structured_output(model_id: str, structured: bool) -> None:
    settings = load_settings({"BEDROCK_MODEL_ID": model_id})
    assert request_shape(settings) == (structured, Tier.DEFAULT)
    assert request_shape(load_settings({"BEDROCK_MODEL_ID": model_id, "BEDROCK_STRUCTURED_OUTPUT": "off"}))[0] is False


def test_unknown_and_longer_names_match_the_right_row() -> None:
    assert card_for("someone.else-v1") is UNKNOWN
    assert card_for("us.amazon.nova-2-lite-v1:0").name == "Amazon Nova 2 Lite"
    assert card_for("amazon.nova-lite-v1:0").name == "Amazon Nova Lite"
    assert len({c.family for c in CARDS}) == len(CARDS)


def test_a_tier_is_sent_only_where_the_model_offers_it() -> None:
    assert tier_to_send(f"us.{HAIKU}", Tier.FLEX) is Tier.DEFAULT
    assert tier_to_send("amazon.nova-micro-v1:0", Tier.FLEX) is Tier.FLEX
    assert tier_to_send("someone.else-v1", Tier.PRIORITY) is Tier.DEFAULT
    flex = load_settings({"BEDROCK_MODEL_ID": "amazon.nova-micro-v1:0", "BEDROCK_SERVICE_TIER": "flex"})
    assert request_shape(flex) == (False, Tier.FLEX)


def test_prices_per_profile_and_tier() -> None:
    assert price_per_mtok(f"global.{HAIKU}") == (1.00, 5.00)
    assert price_per_mtok(f"us.{HAIKU}") == (1.10, 5.50)
    assert price_per_mtok(f"us.{HAIKU}", tier=Tier.FLEX) == (1.10, 5.50)  # not offered: the default price
    assert price_per_mtok("amazon.nova-micro-v1:0", tier=Tier.FLEX) == (0.0175, 0.07)
    assert price_per_mtok("amazon.nova-micro-v1:0", tier=Tier.PRIORITY) == (0.06125, 0.245)
    assert price_per_mtok("amazon.nova-micro-v1:0", 1.0, tier=Tier.FLEX) == (1.0, 0.07)  # the override wins
    # 8 reviews of 300 input tokens and 20 output each, at the default tier through us.: (2400*1.1 + 160*5.5)/1e6
    assert cost_usd(2400, 160, price_per_mtok(f"us.{HAIKU}")) == pytest.approx(0.00352)


def test_the_cost_uses_the_tier_the_response_says_served_it() -> None:
    assert served_tier({"serviceTier": {"type": "flex"}}) is Tier.FLEX
    assert served_tier({}) is Tier.DEFAULT
    assert served_tier({"serviceTier": {"type": "reserved"}}) is Tier.DEFAULT  # not modelled: the default price
    assert served_tier({"serviceTier": "flex"}) is Tier.DEFAULT


def test_structured_request_shape() -> None:
    request = build_converse_request(f"us.{HAIKU}", ["good", "bad"], 100, structured=True, service_tier="flex")
    assert [m["role"] for m in request["messages"]] == ["user"]  # no worked example, no prefill
    assert EXAMPLE_ANSWER not in orjson.dumps(request).decode() and "JSON" not in request["system"][0]["text"]
    assert request["serviceTier"] == {"type": "flex"}
    fmt = request["outputConfig"]["textFormat"]
    assert fmt["type"] == "json_schema" and fmt["structure"]["jsonSchema"]["name"] == "review_answers"
    schema = orjson.loads(fmt["structure"]["jsonSchema"]["schema"])  # a JSON string, as botocore's model says
    assert schema["required"] == ["1", "2"] and schema["additionalProperties"] is False
    assert schema["$defs"]["entry"]["additionalProperties"] is False and schema["properties"]["2"]["$ref"]
    plain = build_converse_request(f"us.{HAIKU}", ["good"], 100)
    assert "outputConfig" not in plain and "serviceTier" not in plain
    assert plain["messages"][-1] == {"role": "assistant", "content": [{"text": PREFILL}]}


def test_the_keyed_answer_is_validated_like_the_other() -> None:
    text = orjson.dumps(
        {
            "1": {"summary": "Great shoes.", "sentiment": "positive"},
            "2": {"summary": "Bad. Awful.", "sentiment": "negative"},
        }
    ).decode()
    out = parse_answer(text, 2, prefilled=False)
    assert out[1].sentiment == "positive"  # type: ignore[union-attr]
    assert getattr(out[2], "kind", None) == "multi_sentence"  # semantic checks stay


def test_the_lifecycle_hint_names_a_replacement() -> None:
    assert recommended_replacement(f"us.{HAIKU}") == "us.anthropic.claude-haiku-5-5"
    assert recommended_replacement("anthropic.claude-3-haiku-20240307-v1:0") == f"us.{HAIKU}"
