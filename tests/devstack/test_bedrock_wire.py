"""The Bedrock-compatible server, checked through an unmodified aiobotocore client (lexicon backend)."""

from __future__ import annotations

import orjson
import pytest

from dataflow.enrich.prompt import AnswerError, ReviewAnswer, build_converse_request, parse_answer
from devstack.bedrock.errors import ERROR_STATUS
from tests.devstack.conftest import MODEL_ID, admin, bedrock_client, run

POSITIVE = "I love this kettle. It boils water fast and looks great on the counter!"
NEGATIVE = "Terrible <b>quality</b> & awful support. It broke after two days and nobody answered."
NEUTRALISH = "Arrived on Tuesday. The box was blue. Mr. Jones signed for it at 3.30 p.m. today"


def _text(response: dict) -> str:
    return response["output"]["message"]["content"][0]["text"]


def test_converse_multi_review_continues_prefill(bedrock_url: str) -> None:
    async def scenario() -> dict:
        async with bedrock_client(bedrock_url) as client:
            return await client.converse(**build_converse_request(MODEL_ID, [POSITIVE, NEGATIVE, NEUTRALISH], 120))

    response = run(scenario())
    text = _text(response)
    assert not text.startswith("{"), "the answer must continue the '{' prefill, not repeat it"
    answers = parse_answer(text, 3)
    assert sorted(answers) == [1, 2, 3]
    assert all(isinstance(a, ReviewAnswer) for a in answers.values())
    assert answers[1].sentiment == "positive" and answers[2].sentiment == "negative"
    assert "&lt;" not in answers[2].summary and "&amp;" not in answers[2].summary  # unescaped before use
    assert response["output"]["message"]["role"] == "assistant"
    assert response["stopReason"] == "end_turn"
    usage = response["usage"]
    assert usage["inputTokens"] > 100 and usage["outputTokens"] > 10
    assert usage["totalTokens"] == usage["inputTokens"] + usage["outputTokens"]
    assert "latencyMs" in response["metrics"]


def test_converse_without_prefill_and_without_blocks(bedrock_url: str) -> None:
    async def scenario() -> tuple[dict, dict]:
        async with bedrock_client(bedrock_url) as client:
            plain = await client.converse(
                modelId=MODEL_ID,
                messages=[{"role": "user", "content": [{"text": "Awful. Never again, total waste of money."}]}],
                inferenceConfig={"maxTokens": 200},
            )
            no_prefill = await client.converse(**build_converse_request(MODEL_ID, [POSITIVE], 120, prefill=False))
            return plain, no_prefill

    plain, no_prefill = run(scenario())
    doc = orjson.loads(_text(plain))
    assert doc["results"][0]["id"] == "1" and doc["results"][0]["sentiment"] == "negative"
    assert _text(no_prefill).startswith('{"results"')
    assert isinstance(parse_answer(_text(no_prefill), 1, prefilled=False)[1], ReviewAnswer)


def test_converse_max_tokens_cuts_the_answer(bedrock_url: str) -> None:
    async def scenario() -> dict:
        async with bedrock_client(bedrock_url) as client:
            request = build_converse_request(MODEL_ID, [POSITIVE, NEGATIVE], 120)
            request["inferenceConfig"]["maxTokens"] = 5
            return await client.converse(**request)

    response = run(scenario())
    assert response["stopReason"] == "max_tokens"
    assert response["usage"]["outputTokens"] == 5
    with pytest.raises(AnswerError):
        parse_answer(_text(response), 2)


