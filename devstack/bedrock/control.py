"""The control-plane call the dataflow makes at start: GetFoundationModel (`GET /foundation-models/{id}`).

botocore's `bedrock` client reaches it through `AWS_ENDPOINT_URL_BEDROCK` (the runtime calls go to
`AWS_ENDPOINT_URL_BEDROCK_RUNTIME`; the local stack points both at this server). As on Bedrock, it takes a
foundation-model id or ARN, not an inference profile (`us.`/`global.`... ids are 404 here), and answers the
model's details with its `modelLifecycle`: ACTIVE, or LEGACY for the ids of the `legacy_model_ids` knob.
"""

from __future__ import annotations

import uuid
from urllib.parse import unquote

import orjson
from aiohttp import web

from devstack.bedrock.errors import BedrockError
from devstack.bedrock.models import FOUNDATION_MODELS, PROFILE_PREFIXES
from devstack.bedrock.wire import error_response

LEGACY_END_OF_LIFE = "2027-01-01T00:00:00Z"


def foundation_model(model_id: str, region: str, legacy: tuple[str, ...], extra: tuple[str, ...]) -> dict:
    """The `modelDetails` of GetFoundationModel for a foundation-model id or ARN; BedrockError otherwise."""
    ident = model_id.rsplit("/", 1)[-1] if model_id.startswith("arn:") else model_id
    if ident.startswith(PROFILE_PREFIXES) or (ident not in FOUNDATION_MODELS and ident not in extra):
        raise BedrockError("ResourceNotFoundException", f"The model {model_id} does not exist.")
    lifecycle: dict[str, str] = {"status": "LEGACY" if ident in legacy else "ACTIVE"}
    if ident in legacy:
        lifecycle["endOfLifeTime"] = LEGACY_END_OF_LIFE
    provider = ident.split(".", 1)[0]
    return {
        "modelArn": f"arn:aws:bedrock:{region}::foundation-model/{ident}",
        "modelId": ident,
        "modelName": ident.split(".", 1)[-1].rsplit("-v", 1)[0],
        "providerName": provider.capitalize(),
        "inputModalities": ["TEXT"],
        "outputModalities": ["TEXT"],
        "responseStreamingSupported": True,
        "customizationsSupported": [],
        "inferenceTypesSupported": ["INFERENCE_PROFILE"],
        "modelLifecycle": lifecycle,
    }


def get_foundation_model_handler(state_key: web.AppKey) -> object:
    async def handler(http_request: web.Request) -> web.Response:
        knobs = http_request.app[state_key].knobs
        request_id = str(uuid.uuid4())
        try:
            if knobs.auth_error:
                raise BedrockError(knobs.auth_error)
            details = foundation_model(
                unquote(http_request.match_info["model_id"]),
                "us-east-1",
                knobs.legacy_model_ids,
                knobs.extra_model_ids,
            )
        except BedrockError as err:
            return error_response(err, request_id)
        body = orjson.dumps({"modelDetails": details})
        return web.Response(body=body, content_type="application/json", headers={"x-amzn-RequestId": request_id})

    return handler
