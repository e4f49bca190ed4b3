"""Structured output (`outputConfig`) and service tiers on the local Bedrock server, through aiobotocore."""

from __future__ import annotations

import asyncio
import time

import orjson
import pytest
from botocore.exceptions import ClientError

from dataflow.enrich.prompt import ReviewAnswer, build_converse_request, parse_answer
from devstack.bedrock.admission import Admission
from tests.devstack.conftest import MODEL_ID, admin, bedrock_client, run

GOOD = "I love this kettle. It boils water fast and looks great on the counter!"
BAD = "Terrible quality. It broke after two days and nobody answered."
NOVA = "amazon.nova-micro-v1:0"


def _schema_request(schema: object, model_id: str = MODEL_ID) -> dict:
    request = build_converse_request(model_id, [GOOD], 120, structured=True)
    request["outputConfig"]["textFormat"]["structure"]["jsonSchema"]["schema"] = (
        schema if isinstance(schema, str) else orjson.dumps(schema).decode()
    )
    return request


def _string_schema(constraints: dict) -> dict:
    """An object with one string property carrying `constraints` (otherwise valid)."""
    field = {"type": "string", **constraints}
    return {"type": "object", "properties": {"a": field}, "required": ["a"], "additionalProperties": False}


def test_supported_keywords_are_accepted_even_as_property_names(bedrock_url: str) -> None:
    schema = _string_schema({"pattern": "^[^.!?\\n]+[.!?]$", "enum": ["A b."]})
    schema["properties"]["maxLength"] = {"type": "string"}  # a property named like a keyword is just a name
    schema["required"].append("maxLength")

    async def scenario() -> dict:
        async with bedrock_client(bedrock_url) as client:
            return await client.converse(**_schema_request(schema))

    assert run(scenario())["stopReason"] == "end_turn"


def _refusal(request: dict, url: str) -> tuple[str, int, str]:
    async def scenario() -> tuple[str, int, str]:
        async with bedrock_client(url) as client:
            try:
                await client.converse(**request)
            except ClientError as err:
                meta = err.response
                return meta["Error"]["Code"], meta["ResponseMetadata"]["HTTPStatusCode"], meta["Error"]["Message"]
            raise AssertionError("the request was accepted")

    return run(scenario())


def test_structured_answer_is_keyed_by_id_and_names_the_tier(bedrock_url: str) -> None:
    async def scenario() -> dict:
        async with bedrock_client(bedrock_url) as client:
            return await client.converse(**build_converse_request(MODEL_ID, [GOOD, BAD], 120, structured=True))

    response = run(scenario())
    text = response["output"]["message"]["content"][0]["text"]
    assert sorted(orjson.loads(text)) == ["1", "2"]
    answers = parse_answer(text, 2, prefilled=False)
    assert isinstance(answers[1], ReviewAnswer) and answers[1].sentiment == "positive"
    assert isinstance(answers[2], ReviewAnswer) and answers[2].sentiment == "negative"
    assert response["serviceTier"] == {"type": "default"}


@pytest.mark.parametrize(
    "schema,needle",
    [
        ({"type": "object", "properties": {"a": {"type": "string"}}}, "additionalProperties"),
        (
            {
                "type": "object",
                "properties": {"a": {"type": "object", "properties": {}}},
                "additionalProperties": False,
            },
            "additionalProperties",
        ),
        ("{not json", "invalid"),
        ([1, 2], "invalid"),
        (_string_schema({"maxLength": 200}), "maxLength"),
        (_string_schema({"minLength": 1}), "minLength"),
        (_string_schema({"pattern": "^(a)\\1$"}), "regex"),
        (_string_schema({"pattern": "^(?!x).+$"}), "regex"),
        (_string_schema({"pattern": "^[a-$"}), "compile"),
    ],
)
def test_invalid_schemas_are_refused_as_bedrock_does(bedrock_url: str, schema: object, needle: str) -> None:
    code, status, message = _refusal(_schema_request(schema), bedrock_url)
    assert (code, status) == ("ValidationException", 400) and needle in message


def test_structured_output_on_a_model_without_it_is_refused(bedrock_url: str) -> None:
    request = build_converse_request("anthropic.claude-3-haiku-20240307-v1:0", [GOOD], 120, structured=True)
    code, status, message = _refusal(request, bedrock_url)
    assert (code, status) == ("ValidationException", 400) and "not supported" in message


