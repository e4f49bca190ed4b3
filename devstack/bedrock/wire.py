"""Bedrock-runtime wire shapes: Converse and InvokeModel (Anthropic messages) bodies in, responses and errors out.

Parsing is as strict as Bedrock where a client can get it wrong: roles must alternate starting with the
user, text blocks must not be blank, a prefilled assistant turn must not end in whitespace, InvokeModel needs
`anthropic_version` and `max_tokens`, and `maxTokens` may not exceed the model's output limit. Each refusal
is a 400 ValidationException with Bedrock's wording.
"""

from __future__ import annotations

import uuid

import orjson
from aiohttp import web

from devstack.bedrock.backends import Message, ModelRequest, ModelResult
from devstack.bedrock.errors import BedrockError
from devstack.bedrock.models import ModelSpec
from devstack.bedrock.structured import parse_output_config, parse_service_tier

CONVERSE_ALTERNATE = (
    "A conversation must alternate between user and assistant roles. Make sure the conversation alternates "
    "between user and assistant roles and try again."
)
CONVERSE_START_USER = (
    "A conversation must start with a user message. Try again with a conversation that starts with a user message."
)


def _invalid(message: str) -> BedrockError:
    return BedrockError("ValidationException", message)


def json_body(raw: bytes) -> dict:
    try:
        body = orjson.loads(raw) if raw else None
    except orjson.JSONDecodeError as err:
        raise _invalid(f"Malformed input request: {err}") from err
    if not isinstance(body, dict):
        raise _invalid("Malformed input request, please reformat your input and try again.")
    return body


def _blocks_text(content: object, *, anthropic: bool, where: str) -> str:
    """Text of a message's content: Converse `[{"text"}]`, Anthropic `str | [{"type": "text", "text"}]`."""
    if anthropic and isinstance(content, str):
        return content
    if not isinstance(content, list):
        raise _invalid("Message content must be a list of content blocks.")
    if not content and not anthropic:
        raise _invalid(
            f"The content field in the Message object at {where} is empty. Add a ContentBlock object to the "
            "content field and try again."
        )
    parts = []
    for i, block in enumerate(content):
        if not isinstance(block, dict):
            raise _invalid("A content block must be an object.")
        text = block.get("text")
        if isinstance(text, str) and (not anthropic or block.get("type", "text") == "text"):
            if not anthropic and not text.strip():
                raise _invalid(
                    f"The text field in the ContentBlock object at {where}.content.{i} is blank. Add text to the "
                    "text field, and try again."
                )
            parts.append(text)
    return "".join(parts)


def _messages(raw: object, *, anthropic: bool) -> tuple[Message, ...]:
    if not isinstance(raw, list) or not raw:
        raise _invalid("The messages field is required and must not be empty.")
    out: list[Message] = []
    for i, item in enumerate(raw):
        if not isinstance(item, dict) or item.get("role") not in ("user", "assistant"):
            raise _invalid("Each message needs a role of 'user' or 'assistant'.")
        role = item["role"]
        if out and out[-1].role == role:
            raise _invalid(
                f'messages: roles must alternate between "user" and "assistant", but found multiple "{role}" roles '
                "in a row"
                if anthropic
                else CONVERSE_ALTERNATE
            )
        out.append(Message(role, _blocks_text(item.get("content"), anthropic=anthropic, where=f"messages.{i}")))
    if out[-1].role == "assistant" and out[-1].text != out[-1].text.rstrip():
        raise _invalid("messages: final assistant content cannot end with trailing whitespace")
    if out[0].role != "user":
        raise _invalid('messages: first message must use the "user" role' if anthropic else CONVERSE_START_USER)
    return tuple(out)


