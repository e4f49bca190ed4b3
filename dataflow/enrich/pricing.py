"""Bedrock on-demand prices, to turn token counts into an estimated cost.

USD per million tokens (input, output) through the `global.` cross-region profile, which routes to any
commercial region. From the Claude 4.5 generation on (Sonnet 4.5, Haiku 4.5 and later), Bedrock prices the
geographic profiles (`us.`, `eu.`, `apac.`...: requests stay in that geography) and in-region calls 10% above
global (Anthropic's "Claude on Amazon Bedrock": "Regional endpoints include a 10% pricing premium over global
endpoints"; AWS's global cross-Region inference page: "approximately 10% savings"). Older models have one
price. Override with BEDROCK_PRICE_INPUT_PER_MTOK / BEDROCK_PRICE_OUTPUT_PER_MTOK for other models, regions
or discounts.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ModelPrice:
    input: float  # USD per million input tokens, global profile
    output: float  # USD per million output tokens, global profile
    regional_premium: float = 0.0  # added outside the global profile (geographic profiles, in-region)


PRICES: dict[str, ModelPrice] = {
    "anthropic.claude-haiku-4-5": ModelPrice(1.00, 5.00, 0.10),
    "anthropic.claude-sonnet-4-5": ModelPrice(3.00, 15.00, 0.10),
    "anthropic.claude-3-5-haiku": ModelPrice(0.80, 4.00),
    "anthropic.claude-3-haiku": ModelPrice(0.25, 1.25),
    "amazon.nova-micro": ModelPrice(0.035, 0.14),
    "amazon.nova-lite": ModelPrice(0.06, 0.24),
}
DEFAULT = PRICES["anthropic.claude-haiku-4-5"]


def is_global(model_id: str) -> bool:
    """Whether the id (or ARN) names a `global.` cross-region inference profile."""
    return model_id.rsplit("/", 1)[-1].startswith("global.")


def price_per_mtok(
    model_id: str, input_override: float | None = None, output_override: float | None = None
) -> tuple[float, float]:
    """(input, output) USD per million tokens for a model id or inference profile id."""
    price = next((p for prefix, p in PRICES.items() if prefix in model_id), DEFAULT)
    factor = 1.0 if is_global(model_id) else 1.0 + price.regional_premium
    return (
        round(price.input * factor, 6) if input_override is None else input_override,
        round(price.output * factor, 6) if output_override is None else output_override,
    )


def cost_usd(input_tokens: int, output_tokens: int, price: tuple[float, float]) -> float:
    return (input_tokens * price[0] + output_tokens * price[1]) / 1_000_000