def test_a_tier_the_model_does_not_offer_is_refused(bedrock_url: str) -> None:
    code, status, message = _refusal(build_converse_request(MODEL_ID, [GOOD], 120, service_tier="flex"), bedrock_url)
    assert (code, status) == ("ValidationException", 400) and "flex" in message

    async def scenario() -> dict:
        async with bedrock_client(bedrock_url) as client:
            return await client.converse(**build_converse_request(NOVA, [GOOD], 120, service_tier="flex"))

    assert run(scenario())["serviceTier"] == {"type": "flex"}
    assert admin(bedrock_url, "/_admin/stats")["by_tier"] == {"flex": 1}


def test_the_first_use_of_a_schema_waits_for_its_compile(bedrock_url: str) -> None:
    admin(bedrock_url, "/_admin/config", {"schema_compile_ms": 400})

    async def timed(count: int) -> float:
        async with bedrock_client(bedrock_url) as client:
            started = time.monotonic()
            await client.converse(**build_converse_request(MODEL_ID, [GOOD] * count, 120, structured=True))
            return time.monotonic() - started

    first, again, other = run(timed(3)), run(timed(3)), run(timed(4))
    assert first >= 0.4 and again < 0.3 and other >= 0.4
    assert admin(bedrock_url, "/_admin/stats")["schema_compiles"] == 2


def test_flex_waits_behind_the_other_tiers() -> None:
    async def scenario() -> list[str]:
        admission, order = Admission(slots=1), []

        async def one(tier: str, hold: float) -> None:
            async with admission.slot(tier):
                order.append(tier)
                await asyncio.sleep(hold)

        first = asyncio.create_task(one("default", 0.05))
        await asyncio.sleep(0.01)
        waiting = [asyncio.create_task(one(t, 0.0)) for t in ("flex", "default", "priority", "flex")]
        await asyncio.gather(first, *waiting)
        return order

    assert run(scenario()) == ["default", "priority", "default", "flex", "flex"]


def test_the_packing_benchmark_asks_a_bedrock_endpoint_through_boto3(
    bedrock_url: str, tmp_path: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`packing_quality --bedrock` is the labelled 1-versus-8 comparison on Claude; here it runs on the local server."""
    import csv
    import json

    from benchmarks import packing_quality

    reviews = tmp_path / "reviews.csv"  # type: ignore[operator]
    with reviews.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["review", "sentiment"])
        for n in range(8):
            writer.writerows([[f"{GOOD} Number {n}.", "positive"], [f"{BAD} Number {n}.", "negative"]])
    for name, value in {
        "AWS_ENDPOINT_URL_BEDROCK_RUNTIME": bedrock_url,
        "AWS_ACCESS_KEY_ID": "local",
        "AWS_SECRET_ACCESS_KEY": "local",
        "AWS_DEFAULT_REGION": "us-east-1",
    }.items():
        monkeypatch.setenv(name, value)
    records = tmp_path / "records.jsonl"  # type: ignore[operator]
    # 12 reviews: at 8 per request, one full request and a last one of 4
    args = [str(reviews), "--bedrock", "--skip", "0", "--count", "12", "--packs", "1,8", "--records", str(records)]
    assert packing_quality.main(args) == 0
    rows = [json.loads(line) for line in records.read_text().splitlines()]
    assert len(rows) == 12 * 4 and all("sentiment" in r and r["input_tokens"] > 0 for r in rows)
    summary = {(s["pack"], s["structured"]): s for s in packing_quality.summarise([records])}
    assert summary[(8, True)]["invalid_requests"] == "0/2" and summary[(1, False)]["invalid_requests"] == "0/12"
    assert summary[(8, True)]["reviews"] == 12  # the short last request counts: it is complete
    assert summary[(8, True)]["agreement"] == summary[(1, False)]["agreement"] == 1.0  # the lexicon agrees
    assert summary[(8, True)]["vs_1_off"]["points"] == 0.0
    assert admin(bedrock_url, "/_admin/stats")["requests"] == 12 + 12 + 2 + 2
    # A run killed while writing a request leaves it short of its size: that configuration is left out.
    cut = tmp_path / "cut.jsonl"  # type: ignore[operator]
    cut.write_text("".join(json.dumps(r) + "\n" for r in rows if not (r["pack"] == 8 and r["row"] == 11)))
    assert {(s["pack"], s["structured"]) for s in packing_quality.summarise([cut])} == {(1, False), (1, True)}
