"""Three kinds of failure, three answers, in the flow: congestion is retried, a bad review is dead-lettered, a bad
configuration halts the flow without dead-lettering anything (docs/DESIGN.md section 3)."""

from __future__ import annotations

import contextlib
import re
from typing import Any

import pytest
from bytewax.testing import run_main
from prometheus_client import REGISTRY

from tests.dataflow.helpers import flow_with, ids, record, run_flow, settings
from tests.fakes import FakeBedrock


def run_until_halt(flow: Any) -> str:
    """Run a flow that must stop with an error; the messages of the whole cause chain (Bytewax wraps it)."""
    with pytest.raises(Exception) as caught:
        run_main(flow)
    messages = []
    err: BaseException | None = caught.value
    while err is not None:
        messages.append(str(err))
        err = err.__cause__ or err.__context__
    return " | ".join(messages)


def sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def test_access_denied_halts_without_dead_letters() -> None:
    bedrock = FakeBedrock(behaviour=lambda n, reviews: "denied")
    results: list = []
    dead: list = []
    flow, registry = flow_with([record(n) for n in range(6)], bedrock, settings(), results, dead)
    try:
        message = run_until_halt(flow)
        assert re.search(r"BEDROCK_MODEL_ID=.*grant bedrock:InvokeModel", message), message
    finally:
        registry.close()
    assert results == [] and dead == []  # the stream is not turned into dead letters
    assert 3 <= bedrock.calls <= 6 + 3  # it stopped after a few, not after every review's budget


def test_unknown_model_id_halts_naming_the_setting() -> None:
    bedrock = FakeBedrock()
    results: list = []
    dead: list = []
    cfg = settings(BEDROCK_MODEL_ID="anthropic.claude-does-not-exist")
    flow, registry = flow_with([record(n) for n in range(4)], bedrock, cfg, results, dead)
    try:
        message = run_until_halt(flow)
        assert re.search(r"BEDROCK_MODEL_ID=anthropic.claude-does-not-exist", message), message
    finally:
        registry.close()
    assert dead == []


def test_a_few_config_errors_then_success_lose_nothing() -> None:
    # Two denials (fewer than the halting count), then the access mapping appears: everything is indexed.
    bedrock = FakeBedrock(behaviour=lambda n, reviews: "denied" if n <= 2 else None)
    results, dead = run_flow([record(n) for n in range(5)], bedrock, settings(BEDROCK_MAX_CONCURRENCY=1))
    assert dead == [] and sorted(ids(results)) == [f"r{n}" for n in range(5)]


def test_validation_error_on_a_packed_request_falls_back_to_one_by_one() -> None:
    def behaviour(n: int, reviews: list[tuple[str, str]]) -> str | None:
        return "too_long" if any("TOO LONG" in text for _, text in reviews) else None

    items = [record(n) for n in range(12)] + [record(99, text="TOO LONG " * 20)]
    bedrock = FakeBedrock(behaviour=behaviour)
    results, dead = run_flow(items, bedrock, settings(BEDROCK_REVIEWS_PER_REQUEST=4))
    assert sorted(ids(results)) == sorted(f"r{n}" for n in range(12))
    assert [(d.doc_id, d.error_type) for d in dead] == [("r99", "ValidationException")]
    assert "too long" in dead[0].error


def test_invalid_answer_retry_names_the_error_and_warms_up() -> None:
    # A deterministic model (temperature 0): the same request always gets the same broken answer; only a
    # retry that changes the request can succeed.
    def behaviour(n: int, reviews: list[tuple[str, str]]) -> str | None:
        return None if "previous answer" in last_prompt[0] else "garbage"

    last_prompt = [""]
    bedrock = FakeBedrock(behaviour=behaviour)
    original = bedrock.converse

    def user_text(request: dict[str, Any]) -> str:
        return str([m for m in request["messages"] if m["role"] == "user"][-1]["content"][0]["text"])

    async def converse(**kwargs: Any) -> dict[str, Any]:
        last_prompt[0] = user_text(kwargs)
        return await original(**kwargs)

    bedrock.converse = converse  # type: ignore[method-assign]
    results, dead = run_flow([record(1)], bedrock, settings())
    assert dead == [] and ids(results) == ["r1"] and results[0].attempts == 2
    first, second = bedrock.requests
    assert first["inferenceConfig"]["temperature"] == 0.0 and second["inferenceConfig"]["temperature"] > 0.0
    assert "answer is not valid JSON" in user_text(second)


