"""The Bedrock server is as strict as Bedrock at the edges the pipeline relies on, checked through aiobotocore.

Model ids, credentials and permissions, the context window, the message order, and load shedding: each
answer must be the exception botocore raises for the real service, with its HTTP status.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import orjson
import pytest
from botocore.exceptions import ClientError

from dataflow.enrich.prompt import build_converse_request
from devstack.processes import start_bedrock
from tests.devstack.conftest import MODEL_ID, admin, bedrock_client, run

REVIEW = "Great kettle, boils fast and looks lovely on the counter."


def _invoke_body(max_tokens: int | None = 50, messages: list | None = None) -> bytes:
    body: dict[str, Any] = {
        "anthropic_version": "bedrock-2023-05-31",
        "messages": messages or [{"role": "user", "content": "hi"}],
    }
    if max_tokens is not None:
        body["max_tokens"] = max_tokens
    return orjson.dumps(body)


async def _outcome(call: Any) -> tuple[str, int, str, str]:
    """(code, HTTP status, message, x-amzn-ErrorType) of a call that fails, or ("ok", 200, "", "")."""
    try:
        await call
    except ClientError as err:
        meta = err.response["ResponseMetadata"]
        return (
            err.response["Error"]["Code"],
            meta["HTTPStatusCode"],
            err.response["Error"]["Message"],
            meta["HTTPHeaders"].get("x-amzn-errortype", ""),
        )
    return "ok", 200, "", ""


def _converse_and_invoke(client: Any, model_id: str) -> list[Any]:
    return [
        client.converse(**build_converse_request(model_id, [REVIEW], 120)),
        client.invoke_model(modelId=model_id, body=_invoke_body()),
    ]


@pytest.mark.parametrize(
    "model_id",
    [
        "anthropic.claude-haiku-9-9-20991231-v1:0",
        "us.anthropic.claude-haiku-4-5-20251001-v9:0",
        "xx.anthropic.claude-haiku-4-5-20251001-v1:0",
        "claude-haiku",
        f"arn:aws:bedrock:us-east-1::foundation-model/{MODEL_ID}",  # a profile id is not a foundation model
    ],
)
def test_unknown_model_is_resource_not_found(bedrock_url: str, model_id: str) -> None:
    async def scenario() -> list[tuple[str, int, str, str]]:
        async with bedrock_client(bedrock_url) as client:
            outcomes = []
            for call in _converse_and_invoke(client, model_id):
                try:
                    await call
                    outcomes.append(("ok", 200, "", ""))
                except client.exceptions.ResourceNotFoundException as err:  # the modeled class, not a bare ClientError
                    meta = err.response["ResponseMetadata"]
                    outcomes.append(
                        ("ResourceNotFoundException", meta["HTTPStatusCode"], err.response["Error"]["Message"], "")
                    )
            return outcomes

    outcomes = run(scenario())
    assert [(code, status) for code, status, _, _ in outcomes] == [("ResourceNotFoundException", 404)] * 2
    assert all("model identifier" in message for _, _, message, _ in outcomes)
    stats = admin(bedrock_url, "/_admin/stats")
    assert stats["errors"] == {"ResourceNotFoundException": 2} and stats["reviews"] == 0


@pytest.mark.parametrize(
    "model_id",
    [
        MODEL_ID,
        "eu.anthropic.claude-haiku-4-5-20251001-v1:0",
        "apac.anthropic.claude-3-5-sonnet-20241022-v2:0",
        "global.anthropic.claude-sonnet-4-5-20250929-v1:0",
        "anthropic.claude-3-haiku-20240307-v1:0",  # older models may be invoked on demand by their bare id
        "arn:aws:bedrock:us-east-1::foundation-model/anthropic.claude-3-5-haiku-20241022-v1:0",
        f"arn:aws:bedrock:eu-west-1:123456789012:inference-profile/{MODEL_ID}",
    ],
)
def test_known_models_and_profiles_answer(bedrock_url: str, model_id: str) -> None:
    async def scenario() -> list[tuple[str, int, str, str]]:
        async with bedrock_client(bedrock_url) as client:
            return [await _outcome(call) for call in _converse_and_invoke(client, model_id)]

    assert [o[0] for o in run(scenario())] == ["ok", "ok"]


def test_bare_id_of_a_profile_only_model_and_extra_ids(bedrock_url: str) -> None:
    bare = MODEL_ID.split(".", 1)[1]

    async def scenario(model_id: str) -> list[tuple[str, int, str, str]]:
        async with bedrock_client(bedrock_url) as client:
            return [await _outcome(call) for call in _converse_and_invoke(client, model_id)]

    for code, status, message, _ in run(scenario(bare)):
        assert (code, status) == ("ValidationException", 400)
        assert "on-demand throughput isn't supported" in message and "inference profile" in message
    assert [o[0] for o in run(scenario("my-company.custom-model-v1"))] == ["ResourceNotFoundException"] * 2
    admin(bedrock_url, "/_admin/config", {"extra_model_ids": ["my-company.custom-model-v1"]})
    assert [o[0] for o in run(scenario("my-company.custom-model-v1"))] == ["ok", "ok"]


@pytest.mark.parametrize(
    ("auth_error", "message"),
    [
        ("AccessDeniedException", "You don't have access to the model with the specified model ID."),
        ("UnrecognizedClientException", "The security token included in the request is invalid."),
        ("ExpiredTokenException", "The security token included in the request is expired"),
        ("InvalidSignatureException", "The request signature we calculated does not match the signature you provided"),
    ],
)
def test_auth_errors_are_403_with_the_real_code(bedrock_url: str, auth_error: str, message: str) -> None:
    admin(bedrock_url, "/_admin/config", {"auth_error": auth_error})

    async def scenario() -> tuple[list[tuple[str, int, str, str]], list[type]]:
        async with bedrock_client(bedrock_url) as client:
            outcomes, classes = [], []
            # Credentials are checked before the model id: an unknown id gets the 403 too.
            for model_id in (MODEL_ID, "anthropic.nope-v1:0"):
                for call in _converse_and_invoke(client, model_id):
                    try:
                        await call
                    except ClientError as err:
                        classes.append(type(err))
                        meta = err.response["ResponseMetadata"]
                        outcomes.append(
                            (
                                err.response["Error"]["Code"],
                                meta["HTTPStatusCode"],
                                err.response["Error"]["Message"],
                                meta["HTTPHeaders"]["x-amzn-errortype"],
                            )
                        )
            modeled = client.exceptions.AccessDeniedException
            return outcomes, [c is modeled for c in classes]

    outcomes, modeled = run(scenario())
    assert len(outcomes) == 4
    for code, status, got_message, error_type in outcomes:
        assert (code, status) == (auth_error, 403) and got_message.startswith(message)
        assert error_type.startswith(auth_error + ":")
    # AccessDeniedException is in bedrock-runtime's model; the token errors come from AWS's front door.
    assert all(modeled) == (auth_error == "AccessDeniedException")
    stats = admin(bedrock_url, "/_admin/stats")
    assert stats["by_status"] == {"403": 4} and stats["reviews"] == 0

    admin(bedrock_url, "/_admin/config", {"auth_error": None})  # fixed at run time, as after an IAM change
    assert run(_one_converse(bedrock_url))[0] == "ok"


async def _one_converse(url: str, model_id: str = MODEL_ID) -> tuple[str, int, str, str]:
    async with bedrock_client(url) as client:
        return await _outcome(client.converse(**build_converse_request(model_id, [REVIEW], 120)))


def test_input_beyond_the_context_window_is_a_validation_exception(bedrock_url: str) -> None:
    admin(bedrock_url, "/_admin/config", {"context_tokens": 600})
    long_review = "This blender is loud and it leaks everywhere. " * 60  # ~700 tokens by the server's estimate

    async def scenario() -> list[tuple[str, int, str, str]]:
        async with bedrock_client(bedrock_url) as client:
            near = build_converse_request(MODEL_ID, [REVIEW * 8], 120)
            near["inferenceConfig"]["maxTokens"] = 590  # fits alone, not with the input
            return [
                await _outcome(client.converse(**build_converse_request(MODEL_ID, [long_review], 120))),
                await _outcome(client.converse(**near)),
                await _outcome(client.converse(**build_converse_request(MODEL_ID, [REVIEW], 120))),
            ]

    too_long, with_output, fine = run(scenario())
    assert too_long[:3] == ("ValidationException", 400, "Input is too long for requested model.")
    assert with_output[:2] == ("ValidationException", 400) and "exceed context limit" in with_output[2]
    assert fine[0] == "ok"
    stats = admin(bedrock_url, "/_admin/stats")
    assert stats["errors"] == {"ValidationException": 2} and stats["quota_window"]["requests"] == 1


def test_message_order_max_tokens_and_blank_text(bedrock_url: str) -> None:
    user = {"role": "user", "content": [{"text": "Is this review positive?"}]}
    assistant = {"role": "assistant", "content": [{"text": "{"}]}

    async def scenario() -> dict[str, tuple[str, int, str, str]]:
        async with bedrock_client(bedrock_url) as client:

            def converse(messages: list, **config: int) -> Any:
                return client.converse(modelId=MODEL_ID, messages=messages, inferenceConfig=config)

            def invoke(body: bytes, model_id: str = MODEL_ID) -> Any:
                return client.invoke_model(modelId=model_id, body=body)

            calls: dict[str, Callable[[], Any]] = {
                "two users": lambda: converse([user, user], maxTokens=50),
                "assistant first": lambda: converse([assistant, user], maxTokens=50),
                "blank text": lambda: converse([{"role": "user", "content": [{"text": "  "}]}], maxTokens=50),
                "too many tokens": lambda: converse([user], maxTokens=70_000),
                "prefill ends in a space": lambda: converse(
                    [user, {"role": "assistant", "content": [{"text": "{ "}]}], maxTokens=50
                ),
                "no maxTokens": lambda: converse([user]),  # optional in Converse
                "invoke without max_tokens": lambda: invoke(_invoke_body(max_tokens=None)),
                "invoke two users": lambda: invoke(
                    _invoke_body(messages=[{"role": "user", "content": "a"}, {"role": "user", "content": "b"}])
                ),
                "invoke over model limit": lambda: invoke(
                    _invoke_body(max_tokens=5000), "anthropic.claude-3-haiku-20240307-v1:0"
                ),
                "ok": lambda: converse([user, assistant], maxTokens=50),
            }
            return {name: await _outcome(call()) for name, call in calls.items()}

    out = run(scenario())
    assert {name: o[:2] for name, o in out.items() if o[0] != "ok"} == {
        name: ("ValidationException", 400)
        for name in (
            "two users",
            "assistant first",
            "blank text",
            "too many tokens",
            "prefill ends in a space",
            "invoke without max_tokens",
            "invoke two users",
            "invoke over model limit",
        )
    }
    assert "alternate between user and assistant" in out["two users"][2]
    assert "start with a user message" in out["assistant first"][2]
    assert "is blank" in out["blank text"][2]
    assert "model limit of 64000" in out["too many tokens"][2]
    assert "trailing whitespace" in out["prefill ends in a space"][2]
    assert "required key [max_tokens]" in out["invoke without max_tokens"][2]
    assert "model limit of 4096" in out["invoke over model limit"][2]
    assert out["no maxTokens"][0] == "ok" and out["ok"][0] == "ok"


# ---------------------------------------------------------------------------------------------- load shedding


async def _stats_when(url: str, predicate: Callable[[dict], bool], what: str) -> dict:
    """Poll the server's stats until `predicate` holds (a safety deadline only; nothing here is timed)."""
    deadline = time.monotonic() + 60
    while True:
        stats = await asyncio.to_thread(admin, url, "/_admin/stats")
        if predicate(stats):
            return stats
        assert time.monotonic() < deadline, f"the server never reached: {what} (last stats: {stats})"
        await asyncio.sleep(0.02)


