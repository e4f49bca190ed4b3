"""The model table: what each Bedrock model family offers and costs, in one place.

Everything that depends on the model reads this table: the request path (structured output or the prompt-only
answer contract, which service tier to ask for), the cost metric (price per profile and tier served), the
lifecycle hint (the recommended replacement), and the local Bedrock server (which models accept `outputConfig`
and which tiers). A model id that matches no row gets `UNKNOWN`: the prompt-only path, the default tier, and
Haiku 4.5's prices, so an unlisted model never receives a request shape it may refuse.

Prices are USD per million tokens (input, output) for the default (Standard) tier through the `global.` profile,
or the model's only price. `regional_premium` is added through geographic profiles and in-region; `tiers` maps
each tier the model offers to its price factor. Sources are AWS's pages unless a row says otherwise; what could
not be read on an AWS page is marked `unverified` (README, "Choosing the model"; BENCHMARKS.md, "Cost").
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from types import MappingProxyType


class Tier(StrEnum):
    """Converse `serviceTier.type` values a request may ask for (`reserved` needs a reservation: not modelled)."""

    PRIORITY = "priority"
    DEFAULT = "default"
    FLEX = "flex"


class Lifecycle(StrEnum):
    ACTIVE = "ACTIVE"
    LEGACY = "LEGACY"
    EOL = "EOL"


def _tiers(**factors: float) -> Mapping[Tier, float]:
    return MappingProxyType({Tier(name): factor for name, factor in factors.items()})


DEFAULT_ONLY = _tiers(default=1.0)
# Bedrock's service-tiers page: Flex is a "discounted standard model rate", Priority "standard rate + premium";
# the factors are not on an AWS page we could read (pricing is rendered client-side): 0.5 and 1.75 are assumed.
NOVA_TIERS = _tiers(priority=1.75, default=1.0, flex=0.5)
# Batch inference (CreateModelInvocationJob) is billed at 50% of the on-demand price of the same model and profile:
# AWS "Process multiple prompts with batch inference" and the Amazon Bedrock pricing page ("50% lower price").
BATCH_FACTOR = 0.5


@dataclass(frozen=True)
class ModelCard:
    family: str  # matched as a substring of the foundation-model id (`anthropic.claude-haiku-4-5`)
    name: str
    input: float  # USD per million input tokens, default tier, global profile (or the only price)
    output: float
    regional_premium: float = 0.0  # added through geographic profiles and in-region (the Claude 4.5 generation on)
    structured_output: bool = False  # Converse `outputConfig.textFormat` json_schema (constrained decoding)
    tiers: Mapping[Tier, float] = field(default_factory=lambda: DEFAULT_ONLY)  # tier offered -> price factor
    batch: bool | None = None  # batch inference offered (None: not verified)
    lifecycle: Lifecycle = Lifecycle.ACTIVE
    eol: str = ""  # what the model card says about end of life
    replacement: str = ""  # the model id we recommend moving to, when this one is not current
    sources: tuple[str, ...] = ()

    def price(self, model_id: str, tier: Tier = Tier.DEFAULT) -> tuple[float, float]:
        """(input, output) USD per million tokens through this id's profile, in `tier` (default if not offered)."""
        factor = (1.0 if is_global(model_id) else 1.0 + self.regional_premium) * self.tiers.get(tier, 1.0)
        return round(self.input * factor, 6), round(self.output * factor, 6)

    def batch_price(self, model_id: str) -> tuple[float, float]:
        """(input, output) USD per million tokens in a batch inference job: BATCH_FACTOR of the default tier."""
        price_in, price_out = self.price(model_id)
        return round(price_in * BATCH_FACTOR, 6), round(price_out * BATCH_FACTOR, 6)


HAIKU_45 = "us.anthropic.claude-haiku-4-5-20251001-v1:0"
HAIKU_55 = "us.anthropic.claude-haiku-5-5"  # id as third-party SDKs spell it: unverified on AWS's model card