@pytest.mark.parametrize("content_as_list", [False, True])
def test_invoke_model_anthropic_messages(bedrock_url: str, content_as_list: bool) -> None:
    review = '<review id="1">Fantastic phone, the battery lasts two days.</review>'
    content = [{"type": "text", "text": review}] if content_as_list else review
    body = {
        "anthropic_version": "bedrock-2023-05-31",
        "max_tokens": 200,
        "system": "Answer with JSON.",
        "messages": [{"role": "user", "content": content}, {"role": "assistant", "content": "{"}],
    }
    model_arn = f"arn:aws:bedrock:us-east-1:123456789012:inference-profile/{MODEL_ID}"
    admin(bedrock_url, "/_admin/config", {"latency_ms": 50})  # the latency header reports the model time

    async def scenario() -> tuple[dict, dict]:
        async with bedrock_client(bedrock_url) as client:
            response = await client.invoke_model(modelId=model_arn, body=orjson.dumps(body))
            return response, orjson.loads(await response["body"].read())

    response, doc = run(scenario())
    headers = response["ResponseMetadata"]["HTTPHeaders"]
    assert doc["type"] == "message" and doc["role"] == "assistant" and doc["model"] == model_arn
    assert doc["id"] and doc["stop_reason"] == "end_turn" and doc["stop_sequence"] is None
    assert doc["content"][0]["type"] == "text"
    answers = parse_answer(doc["content"][0]["text"], 1)
    assert answers[1] == ReviewAnswer(answers[1].summary, "positive")  # type: ignore[union-attr]
    assert int(headers["x-amzn-bedrock-input-token-count"]) == doc["usage"]["input_tokens"] > 0
    assert int(headers["x-amzn-bedrock-output-token-count"]) == doc["usage"]["output_tokens"] > 0
    assert int(headers["x-amzn-bedrock-invocation-latency"]) >= 50


@pytest.mark.parametrize("code", sorted(ERROR_STATUS))
def test_each_error_raises_the_modeled_exception(bedrock_url: str, code: str) -> None:
    admin(bedrock_url, "/_admin/config", {"fail_with": code})

    async def scenario() -> list[tuple[bool, str, int, str]]:
        outcomes = []
        async with bedrock_client(bedrock_url) as client:
            exc_class = getattr(client.exceptions, code)
            calls = [
                client.converse(**build_converse_request(MODEL_ID, [POSITIVE], 120)),
                client.invoke_model(
                    modelId=MODEL_ID,
                    body=orjson.dumps(
                        {
                            "anthropic_version": "bedrock-2023-05-31",
                            "max_tokens": 10,
                            "messages": [{"role": "user", "content": "hi"}],
                        }
                    ),
                ),
            ]
            for call in calls:
                try:
                    await call
                except exc_class as err:
                    error = err.response["Error"]
                    status = err.response["ResponseMetadata"]["HTTPStatusCode"]
                    outcomes.append((True, error["Code"], status, error["Message"]))
        return outcomes

    outcomes = run(scenario())
    assert len(outcomes) == 2, "both Converse and InvokeModel must raise the modeled exception"
    for matched, got_code, status, message in outcomes:
        assert matched and got_code == code and status == ERROR_STATUS[code] and message
    stats = admin(bedrock_url, "/_admin/stats")
    assert stats["errors"] == {code: 2} and stats["by_status"] == {str(ERROR_STATUS[code]): 2}


def test_bad_request_is_a_validation_exception(bedrock_url: str) -> None:
    async def scenario() -> str:
        async with bedrock_client(bedrock_url) as client:
            try:
                await client.invoke_model(modelId=MODEL_ID, body=b'{"max_tokens": 10, "messages": []}')
            except client.exceptions.ValidationException as err:
                return err.response["Error"]["Message"]
        return ""

    assert "anthropic_version" in run(scenario())


def test_rpm_quota_throttles_and_counts(bedrock_url: str) -> None:
    admin(bedrock_url, "/_admin/config", {"rpm": 3})

    async def scenario() -> list[str]:
        outcomes = []
        async with bedrock_client(bedrock_url) as client:
            for _ in range(5):
                try:
                    await client.converse(**build_converse_request(MODEL_ID, [POSITIVE], 120))
                    outcomes.append("ok")
                except client.exceptions.ThrottlingException as err:
                    outcomes.append(err.response["Error"]["Message"])
        return outcomes

    outcomes = run(scenario())
    assert outcomes[:3] == ["ok"] * 3
    assert outcomes[3:] == ["Too many requests, please wait before trying again."] * 2
    stats = admin(bedrock_url, "/_admin/stats")
    assert stats["throttles"] == 2 and stats["quota_throttles"] == {"requests": 2}
    assert stats["by_status"] == {"200": 3, "429": 2} and stats["quota_window"]["requests"] == 3


