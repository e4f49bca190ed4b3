"""The aiohttp application: Bedrock-runtime routes, their wire shapes, and the admin API.

Request path for `/model/{modelId}/converse` and `/invoke`: parse (400 ValidationException on a bad body),
admit against the quota (429 when over), draw injected faults, wait for a backend slot, generate, add the
simulated latency, answer. SigV4 headers are accepted and ignored.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from urllib.parse import unquote

import orjson
from aiohttp import web

from devstack.bedrock.backends import Backend, Message, ModelRequest, ModelResult, estimate_tokens
from devstack.bedrock.errors import TOO_MANY_REQUESTS, TOO_MANY_TOKENS, BedrockError
from devstack.bedrock.faults import Faults, Knobs
from devstack.bedrock.quota import Quota, QuotaDenied
from devstack.bedrock.stats import Stats

log = logging.getLogger(__name__)

MAX_BODY_BYTES = 20 * 1024 * 1024


@dataclass
class ServerState:
    """Everything the handlers share: backend, knobs, quota, stats."""

    backend: Backend
    knobs: Knobs = field(default_factory=Knobs)
    stats: Stats = field(default_factory=Stats)
    quota: Quota = field(default_factory=Quota)
    faults: Faults | None = None
    _slots: asyncio.Semaphore | None = None
    _slots_size: int = 0

    def __post_init__(self) -> None:
        self.faults = Faults(self.knobs)
        self.apply(self.knobs)

    def apply(self, knobs: Knobs) -> None:
        self.knobs = knobs
        self.quota.rpm, self.quota.tpm = knobs.rpm, knobs.tpm
        assert self.faults is not None
        self.faults.set(knobs)
        if knobs.max_concurrency != self._slots_size:
            # Requests already waiting keep the old semaphore; new ones queue on the new one.
            self._slots = asyncio.Semaphore(knobs.max_concurrency) if knobs.max_concurrency else None
            self._slots_size = knobs.max_concurrency


# ---------------------------------------------------------------------------------------------- parsing


def _json_body(raw: bytes) -> dict:
    try:
        body = orjson.loads(raw) if raw else None
    except orjson.JSONDecodeError as err:
        raise BedrockError("ValidationException", f"Malformed input request: {err}") from err
    if not isinstance(body, dict):
        raise BedrockError("ValidationException", "Malformed input request, please reformat your input and try again.")
    return body


def _blocks_text(content: object, *, anthropic: bool) -> str:
    """Text of a message's content: Converse `[{"text"}]`, Anthropic `str | [{"type": "text", "text"}]`."""
    if anthropic and isinstance(content, str):
        return content
    if not isinstance(content, list):
        raise BedrockError("ValidationException", "Message content must be a list of content blocks.")
    parts = []
    for block in content:
        if not isinstance(block, dict):
            raise BedrockError("ValidationException", "A content block must be an object.")
        text = block.get("text")
        if isinstance(text, str) and (not anthropic or block.get("type", "text") == "text"):
            parts.append(text)
    return "".join(parts)


def _messages(raw: object, *, anthropic: bool) -> tuple[Message, ...]:
    if not isinstance(raw, list) or not raw:
        raise BedrockError("ValidationException", "The messages field is required and must not be empty.")
    out = []
    for item in raw:
        if not isinstance(item, dict) or item.get("role") not in ("user", "assistant"):
            raise BedrockError("ValidationException", "Each message needs a role of 'user' or 'assistant'.")
        out.append(Message(item["role"], _blocks_text(item.get("content"), anthropic=anthropic)))
    if out[0].role != "user":
        raise BedrockError("ValidationException", "A conversation must start with a user message.")
    return tuple(out)


def _max_tokens(value: object, default: int | None, field_name: str) -> int:
    if value is None and default is not None:
        return default
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise BedrockError("ValidationException", f"{field_name} must be a positive integer.")
    return value


def _temperature(value: object) -> float:
    if value is None:
        return 1.0
    if not isinstance(value, int | float) or not 0.0 <= float(value) <= 1.0:
        raise BedrockError("ValidationException", "temperature must be between 0 and 1.")
    return float(value)