async def _busy_then_more(url: str, queued: int, extra: int) -> tuple[list[tuple[str, int, str, str]], list]:
    """One request in service, `queued` waiting for the slot (waited on via stats), then `extra` more at once.

    The model is paused meanwhile, so the slot stays busy however slow this machine is; it is resumed before
    the held requests are awaited.
    """
    await asyncio.to_thread(admin, url, "/_admin/config", {"paused": True})
    async with bedrock_client(url, read_timeout=120) as client:

        def call() -> Any:
            return asyncio.ensure_future(_outcome(client.converse(**build_converse_request(MODEL_ID, [REVIEW], 120))))

        held = [call()]
        try:
            await _stats_when(url, lambda s: s["in_service"] == 1, "one request in service")
            for n in range(queued):
                held.append(call())
                await _stats_when(url, lambda s, n=n: s["queued"] == n + 1, f"{n + 1} queued")
            # Answered while the slot is still busy (a request queued instead would wait for the resume).
            extra_outcomes = []
            for _ in range(extra):
                done, _ = await asyncio.wait([call()], timeout=30)
                assert done, "an excess request was not answered at once"
                extra_outcomes.append(done.pop().result())
            still = await asyncio.to_thread(admin, url, "/_admin/stats")
        finally:
            await asyncio.to_thread(admin, url, "/_admin/config", {"paused": False})
            outcomes = await asyncio.gather(*held, return_exceptions=True)
        return extra_outcomes, [still, *outcomes]


