"""Token prices for the cost metric: matched by model or inference-profile id, overridable."""

from __future__ import annotations

import pytest

from dataflow.enrich.pricing import cost_usd, price_per_mtok

HAIKU = "anthropic.claude-haiku-4-5-20251001-v1:0"


def test_the_global_profile_is_the_base_price_and_regional_ones_cost_ten_percent_more() -> None:
    assert price_per_mtok(f"global.{HAIKU}") == (1.00, 5.00)
    assert price_per_mtok(f"arn:aws:bedrock:us-east-1:123456789012:inference-profile/global.{HAIKU}") == (1.0, 5.0)
    for regional in (f"us.{HAIKU}", f"eu.{HAIKU}", f"apac.{HAIKU}", HAIKU):
        assert price_per_mtok(regional) == (1.10, 5.50), regional
    assert price_per_mtok("us.anthropic.claude-sonnet-4-5-20250929-v1:0") == (3.30, 16.50)


def test_models_before_the_4_5_generation_have_one_price() -> None:
    assert price_per_mtok("anthropic.claude-3-haiku-20240307-v1:0") == (0.25, 1.25)
    assert price_per_mtok("us.anthropic.claude-3-5-haiku-20241022-v1:0") == (0.80, 4.00)
    assert price_per_mtok("eu.amazon.nova-lite-v1:0") == (0.06, 0.24)


def test_an_unknown_model_falls_back_to_the_default_and_overrides_win() -> None:
    assert price_per_mtok("someone.else-v1") == (1.10, 5.50)  # Haiku 4.5's, not through the global profile
    assert price_per_mtok(f"us.{HAIKU}", input_override=0.5) == (0.5, 5.50)
    assert price_per_mtok("x", input_override=0.0, output_override=0.0) == (0.0, 0.0)  # 0 is a price, not unset


def test_cost_is_tokens_times_price_per_million() -> None:
    assert cost_usd(1_000_000, 0, (1.0, 5.0)) == pytest.approx(1.0)
    assert cost_usd(2_000, 400, (1.0, 5.0)) == pytest.approx(0.002 + 0.002)
