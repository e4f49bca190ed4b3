"""The aiohttp application: Bedrock-runtime routes, the request path, and the admin API.

Request path for `/model/{modelId}/converse` and `/invoke`, in the order Bedrock checks things: credentials
and permission (the `auth_error` knob: 403), the model id (404 ResourceNotFoundException, or 400 for a bare id
of a profile-only model), the body (400 ValidationException: see wire.py), the context window (400), load
shedding (429/503 at once when the backend cannot start the request soon: see admission.py), the RPM/TPM
quota (429), injected faults, a backend slot, generation, the simulated latency. SigV4 headers are accepted
and not verified.
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

from devstack.bedrock.admission import Admission
from devstack.bedrock.backends import Backend, ModelRequest, ModelResult, backend_slots, estimate_tokens
from devstack.bedrock.batch.api import add_batch_routes
from devstack.bedrock.batch.knobs import BatchKnobs
from devstack.bedrock.control import get_foundation_model_handler
from devstack.bedrock.errors import TOO_MANY_REQUESTS, TOO_MANY_TOKENS, BedrockError
from devstack.bedrock.faults import Faults, Knobs
from devstack.bedrock.models import ModelSpec, resolve_model
from devstack.bedrock.quota import Quota, QuotaDenied
from devstack.bedrock.stats import Stats
from devstack.bedrock.wire import (
    check_context,
    converse_response,
    error_response,
    invoke_response,
    json_body,
    parse_converse,
    parse_invoke,
)

log = logging.getLogger(__name__)

MAX_BODY_BYTES = 20 * 1024 * 1024


@dataclass
class ServerState:
    """Everything the handlers share: backend, knobs, quota, admission, stats."""

    backend: Backend
    knobs: Knobs = field(default_factory=Knobs)
    stats: Stats = field(default_factory=Stats)
    quota: Quota = field(default_factory=Quota)
    admission: Admission = field(default_factory=Admission)
    faults: Faults | None = None
    resumed: asyncio.Event = field(default_factory=asyncio.Event)  # cleared while the `paused` knob is on
    compiled: dict[bytes, float] = field(default_factory=dict)  # schema -> when its grammar was compiled

    def __post_init__(self) -> None:
        self.faults = Faults(self.knobs)
        self.apply(self.knobs)

    def apply(self, knobs: Knobs) -> None:
        self.knobs = knobs
        self.quota.rpm, self.quota.tpm = knobs.rpm, knobs.tpm
        assert self.faults is not None
        self.faults.set(knobs)
        self.admission.resize(knobs.max_concurrency or backend_slots(self.backend))
        if knobs.paused:
            self.resumed.clear()
        else:
            self.resumed.set()

    def admission_stats(self) -> dict:
        return self.admission.to_dict(self.knobs.queue_timeout_s, self.knobs.max_queue)


# ---------------------------------------------------------------------------------------------- handling


def _admit(state: ServerState, request: ModelRequest, spec: ModelSpec) -> None:
    """The checks that refuse a request before it costs anything: context window, then load shedding."""
    knobs = state.knobs
    check_context(estimate_tokens(request.all_text()), request.max_tokens, knobs.context_tokens or spec.context_tokens)
    if not state.admission.admits(knobs.queue_timeout_s, knobs.max_queue):
        state.stats.shed += 1
        raise BedrockError(knobs.shed_with)


SCHEMA_CACHE_S = 24 * 3600.0  # Bedrock keeps a compiled grammar for 24 hours


async def _compile_schema(state: ServerState, request: ModelRequest) -> None:
    """The first request with a schema not seen for 24 h waits `schema_compile_ms` (Bedrock compiles a grammar)."""
    if request.schema is None or state.knobs.schema_compile_ms <= 0:
        return
    key = orjson.dumps(request.schema, option=orjson.OPT_SORT_KEYS)
    now = time.monotonic()
    if now - state.compiled.get(key, -SCHEMA_CACHE_S) < SCHEMA_CACHE_S:
        return
    state.compiled[key] = now
    state.stats.schema_compiles += 1
    await asyncio.sleep(state.knobs.schema_compile_ms / 1000)


async def _run_model(state: ServerState, request: ModelRequest, spec: ModelSpec) -> ModelResult:
    """Quota, faults, queueing, generation and latency for one admitted request."""
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
        await _compile_schema(state, request)
        async with state.admission.slot(request.service_tier):
            result = await state.backend.generate(request)
            if plan.kind == "malformed":
                ids = [ident for ident, _ in request.reviews()]
                text = state.faults.malformed_text(ids)
                result = replace(result, text=text, output_tokens=max(1, len(text) // 4), stop_reason="end_turn")
            # Simulated model time holds the backend slot, as real model time would.
            extra = state.faults.latency_s(result.output_tokens, request.last_user_text)
            if extra > 0:
                await asyncio.sleep(extra)
            await state.resumed.wait()
        burndown = state.knobs.output_burndown or spec.output_burndown
        settled = state.quota.burned(result.input_tokens, result.output_tokens, burndown)
        state.stats.quota_tokens += settled
        state.stats.input_tokens += result.input_tokens
        state.stats.output_tokens += result.output_tokens
        state.stats.reviews += result.reviews
        state.stats.note_answered([text for _ident, text in request.reviews()])
        state.stats.by_tier[request.service_tier] += 1
        return result
    finally:
        state.quota.settle(reservation, settled or estimate_tokens(request.all_text()))


def _model_handler(
    operation: str, parse: Callable[[str, dict, ModelSpec], ModelRequest]
) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    async def handler(http_request: web.Request) -> web.StreamResponse:
        state: ServerState = http_request.app[STATE_KEY]
        request_id = str(uuid.uuid4())
        started = time.monotonic()
        state.stats.begin(operation)
        status, code = 500, "InternalServerException"
        try:
            if state.knobs.auth_error:
                raise BedrockError(state.knobs.auth_error)
            model_id = unquote(http_request.match_info["model_id"])
            spec = resolve_model(model_id, state.knobs.extra_model_ids)
            request = parse(model_id, json_body(await http_request.read()), spec)
            _admit(state, request, spec)
            result = await _run_model(state, request, spec)
            latency_ms = int((time.monotonic() - started) * 1000)
            response = (
                converse_response(result, latency_ms, request.service_tier)
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
    out.update(state.admission_stats())
    out["quota_window"] = state.quota.usage()
    out["backend"] = state.backend.name
    return _json(out)


async def get_answered(http_request: web.Request) -> web.Response:
    """Every review answered since the last reset, oldest first: [monotonic time, fingerprint of its text]."""
    return _json({"answered": list(http_request.app[STATE_KEY].stats.answered)})


async def post_reset(http_request: web.Request) -> web.Response:
    state: ServerState = http_request.app[STATE_KEY]
    state.stats.reset()
    state.quota.reset()
    state.admission.reset()
    return _json({"reset": True})


async def health(http_request: web.Request) -> web.Response:
    return _json({"status": "ok", "backend": http_request.app[STATE_KEY].backend.name})


async def not_found(http_request: web.Request) -> web.Response:
    message = f"No route for {http_request.method} {http_request.path}"
    return error_response(BedrockError("ResourceNotFoundException", message), str(uuid.uuid4()))


def _json(doc: object, status: int = 200) -> web.Response:
    return web.Response(body=orjson.dumps(doc), status=status, content_type="application/json")


STATE_KEY: web.AppKey[ServerState] = web.AppKey("state", ServerState)


def create_app(
    backend: Backend, knobs: Knobs | None = None, batch_knobs: BatchKnobs | None = None, s3_endpoint: str | None = None
) -> web.Application:
    """The server; batch jobs read and write S3 at `s3_endpoint` (none: every job fails, saying so)."""
    app = web.Application(client_max_size=MAX_BODY_BYTES)
    app[STATE_KEY] = ServerState(backend=backend, knobs=knobs or Knobs())
    model = "/model/{model_id:[^/]+}"
    app.router.add_post(model + "/converse", _model_handler("converse", parse_converse))
    app.router.add_post(model + "/invoke", _model_handler("invoke", parse_invoke))
    app.router.add_get("/foundation-models/{model_id:[^/]+}", get_foundation_model_handler(STATE_KEY))
    add_batch_routes(app, STATE_KEY, batch_knobs or BatchKnobs(), s3_endpoint)
    app.router.add_get("/_admin/config", get_config)
    app.router.add_post("/_admin/config", post_config)
    app.router.add_get("/_admin/stats", get_stats)
    app.router.add_get("/_admin/answered", get_answered)
    app.router.add_post("/_admin/reset", post_reset)
    app.router.add_get("/_admin/health", health)
    app.router.add_get("/ping", health)
    app.router.add_route("*", "/{tail:.*}", not_found)

    async def _close_backend(_: web.Application) -> None:
        with contextlib.suppress(Exception):
            await app[STATE_KEY].backend.close()

    app.on_cleanup.append(_close_backend)
    return app
