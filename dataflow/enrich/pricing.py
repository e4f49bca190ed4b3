"""Bedrock on-demand prices, to turn token counts into an estimated cost.

USD per million tokens (input, output), us-east-1 on-demand list prices. Override with
BEDROCK_PRICE_INPUT_PER_MTOK / BEDROCK_PRICE_OUTPUT_PER_MTOK for other models, regions or discounts.
"""

from __future__ import annotations

PRICES_PER_MTOK: dict[str, tuple[float, float]] = {
    "anthropic.claude-haiku-4-5": (1.00, 5.00),
    "anthropic.claude-3-5-haiku": (0.80, 4.00),
    "anthropic.claude-3-haiku": (0.25, 1.25),
    "anthropic.claude-sonnet-4-5": (3.00, 15.00),
    "amazon.nova-micro": (0.035, 0.14),
    "amazon.nova-lite": (0.06, 0.24),
}
DEFAULT_PRICE = PRICES_PER_MTOK["anthropic.claude-haiku-4-5"]


def price_per_mtok(
    model_id: str, input_override: float | None = None, output_override: float | None = None
) -> tuple[float, float]:
    """(input, output) USD per million tokens for a model id or inference profile id."""
    base = DEFAULT_PRICE
    for prefix, price in PRICES_PER_MTOK.items():
        if prefix in model_id:
            base = price
            break
    return (
        base[0] if input_override is None else input_override,
        base[1] if output_override is None else output_override,
    )


def cost_usd(input_tokens: int, output_tokens: int, price: tuple[float, float]) -> float:
    return (input_tokens * price[0] + output_tokens * price[1]) / 1_000_000