def test_tpm_quota_reserves_max_tokens_then_settles_to_actual(bedrock_url: str) -> None:
    # Output at face value (burndown 1): this is about the reservation; the burndown has its own test.
    admin(bedrock_url, "/_admin/config", {"output_burndown": 1})
    request = build_converse_request(MODEL_ID, [POSITIVE], 120)
    max_tokens = request["inferenceConfig"]["maxTokens"]

    async def call(client: object) -> str:
        try:
            await client.converse(**request)  # type: ignore[attr-defined]
            return "ok"
        except client.exceptions.ThrottlingException as err:  # type: ignore[attr-defined]
            return err.response["Error"]["Message"]

    async def scenario() -> tuple[dict, list[str]]:
        async with bedrock_client(bedrock_url) as client:
            first = await client.converse(**request)
            usage = first["usage"]
            reserved = usage["inputTokens"] + max_tokens
            actual = usage["totalTokens"]
            # Room for what the window holds after settling (2 actual) plus one more reservation.
            admin(bedrock_url, "/_admin/config", {"tpm": 2 * actual + reserved})
            return usage, [await call(client) for _ in range(3)]

    usage, outcomes = run(scenario())
    assert usage["outputTokens"] < max_tokens
    # Without settling to actual usage the second request would already be refused.
    assert outcomes == ["ok", "ok", "Too many tokens, please wait before trying again."]
    stats = admin(bedrock_url, "/_admin/stats")
    assert stats["quota_throttles"] == {"tokens": 1} and stats["throttles"] == 1
    assert stats["quota_window"]["tokens"] == 3 * usage["totalTokens"]

    admin(bedrock_url, "/_admin/config", {"tpm": 10})  # smaller than one reservation: always refused
    assert run(scenario_one(bedrock_url, request)) == "throttled"


@pytest.mark.parametrize(
    "model_id,knob,burndown",
    [
        (MODEL_ID, 0, 5),  # Claude Haiku 4.5: Bedrock's 5x burndown for output tokens
        ("anthropic.claude-3-haiku-20240307-v1:0", 0, 1),  # older models burn output at face value
        (MODEL_ID, 1, 1),  # the knob overrides the model's rate
    ],
)
def test_output_tokens_burn_the_token_quota_at_the_models_rate(
    bedrock_url: str, model_id: str, knob: int, burndown: int
) -> None:
    admin(bedrock_url, "/_admin/config", {"tpm": 1_000_000, "output_burndown": knob})
    request = build_converse_request(model_id, [POSITIVE, NEGATIVE], 120)

    async def scenario() -> dict:
        async with bedrock_client(bedrock_url) as client:
            return (await client.converse(**request))["usage"]

    usage = run(scenario())
    stats = admin(bedrock_url, "/_admin/stats")
    burned = usage["inputTokens"] + burndown * usage["outputTokens"]
    assert usage["outputTokens"] > 0
    assert stats["quota_window"]["tokens"] == burned and stats["quota_tokens"] == burned


async def scenario_one(url: str, request: dict) -> str:
    async with bedrock_client(url) as client:
        try:
            await client.converse(**request)
        except client.exceptions.ThrottlingException:
            return "throttled"
    return "ok"


@pytest.mark.parametrize(
    ("knobs", "expected"),
    [
        ({"throttle_rate": 1.0}, {"ThrottlingException"}),
        ({"error_rate": 1.0}, {"InternalServerException", "ServiceUnavailableException"}),
        ({"error_rate": 1.0, "error_codes": ["ServiceUnavailableException"]}, {"ServiceUnavailableException"}),
        ({"timeout_rate": 1.0, "timeout_hold_s": 0.3}, {"ModelTimeoutException"}),
    ],
)
def test_fault_knobs_at_one(bedrock_url: str, knobs: dict, expected: set[str]) -> None:
    admin(bedrock_url, "/_admin/config", knobs)

    async def scenario() -> list[str]:
        codes = []
        async with bedrock_client(bedrock_url) as client:
            for _ in range(4):
                try:
                    await client.converse(**build_converse_request(MODEL_ID, [POSITIVE], 120))
                    codes.append("ok")
                except client.exceptions.ClientError as err:
                    codes.append(err.response["Error"]["Code"])
        return codes

    codes = run(scenario())
    assert set(codes) <= expected and len(codes) == 4
    stats = admin(bedrock_url, "/_admin/stats")
    assert sum(stats["faults"].values()) == 4 and stats["completed"] == 0
    if "timeout_hold_s" in knobs:  # the server held each request before timing out (what it measured)
        assert stats["latency_ms_max"] >= 1000 * knobs["timeout_hold_s"]


