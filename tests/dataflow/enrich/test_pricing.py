"""Token prices for the cost metric: matched by model or inference-profile id, overridable."""

from __future__ import annotations

import pytest

from dataflow.enrich.pricing import DEFAULT_PRICE, PRICES_PER_MTOK, cost_usd, price_per_mtok


def test_inference_profile_ids_find_their_model_price() -> None:
    assert (
        price_per_mtok("us.anthropic.claude-haiku-4-5-20251001-v1:0") == PRICES_PER_MTOK["anthropic.claude-haiku-4-5"]
    )
    assert price_per_mtok("eu.amazon.nova-lite-v1:0") == PRICES_PER_MTOK["amazon.nova-lite"]
    assert price_per_mtok("anthropic.claude-3-haiku-20240307-v1:0") == (0.25, 1.25)


def test_an_unknown_model_falls_back_to_the_default_and_overrides_win() -> None:
    assert price_per_mtok("someone.else-v1") == DEFAULT_PRICE
    assert price_per_mtok("anthropic.claude-haiku-4-5", input_override=0.5) == (0.5, DEFAULT_PRICE[1])
    assert price_per_mtok("x", input_override=0.0, output_override=0.0) == (0.0, 0.0)  # 0 is a price, not unset


def test_cost_is_tokens_times_price_per_million() -> None:
    assert cost_usd(1_000_000, 0, (1.0, 5.0)) == pytest.approx(1.0)
    assert cost_usd(2_000, 400, (1.0, 5.0)) == pytest.approx(0.002 + 0.002)
