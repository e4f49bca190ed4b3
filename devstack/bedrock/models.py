"""The model ids the server answers to, and each model's limits, as Bedrock enforces them.

An id is a foundation-model id (`anthropic.claude-...`), a cross-region inference profile (`us.`, `eu.`,
`apac.` or `global.` + a foundation-model id) or the ARN of either. Anything else is unknown: 404
ResourceNotFoundException, which a client must treat as a configuration error, never as a bad review.
Newer Claude models are served only through inference profiles: their bare id (or foundation-model ARN)
gets Bedrock's 400 "on-demand throughput isn't supported" ValidationException.

`output_burndown` is the tokens-per-minute quota each output token burns, from Bedrock's "How tokens are
counted" page (quotas-token-burndown): 5 for Claude Opus 4 and 4.1, Sonnet 4 and 4.5, 3.7 Sonnet and Haiku 4.5,
1 for the rest.
"""

from __future__ import annotations

from dataclasses import dataclass

from dataflow.enrich.catalog import card_for
from devstack.bedrock import DEFAULT_MODEL_ID
from devstack.bedrock.errors import BedrockError


@dataclass(frozen=True)
class ModelSpec:
    model_id: str  # the foundation-model id
    context_tokens: int = 200_000
    max_output_tokens: int = 64_000
    on_demand: bool = False  # the bare id may be invoked (older models); else only through a profile
    output_burndown: int = 1  # quota tokens one output token burns (Bedrock's "burndown rate")

    # What the model accepts beyond plain Converse comes from the one model table (dataflow/enrich/catalog.py).
    @property
    def structured_output(self) -> bool:
        return card_for(self.model_id).structured_output

    @property
    def tiers(self) -> tuple[str, ...]:
        return tuple(tier.value for tier in card_for(self.model_id).tiers)


FOUNDATION_MODELS: dict[str, ModelSpec] = {
    spec.model_id: spec
    for spec in (
        ModelSpec("anthropic.claude-3-haiku-20240307-v1:0", max_output_tokens=4_096, on_demand=True),
        ModelSpec("anthropic.claude-3-5-haiku-20241022-v1:0", max_output_tokens=8_192, on_demand=True),
        ModelSpec("anthropic.claude-haiku-4-5-20251001-v1:0", output_burndown=5),
        ModelSpec("anthropic.claude-3-sonnet-20240229-v1:0", max_output_tokens=4_096, on_demand=True),
        ModelSpec("anthropic.claude-3-5-sonnet-20240620-v1:0", max_output_tokens=8_192, on_demand=True),
        ModelSpec("anthropic.claude-3-5-sonnet-20241022-v2:0", max_output_tokens=8_192, on_demand=True),
        ModelSpec("anthropic.claude-3-7-sonnet-20250219-v1:0", output_burndown=5),
        ModelSpec("anthropic.claude-sonnet-4-20250514-v1:0", output_burndown=5),
        ModelSpec("anthropic.claude-sonnet-4-5-20250929-v1:0", output_burndown=5),
        ModelSpec("anthropic.claude-opus-4-20250514-v1:0", output_burndown=5),
        ModelSpec("anthropic.claude-opus-4-1-20250805-v1:0", output_burndown=5),
        ModelSpec("anthropic.claude-haiku-5-5", context_tokens=1_000_000, max_output_tokens=128_000, output_burndown=5),
        ModelSpec("amazon.nova-micro-v1:0", context_tokens=128_000, max_output_tokens=10_000, on_demand=True),
        ModelSpec("amazon.nova-lite-v1:0", context_tokens=300_000, max_output_tokens=10_000, on_demand=True),
    )
}
PROFILE_PREFIXES = ("us.", "eu.", "apac.", "global.")
assert DEFAULT_MODEL_ID.split(".", 1)[1] in FOUNDATION_MODELS


def _strip_arn(model_id: str) -> tuple[str, str]:
    """(kind, id) of an id or ARN; kind is "foundation-model", "inference-profile" or "" for a plain id."""
    if model_id.startswith("arn:"):
        parts = model_id.split(":", 5)
        if len(parts) == 6 and parts[2] == "bedrock" and "/" in parts[5]:
            kind, _, ident = parts[5].partition("/")
            return kind, ident
        return "arn", model_id
    return "", model_id


def resolve_model(model_id: str, extra_ids: tuple[str, ...] = ()) -> ModelSpec:
    """The spec of the model `model_id` names, or the BedrockError Bedrock answers for it."""
    if model_id in extra_ids:
        return ModelSpec(model_id, on_demand=True)
    kind, ident = _strip_arn(model_id)
    if kind in ("", "inference-profile") and ident in extra_ids:
        return ModelSpec(ident, on_demand=True)
    profile = next((p for p in PROFILE_PREFIXES if ident.startswith(p)), None)
    base = ident[len(profile) :] if profile else ident
    spec = FOUNDATION_MODELS.get(base)
    valid_kind = kind in ("", "inference-profile" if profile else "foundation-model")
    if spec is None or not valid_kind:
        raise BedrockError("ResourceNotFoundException")
    if profile is None and not spec.on_demand:
        raise BedrockError(
            "ValidationException",
            f"Invocation of model ID {base} with on-demand throughput isn't supported. Retry your request with "
            "the ID or ARN of an inference profile that contains this model.",
        )
    return spec