def test_malformed_answers_are_200s_that_break_the_contract(bedrock_url: str) -> None:
    admin(bedrock_url, "/_admin/config", {"malformed_rate": 1.0})

    async def scenario() -> list[str]:
        async with bedrock_client(bedrock_url) as client:
            return [_text(await client.converse(**build_converse_request(MODEL_ID, [POSITIVE], 120))) for _ in range(8)]

    for text in run(scenario()):
        try:
            answers = parse_answer(text, 1)
        except AnswerError:
            continue
        assert not any(isinstance(a, ReviewAnswer) for a in answers.values()), text
    assert admin(bedrock_url, "/_admin/stats")["faults"] == {"malformed": 8}


def test_admin_config_changes_behaviour_at_run_time(bedrock_url: str) -> None:
    config = admin(bedrock_url, "/_admin/config")
    assert config["throttle_rate"] == 0.0 and config["rpm"] == 0
    request = build_converse_request(MODEL_ID, [POSITIVE], 120)

    async def one() -> str:
        async with bedrock_client(bedrock_url) as client:
            try:
                await client.converse(**request)
                return "ok"
            except client.exceptions.ClientError as err:
                return err.response["Error"]["Code"]

    assert run(one()) == "ok"
    assert admin(bedrock_url, "/_admin/config", {"throttle_rate": 1.0})["throttle_rate"] == 1.0
    assert run(one()) == "ThrottlingException"
    admin(bedrock_url, "/_admin/config", {"throttle_rate": 0.0})
    assert run(one()) == "ok"

    for bad in ({"no_such_knob": 1}, {"error_rate": 2}, {"fail_with": "NopeException"}):
        with pytest.raises(Exception) as info:
            admin(bedrock_url, "/_admin/config", bad)
        assert getattr(info.value, "code", None) == 400

    stats = admin(bedrock_url, "/_admin/stats")
    assert stats["requests"] == 3 and stats["by_status"] == {"200": 2, "429": 1}
    admin(bedrock_url, "/_admin/reset", {})
    assert admin(bedrock_url, "/_admin/stats")["requests"] == 0


def test_latency_concurrency_limit_and_stats(bedrock_url: str) -> None:
    import asyncio

    admin(bedrock_url, "/_admin/config", {"latency_ms": 200, "max_concurrency": 1, "queue_timeout_s": 0})
    request = build_converse_request(MODEL_ID, [POSITIVE, NEGATIVE], 120)

    async def scenario() -> list[dict]:
        async with bedrock_client(bedrock_url) as client:
            return list(await asyncio.gather(*(client.converse(**request) for _ in range(3))))

    responses = run(scenario())
    stats = admin(bedrock_url, "/_admin/stats")
    assert stats["requests"] == 3 and stats["completed"] == 3 and stats["in_flight"] == 0
    # Three requests through one slot of 200 ms each, as the server saw it: two waited while one was served,
    # and the simulated model time held the slot.
    assert stats["max_queued"] == 2 and stats["service_ms_ewma"] >= 200
    assert stats["max_in_flight"] == 3 and stats["reviews"] == 6
    assert stats["input_tokens"] == sum(r["usage"]["inputTokens"] for r in responses)
    assert stats["output_tokens"] == sum(r["usage"]["outputTokens"] for r in responses)
    assert stats["latency_ms_sum"] >= 3 * 200 and stats["latency_ms_max"] >= 600
    assert {"by_operation", "errors", "faults", "queued", "quota_window", "backend"} <= set(stats)