CARDS: tuple[ModelCard, ...] = (
    ModelCard(
        "anthropic.claude-haiku-5-5",
        "Claude Haiku 5.5",
        0.10,
        0.50,
        0.10,
        structured_output=False,  # not in AWS's structured-output list we read; SDKs use a JSON tool on Bedrock
        eol="no sooner than 2027-10-07",
        sources=(
            "AWS model card 'Claude Haiku 5.5' (launch 2026-10-07, Active, EOL no sooner than 2027-10-07, "
            "adaptive thinking on by default)",
            "price: Anthropic 'Claude Haiku 5.5' overview, from $0.10/$0.50 (unverified on AWS); tokenizer ~30% "
            "more tokens than Haiku 4.5",
        ),
    ),
    ModelCard(
        "anthropic.claude-haiku-4-5",
        "Claude Haiku 4.5",
        1.00,
        5.00,
        0.10,
        structured_output=True,
        batch=True,
        eol="no sooner than 2026-10-01",
        replacement=HAIKU_55,
        sources=(
            "AWS model card 'Claude Haiku 4.5' (prompt caching: at least 4,096 tokens per checkpoint, so our ~250-token"
            " constant prefix cannot be cached; BENCHMARKS.md 'Cost')",
            "AWS 'Get validated JSON results from models' (structured outputs: Haiku 4.5, Sonnet 4.5, Opus 4.5/4.6)",
            "Anthropic 'Claude on Amazon Bedrock': regional endpoints +10% over global",
        ),
    ),
    ModelCard("anthropic.claude-sonnet-4-5", "Claude Sonnet 4.5", 3.00, 15.00, 0.10, structured_output=True),
    ModelCard("anthropic.claude-opus-4-5", "Claude Opus 4.5", 5.00, 25.00, 0.10, structured_output=True),
    ModelCard("anthropic.claude-opus-4-6", "Claude Opus 4.6", 5.00, 25.00, 0.10, structured_output=True),
    ModelCard(
        "anthropic.claude-3-5-haiku",
        "Claude 3.5 Haiku",
        0.80,
        4.00,
        lifecycle=Lifecycle.EOL,
        eol="2026-06-19 (AWS model card)",
        replacement=HAIKU_45,
    ),
    ModelCard(
        "anthropic.claude-3-haiku",
        "Claude 3 Haiku (the reference design's)",
        0.25,
        1.25,
        lifecycle=Lifecycle.EOL,
        eol="2026-09-10 in most regions (AWS model card)",
        replacement=HAIKU_45,
    ),
    ModelCard("amazon.nova-micro", "Amazon Nova Micro", 0.035, 0.14, tiers=NOVA_TIERS, batch=True),
    ModelCard("amazon.nova-lite", "Amazon Nova Lite", 0.06, 0.24, tiers=NOVA_TIERS, batch=True),
    ModelCard(
        "amazon.nova-2-lite",
        "Amazon Nova 2 Lite",
        0.30,
        2.50,
        tiers=NOVA_TIERS,
        sources=("prices unverified on an AWS page",),
    ),
)
UNKNOWN = ModelCard("", "unknown model (prompt-only path)", 1.00, 5.00, 0.10)
DEFAULT_CARD = next(c for c in CARDS if c.family == "anthropic.claude-haiku-4-5")


def is_global(model_id: str) -> bool:
    """Whether the id (or ARN) names a `global.` cross-region inference profile."""
    return model_id.rsplit("/", 1)[-1].startswith("global.")


def card_for(model_id: str) -> ModelCard:
    """The row for a model id, an inference profile id or either's ARN; `UNKNOWN` when none matches.

    Rows are tried in order and `nova-2-lite` is not a substring of `nova-lite`, so the first match is the model.
    """
    return next((card for card in CARDS if card.family in model_id), UNKNOWN)


def tier_to_send(model_id: str, wanted: Tier) -> Tier:
    """The tier to ask for: the wanted one if the model offers it, else the default (which every model has)."""
    return wanted if wanted in card_for(model_id).tiers else Tier.DEFAULT
