"""Token prices for the cost metric: the model table's price for the profile and the tier served.

The prices live in `dataflow.enrich.catalog` (one row per model family, with its sources); this module turns a
model id, the tier Bedrock says it served (`serviceTier` in the Converse response) and any
BEDROCK_PRICE_INPUT_PER_MTOK / BEDROCK_PRICE_OUTPUT_PER_MTOK override into (input, output) USD per million
tokens, and token counts into dollars.
"""

from __future__ import annotations

from dataflow.enrich.catalog import Tier, card_for, is_global

__all__ = ["Tier", "cost_usd", "is_global", "price_per_mtok", "served_tier"]


def price_per_mtok(
    model_id: str,
    input_override: float | None = None,
    output_override: float | None = None,
    tier: Tier = Tier.DEFAULT,
) -> tuple[float, float]:
    """(input, output) USD per million tokens for a model id or inference profile id, in `tier`."""
    price_in, price_out = card_for(model_id).price(model_id, tier)
    return (
        price_in if input_override is None else input_override,
        price_out if output_override is None else output_override,
    )


def served_tier(response: dict) -> Tier:
    """The tier a Converse response says served it; the default tier when it says nothing we know."""
    raw = (response.get("serviceTier") or {}).get("type") if isinstance(response.get("serviceTier"), dict) else None
    try:
        return Tier(raw) if raw else Tier.DEFAULT
    except ValueError:
        return Tier.DEFAULT


def cost_usd(input_tokens: int, output_tokens: int, price: tuple[float, float]) -> float:
    return (input_tokens * price[0] + output_tokens * price[1]) / 1_000_000