def parse_converse(model_id: str, body: dict) -> ModelRequest:
    system_blocks = body.get("system") or []
    config = body.get("inferenceConfig") or {}
    if not isinstance(config, dict):
        raise BedrockError("ValidationException", "inferenceConfig must be an object.")
    return ModelRequest(
        model_id=model_id,
        system="\n".join(b.get("text", "") for b in system_blocks if isinstance(b, dict)),
        messages=_messages(body.get("messages"), anthropic=False),
        max_tokens=_max_tokens(config.get("maxTokens"), 4096, "inferenceConfig.maxTokens"),
        temperature=_temperature(config.get("temperature")),
    )


def parse_invoke(model_id: str, body: dict) -> ModelRequest:
    if "anthropic_version" not in body:
        raise BedrockError("ValidationException", "Malformed input request: required key [anthropic_version] not found")
    system = body.get("system") or ""
    return ModelRequest(
        model_id=model_id,
        system=system if isinstance(system, str) else _blocks_text(system, anthropic=True),
        messages=_messages(body.get("messages"), anthropic=True),
        max_tokens=_max_tokens(body.get("max_tokens"), None, "max_tokens"),
        temperature=_temperature(body.get("temperature")),
    )


# ---------------------------------------------------------------------------------------------- responses


def converse_response(result: ModelResult, latency_ms: int) -> web.Response:
    body = {
        "output": {"message": {"role": "assistant", "content": [{"text": result.text}]}},
        "stopReason": result.stop_reason,
        "usage": {
            "inputTokens": result.input_tokens,
            "outputTokens": result.output_tokens,
            "totalTokens": result.input_tokens + result.output_tokens,
        },
        "metrics": {"latencyMs": latency_ms},
    }
    return web.Response(body=orjson.dumps(body), content_type="application/json")


def invoke_response(request: ModelRequest, result: ModelResult, latency_ms: int) -> web.Response:
    body = {
        "id": "msg_bdrk_" + uuid.uuid4().hex[:24],
        "type": "message",
        "role": "assistant",
        "model": request.model_id,
        "content": [{"type": "text", "text": result.text}],
        "stop_reason": result.stop_reason,
        "stop_sequence": None,
        "usage": {"input_tokens": result.input_tokens, "output_tokens": result.output_tokens},
    }
    headers = {
        "X-Amzn-Bedrock-Input-Token-Count": str(result.input_tokens),
        "X-Amzn-Bedrock-Output-Token-Count": str(result.output_tokens),
        "X-Amzn-Bedrock-Invocation-Latency": str(latency_ms),
    }
    return web.Response(body=orjson.dumps(body), content_type="application/json", headers=headers)


# ---------------------------------------------------------------------------------------------- handling