def test_the_same_invalid_answer_twice_stops_early() -> None:
    bedrock = FakeBedrock(behaviour=lambda n, reviews: "garbage")
    original = bedrock.converse

    async def converse(**kwargs: Any) -> dict[str, Any]:
        response = await original(**kwargs)
        response["output"]["message"]["content"] = [{"text": "I cannot help with that."}]
        return response

    bedrock.converse = converse  # type: ignore[method-assign]
    results, dead = run_flow([record(1)], bedrock, settings(BEDROCK_MAX_ATTEMPTS=5))
    assert results == [] and [d.attempts for d in dead] == [2]
    assert "same invalid answer" in dead[0].error


def test_truncated_and_shapeless_answers_are_retried() -> None:
    bedrock = FakeBedrock(behaviour=lambda n, reviews: "no_content" if n == 1 else None)
    before = sample("reviewstream_bedrock_requests_total", outcome="invalid")
    results, dead = run_flow([record(1)], bedrock, settings(BEDROCK_MAX_CONCURRENCY=1))
    assert dead == [] and ids(results) == ["r1"] and results[0].attempts == 2
    assert sample("reviewstream_bedrock_requests_total", outcome="invalid") - before == 1

    # A malformed usage block costs nothing we can count, but the answer itself is good: kept at once.
    bedrock = FakeBedrock(behaviour=lambda n, reviews: "bad_usage")
    results, dead = run_flow([record(1)], bedrock, settings())
    assert dead == [] and results[0].attempts == 1 and results[0].input_tokens == 0

    # A response shape that makes the handling itself fail must not strand the review (the run would hang).
    bedrock = FakeBedrock(behaviour=lambda n, reviews: "bad_metrics" if n == 1 else None)
    results, dead = run_flow([record(1)], bedrock, settings())
    assert dead == [] and ids(results) == ["r1"] and results[0].attempts == 2

    # An answer longer than maxTokens comes back cut off with stopReason max_tokens: never accepted.
    bedrock = FakeBedrock(behaviour=lambda n, reviews: "verbose")
    results, dead = run_flow([record(1)], bedrock, settings(BEDROCK_MAX_ATTEMPTS=2))
    assert results == [] and dead[0].error_type == "invalid_answer:truncated"


@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")
def test_a_dead_engine_stops_the_flow_instead_of_hanging() -> None:
    bedrock = FakeBedrock(behaviour=lambda n, reviews: "exit")
    results: list = []
    dead: list = []
    flow, registry = flow_with([record(1), record(2)], bedrock, settings(), results, dead)
    try:
        message = run_until_halt(flow)
        assert re.search(r"stopped unexpectedly", message), message
    finally:
        registry.close()
    assert results == [] and dead == []


def test_client_start_up_error_stops_the_flow() -> None:
    @contextlib.asynccontextmanager
    async def broken(settings: Any):
        raise RuntimeError("no route to the Bedrock endpoint")
        yield  # pragma: no cover

    class Broken:
        def factory(self) -> Any:
            return broken

    results: list = []
    dead: list = []
    flow, registry = flow_with([record(1)], Broken(), settings(), results, dead)
    try:
        message = run_until_halt(flow)
        assert re.search(r"cannot create the Bedrock client: no route", message), message
    finally:
        registry.close()


def test_metrics_count_what_happened() -> None:
    before = {
        "enriched": sample("reviewstream_reviews_enriched_total"),
        "dead": sample("reviewstream_dead_letters_total", stage="enrich", error_type="ValidationException"),
        "throttles": sample("reviewstream_bedrock_throttles_total"),
    }
    behaviour = {1: "throttle"}

    def fault(n: int, reviews: list[tuple[str, str]]) -> str | None:
        if any("TOO LONG" in t for _, t in reviews):
            return "too_long"
        return behaviour.get(n)

    items = [record(n) for n in range(4)] + [record(9, text="TOO LONG")]
    results, dead = run_flow(items, FakeBedrock(behaviour=fault), settings(BEDROCK_MAX_CONCURRENCY=1))
    assert len(results) == 4 and len(dead) == 1
    assert sample("reviewstream_reviews_enriched_total") - before["enriched"] == 4
    dead_now = sample("reviewstream_dead_letters_total", stage="enrich", error_type="ValidationException")
    assert dead_now - before["dead"] == 1
    assert sample("reviewstream_bedrock_throttles_total") - before["throttles"] == 1