@pytest.mark.parametrize("shed_with", ["ThrottlingException", "ServiceUnavailableException"])
def test_bounded_queue_sheds_the_excess_at_once(bedrock_url: str, shed_with: str) -> None:
    admin(
        bedrock_url,
        "/_admin/config",
        {"max_concurrency": 1, "max_queue": 1, "latency_ms": 100, "shed_with": shed_with},
    )
    extra, (stats_then, *held) = run(_busy_then_more(bedrock_url, queued=1, extra=2))
    status = 429 if shed_with == "ThrottlingException" else 503
    for code, got_status, message, error_type in extra:
        assert (code, got_status) == (shed_with, status) and message
        assert error_type.startswith(shed_with + ":http://internal.amazon.com/coral/com.amazon.bedrock/")
    # Both refusals came back while the first request still held the slot and the second still waited.
    assert stats_then["in_service"] == 1 and stats_then["queued"] == 1 and stats_then["shed"] == 2
    assert [o[0] for o in held] == ["ok", "ok"]
    stats = admin(bedrock_url, "/_admin/stats")
    assert stats["shed"] == 2 and stats["completed"] == 2 and stats["errors"] == {shed_with: 2}
    assert stats["max_queued"] == 1 and stats["quota_window"]["requests"] == 2  # shed requests cost no quota