async def _run_model(state: ServerState, request: ModelRequest) -> ModelResult:
    """Quota, faults, queueing, generation and latency for one parsed request."""
    assert state.faults is not None
    try:
        reservation = state.quota.reserve(estimate_tokens(request.all_text()) + request.max_tokens)
    except QuotaDenied as denied:
        state.stats.quota_throttles[denied.which] += 1
        raise BedrockError(
            "ThrottlingException", TOO_MANY_TOKENS if denied.which == "tokens" else TOO_MANY_REQUESTS
        ) from None
    settled = 0
    try:
        plan = state.faults.draw()
        if plan.kind:
            state.stats.faults[plan.kind] += 1
        if plan.kind == "timeout":
            await asyncio.sleep(state.knobs.timeout_hold_s)
        if plan.kind in ("throttle", "error", "timeout"):
            assert plan.error_code is not None
            raise BedrockError(plan.error_code)
        slots = state._slots
        if slots is not None:
            state.stats.queued += 1
            try:
                await slots.acquire()
            finally:
                state.stats.queued -= 1
        try:
            result = await state.backend.generate(request)
            if plan.kind == "malformed":
                ids = [ident for ident, _ in request.reviews()]
                text = state.faults.malformed_text(ids)
                result = replace(result, text=text, output_tokens=max(1, len(text) // 4), stop_reason="end_turn")
            # Simulated model time holds the backend slot, as real model time would.
            extra = state.faults.latency_s(result.output_tokens, request.last_user_text)
            if extra > 0:
                await asyncio.sleep(extra)
        finally:
            if slots is not None:
                slots.release()
        settled = result.input_tokens + result.output_tokens
        state.stats.input_tokens += result.input_tokens
        state.stats.output_tokens += result.output_tokens
        state.stats.reviews += result.reviews
        return result
    finally:
        state.quota.settle(reservation, settled or estimate_tokens(request.all_text()))


def _model_handler(
    operation: str, parse: Callable[[str, dict], ModelRequest]
) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    async def handler(http_request: web.Request) -> web.StreamResponse:
        state: ServerState = http_request.app[STATE_KEY]
        request_id = str(uuid.uuid4())
        started = time.monotonic()
        state.stats.begin(operation)
        status, code = 500, "InternalServerException"
        try:
            model_id = unquote(http_request.match_info["model_id"])
            request = parse(model_id, _json_body(await http_request.read()))
            result = await _run_model(state, request)
            latency_ms = int((time.monotonic() - started) * 1000)
            response = (
                converse_response(result, latency_ms)
                if operation == "converse"
                else invoke_response(request, result, latency_ms)
            )
            response.headers["x-amzn-RequestId"] = request_id
            status, code = 200, ""
            return response
        except BedrockError as err:
            status, code = err.status, err.code
            return error_response(err, request_id)
        except Exception:
            log.exception("internal error in %s", operation)
            return error_response(BedrockError("InternalServerException"), request_id)
        finally:
            state.stats.end(status, (time.monotonic() - started) * 1000, code or None)

    return handler


# ---------------------------------------------------------------------------------------------- admin


async def get_config(http_request: web.Request) -> web.Response:
    return _json(http_request.app[STATE_KEY].knobs.to_dict())


async def post_config(http_request: web.Request) -> web.Response:
    state: ServerState = http_request.app[STATE_KEY]
    try:
        changes = orjson.loads(await http_request.read() or b"{}")
        if not isinstance(changes, dict):
            raise ValueError("the body must be a JSON object of knob: value")
        state.apply(state.knobs.updated(changes))
    except (ValueError, orjson.JSONDecodeError) as err:
        return _json({"error": str(err)}, status=400)
    log.info("knobs changed: %s", changes)
    return _json(state.knobs.to_dict())


async def get_stats(http_request: web.Request) -> web.Response:
    state: ServerState = http_request.app[STATE_KEY]
    out = state.stats.to_dict()
    out["quota_window"] = state.quota.usage()
    out["backend"] = state.backend.name
    return _json(out)


async def post_reset(http_request: web.Request) -> web.Response:
    state: ServerState = http_request.app[STATE_KEY]
    state.stats.reset()
    state.quota.reset()
    return _json({"reset": True})


async def health(http_request: web.Request) -> web.Response:
    return _json({"status": "ok", "backend": http_request.app[STATE_KEY].backend.name})


async def not_found(http_request: web.Request) -> web.Response:
    message = f"No route for {http_request.method} {http_request.path}"
    return error_response(BedrockError("ResourceNotFoundException", message), str(uuid.uuid4()))


def error_response(err: BedrockError, request_id: str) -> web.Response:
    """restJson1 error: the code in `x-amzn-ErrorType` (what botocore reads first), the text in the body."""
    body = orjson.dumps({"message": err.message})
    return web.Response(status=err.status, body=body, content_type="application/json", headers=err.headers(request_id))


def _json(doc: object, status: int = 200) -> web.Response:
    return web.Response(body=orjson.dumps(doc), status=status, content_type="application/json")


STATE_KEY: web.AppKey[ServerState] = web.AppKey("state", ServerState)


def create_app(backend: Backend, knobs: Knobs | None = None) -> web.Application:
    app = web.Application(client_max_size=MAX_BODY_BYTES)
    app[STATE_KEY] = ServerState(backend=backend, knobs=knobs or Knobs())
    model = "/model/{model_id:[^/]+}"
    app.router.add_post(model + "/converse", _model_handler("converse", parse_converse))
    app.router.add_post(model + "/invoke", _model_handler("invoke", parse_invoke))
    app.router.add_get("/_admin/config", get_config)
    app.router.add_post("/_admin/config", post_config)
    app.router.add_get("/_admin/stats", get_stats)
    app.router.add_post("/_admin/reset", post_reset)
    app.router.add_get("/_admin/health", health)
    app.router.add_get("/ping", health)
    app.router.add_route("*", "/{tail:.*}", not_found)

    async def _close_backend(_: web.Application) -> None:
        with contextlib.suppress(Exception):
            await app[STATE_KEY].backend.close()

    app.on_cleanup.append(_close_backend)
    return app