def _max_tokens(value: object, spec: ModelSpec, field_name: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise _invalid(f"{field_name} must be a positive integer.")
    if value > spec.max_output_tokens:
        limit = spec.max_output_tokens
        raise _invalid(
            f"The maximum tokens you requested exceeds the model limit of {limit}. Try again with a maximum tokens "
            f"value that is lower than {limit}."
        )
    return value


def _temperature(value: object) -> float:
    if value is None:
        return 1.0
    if not isinstance(value, int | float) or not 0.0 <= float(value) <= 1.0:
        raise _invalid("temperature must be between 0 and 1.")
    return float(value)


def parse_converse(model_id: str, body: dict, spec: ModelSpec) -> ModelRequest:
    system_blocks = body.get("system") or []
    config = body.get("inferenceConfig") or {}
    if not isinstance(config, dict):
        raise _invalid("inferenceConfig must be an object.")
    max_tokens = config.get("maxTokens")  # optional in Converse: the model's own limit
    return ModelRequest(
        model_id=model_id,
        system="\n".join(b.get("text", "") for b in system_blocks if isinstance(b, dict)),
        messages=_messages(body.get("messages"), anthropic=False),
        max_tokens=_max_tokens(spec.max_output_tokens if max_tokens is None else max_tokens, spec, "maxTokens"),
        temperature=_temperature(config.get("temperature")),
        schema=parse_output_config(body.get("outputConfig"), spec),
        service_tier=parse_service_tier(body.get("serviceTier"), spec),
    )


def parse_invoke(model_id: str, body: dict, spec: ModelSpec) -> ModelRequest:
    for key in ("anthropic_version", "max_tokens"):
        if key not in body:
            raise _invalid(
                f"Malformed input request: #: required key [{key}] not found, please reformat your input and try again."
            )
    system = body.get("system") or ""
    return ModelRequest(
        model_id=model_id,
        system=system if isinstance(system, str) else _blocks_text(system, anthropic=True, where="system"),
        messages=_messages(body.get("messages"), anthropic=True),
        max_tokens=_max_tokens(body.get("max_tokens"), spec, "max_tokens"),
        temperature=_temperature(body.get("temperature")),
    )


def check_context(input_tokens: int, max_tokens: int, context_tokens: int) -> None:
    """Bedrock's refusal of a request that does not fit the model's context window."""
    if input_tokens > context_tokens:
        raise _invalid("Input is too long for requested model.")
    if input_tokens + max_tokens > context_tokens:
        raise _invalid(
            f"input length and `max_tokens` exceed context limit: {input_tokens} + {max_tokens} > {context_tokens}, "
            "decrease input length or `max_tokens` and try again"
        )


def converse_body(result: ModelResult, latency_ms: int, service_tier: str = "default") -> dict:
    """The Converse response body (also a Converse batch job's `modelOutput`)."""
    return {
        "output": {"message": {"role": "assistant", "content": [{"text": result.text}]}},
        "stopReason": result.stop_reason,
        "usage": {
            "inputTokens": result.input_tokens,
            "outputTokens": result.output_tokens,
            "totalTokens": result.input_tokens + result.output_tokens,
        },
        "metrics": {"latencyMs": latency_ms},
        "serviceTier": {"type": service_tier},  # the tier that served it
    }


def converse_response(result: ModelResult, latency_ms: int, service_tier: str = "default") -> web.Response:
    return web.Response(
        body=orjson.dumps(converse_body(result, latency_ms, service_tier)), content_type="application/json"
    )


def invoke_body(request: ModelRequest, result: ModelResult) -> dict:
    """The Anthropic Messages response body of InvokeModel (also an InvokeModel batch job's `modelOutput`)."""
    return {
        "id": "msg_bdrk_" + uuid.uuid4().hex[:24],
        "type": "message",
        "role": "assistant",
        "model": request.model_id,
        "content": [{"type": "text", "text": result.text}],
        "stop_reason": result.stop_reason,
        "stop_sequence": None,
        "usage": {"input_tokens": result.input_tokens, "output_tokens": result.output_tokens},
    }


def invoke_response(request: ModelRequest, result: ModelResult, latency_ms: int) -> web.Response:
    headers = {
        "X-Amzn-Bedrock-Input-Token-Count": str(result.input_tokens),
        "X-Amzn-Bedrock-Output-Token-Count": str(result.output_tokens),
        "X-Amzn-Bedrock-Invocation-Latency": str(latency_ms),
    }
    body = orjson.dumps(invoke_body(request, result))
    return web.Response(body=body, content_type="application/json", headers=headers)


def error_response(err: BedrockError, request_id: str) -> web.Response:
    """restJson1 error: the code in `x-amzn-ErrorType` (what botocore reads first), the text in the body."""
    body = orjson.dumps({"message": err.message})
    return web.Response(status=err.status, body=body, content_type="application/json", headers=err.headers(request_id))