def test_unbounded_queue_knob_keeps_every_request(bedrock_url: str) -> None:
    admin(bedrock_url, "/_admin/config", {"max_concurrency": 1, "queue_timeout_s": 0})
    _, (stats_then, *held) = run(_busy_then_more(bedrock_url, queued=3, extra=0))  # cold limit would be 1
    assert stats_then["queue_limit"] is None and stats_then["queued"] == 3
    assert [o[0] for o in held] == ["ok"] * 4
    assert admin(bedrock_url, "/_admin/stats")["shed"] == 0


def test_measured_queue_limit_follows_service_time_and_timeout(bedrock_url: str) -> None:
    admin(bedrock_url, "/_admin/config", {"max_concurrency": 2, "queue_timeout_s": 3.0, "latency_ms": 200})
    cold = admin(bedrock_url, "/_admin/stats")
    assert cold["service_ms_ewma"] is None and cold["queue_limit"] == 2  # one waiting per slot until measured
    assert run(_one_converse(bedrock_url))[0] == "ok"
    stats = admin(bedrock_url, "/_admin/stats")
    service_s = stats["service_ms_ewma"] / 1000
    assert service_s >= 0.2  # the simulated model time holds the slot
    assert stats["slots"] == 2 and stats["queue_limit"] == 2 * max(0, int(3.0 // service_s) - 1)
    admin(bedrock_url, "/_admin/config", {"queue_timeout_s": service_s})  # nothing could finish in time
    assert admin(bedrock_url, "/_admin/stats")["queue_limit"] == 0


def test_knobs_from_the_command_line() -> None:
    proc = start_bedrock(
        extra_args=[
            "--auth-error",
            "ExpiredTokenException",
            "--allow-model-id",
            "custom.model-a",
            "--allow-model-id",
            "custom.model-b",
            "--context-tokens",
            "1000",
            "--queue-timeout-s",
            "5",
            "--max-queue",
            "3",
            "--shed-with",
            "ServiceUnavailableException",
        ]
    )
    try:
        config = admin(proc.url, "/_admin/config")
        assert config["auth_error"] == "ExpiredTokenException" and config["context_tokens"] == 1000
        assert config["extra_model_ids"] == ["custom.model-a", "custom.model-b"]
        assert config["queue_timeout_s"] == 5.0 and config["max_queue"] == 3
        assert config["shed_with"] == "ServiceUnavailableException"
        assert run(_one_converse(proc.url, "custom.model-b"))[:2] == ("ExpiredTokenException", 403)
        admin(proc.url, "/_admin/config", {"auth_error": None})
        assert run(_one_converse(proc.url, "custom.model-b"))[0] == "ok"
    finally:
        proc.stop()
