"""Converse `outputConfig` and `serviceTier` as Bedrock checks them, before a request costs anything.

Refusals are 400 ValidationException, as Bedrock answers: a format type other than `json_schema`, a schema that
is not a JSON object in a string, an object schema without `additionalProperties: false`, a keyword outside the
supported subset (numeric and string-length constraints, `maxItems`, `minItems` above 1), a `pattern` that uses
regex features outside it (backreferences, lookaround, word boundaries) or does not compile, a model without
structured outputs, a tier outside the enum or not offered by the model. The subset is Anthropic's "JSON Schema
limitations" for structured outputs, which Bedrock's page defers to. Bedrock's exact wording for these was
not on a page we could read; the messages follow Anthropic's structured-output errors and say what to fix.
"""

from __future__ import annotations

import re
from typing import Any

import orjson

from devstack.bedrock.errors import BedrockError
from devstack.bedrock.models import ModelSpec

TIERS = ("priority", "default", "flex", "reserved")


def _invalid(message: str) -> BedrockError:
    return BedrockError("ValidationException", message)


UNSUPPORTED = frozenset(
    {"minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "multipleOf", "minLength", "maxLength", "maxItems"}
)
# Backreferences, lookahead/lookbehind and word boundaries: outside the regex subset constrained decoding compiles.
UNSUPPORTED_REGEX = re.compile(r"\\[1-9bB]|\(\?[=!<]")


def _check_keywords(node: dict, where: str) -> None:
    for key in sorted(UNSUPPORTED & node.keys()):
        raise _invalid(f"The provided JSON schema is invalid: '{key}' is not supported (at {where}).")
    if isinstance(node.get("minItems"), int) and node["minItems"] > 1:
        raise _invalid(f"The provided JSON schema is invalid: minItems above 1 is not supported (at {where}).")
    pattern = node.get("pattern")
    if pattern is not None:
        if not isinstance(pattern, str) or UNSUPPORTED_REGEX.search(pattern):
            raise _invalid(f"The provided JSON schema is invalid: unsupported regex in 'pattern' (at {where}).")
        try:
            re.compile(pattern)
        except re.error as err:
            raise _invalid(f"The provided JSON schema is invalid: 'pattern' does not compile: {err}") from err


def _check_objects(node: Any, where: str) -> None:
    """Every object schema, at any depth, must say `additionalProperties: false` and stay in the subset."""
    if isinstance(node, dict):
        if node.get("type") == "object" and node.get("additionalProperties") is not False:
            raise _invalid(
                f"outputConfig.textFormat.structure.jsonSchema.schema: For 'object' type, 'additionalProperties' "
                f"must be explicitly set to false (at {where})"
            )
        if where.rsplit(".", 1)[-1] != "properties":  # under `properties` the keys are names, not keywords
            _check_keywords(node, where)
        for key, value in node.items():
            _check_objects(value, f"{where}.{key}")
    elif isinstance(node, list):
        for i, value in enumerate(node):
            _check_objects(value, f"{where}[{i}]")


def parse_output_config(raw: object, spec: ModelSpec) -> dict | None:
    """The JSON schema the answer must follow, or None without `outputConfig.textFormat`."""
    if raw is None:
        return None
    fmt = raw.get("textFormat") if isinstance(raw, dict) else None
    if fmt is None:
        return None
    if not isinstance(fmt, dict) or fmt.get("type") != "json_schema":
        raise _invalid("outputConfig.textFormat.type must be json_schema.")
    definition = (fmt.get("structure") or {}).get("jsonSchema") if isinstance(fmt.get("structure"), dict) else None
    if not isinstance(definition, dict) or not isinstance(definition.get("schema"), str):
        raise _invalid("outputConfig.textFormat.structure.jsonSchema.schema is required and must be a string.")
    if not spec.structured_output:
        raise _invalid(f"Structured output is not supported for model {spec.model_id}.")
    try:
        schema = orjson.loads(definition["schema"])
    except orjson.JSONDecodeError as err:
        raise _invalid(f"The provided JSON schema is invalid: {err}") from err
    if not isinstance(schema, dict) or schema.get("type") not in ("object", "array", "string", "number", "integer"):
        raise _invalid("The provided JSON schema is invalid: the root must be a schema object with a type.")
    _check_objects(schema, "$")
    return schema


def parse_service_tier(raw: object, spec: ModelSpec) -> str:
    """The tier asked for ("default" without `serviceTier`); refused when the model does not offer it."""
    if raw is None:
        return "default"
    tier = raw.get("type") if isinstance(raw, dict) else None
    if tier not in TIERS:
        raise _invalid(f"serviceTier.type must be one of: {', '.join(TIERS)}.")
    if tier not in spec.tiers:
        raise _invalid(f"The service tier {tier} is not supported for model {spec.model_id}.")
    return str(tier)
