"""The production Bedrock client factory (`dataflow.enrich.bedrock.aiobotocore_client`) against the local server.

The dataflow tests inject a fake client and the other devstack tests build their own, so only these tests see
how the client the pipeline really uses behaves on the wire: one HTTP request per call, whatever the error,
because the enrichment engine owns retries (botocore retrying on its own would hide throttles from the
concurrency window and double a throttle storm).
"""

from __future__ import annotations

import collections

import pytest
from botocore.exceptions import ClientError

from dataflow.enrich.bedrock import aiobotocore_client
from dataflow.enrich.engine import EnrichEngine
from dataflow.enrich.prompt import build_converse_request
from dataflow.records import DeadLetter, Review
from dataflow.settings import load_settings
from tests.devstack.conftest import MODEL_ID, admin, run


@pytest.fixture()
def production_env(bedrock_url: str, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("AWS_ENDPOINT_URL_BEDROCK_RUNTIME", bedrock_url)
    return bedrock_url


def _settings(**env: str):
    base = {
        "BEDROCK_MODEL_ID": MODEL_ID,
        "BEDROCK_TIMEOUT_S": "10",
        "BEDROCK_BACKOFF_BASE_S": "0.01",
        "BEDROCK_BACKOFF_MAX_S": "0.02",
        "METRICS_PORT": "0",
    }
    return load_settings({**base, **env})


@pytest.mark.parametrize(
    ("code", "status"),
    [("ThrottlingException", 429), ("ServiceUnavailableException", 503), ("InternalServerException", 500)],
)
def test_one_server_request_per_call(production_env: str, code: str, status: int) -> None:
    admin(production_env, "/_admin/config", {"fail_with": code})
    settings = _settings()

    async def call() -> ClientError:
        async with aiobotocore_client(settings) as client:
            with pytest.raises(ClientError) as caught:
                await client.converse(**build_converse_request(MODEL_ID, ["Great kettle."], 120))
            return caught.value

    err = run(call())
    assert err.response["Error"]["Code"] == code
    assert err.response["ResponseMetadata"]["HTTPStatusCode"] == status
    stats = admin(production_env, "/_admin/stats")
    assert stats["by_operation"].get("converse") == 1, stats["by_operation"]


def test_engine_attempts_equal_server_requests(production_env: str) -> None:
    admin(production_env, "/_admin/config", {"fail_with": "InternalServerException"})
    settings = _settings(BEDROCK_MAX_ATTEMPTS="3")
    engine = EnrichEngine(settings, aiobotocore_client, worker="production-client-test")
    done: collections.deque = collections.deque()
    review = Review("r1", "u1", "2024-01-01T00:00:00.000Z", "Great kettle.", "shardId-0", "1", 0)
    try:
        engine.submit([review], done)
        while not done:  # pytest-timeout bounds it
            engine.wait_changed(1.0)
    finally:
        engine.close()
    [(_, letter)] = list(done)
    assert isinstance(letter, DeadLetter) and letter.attempts == 3
    stats = admin(production_env, "/_admin/stats")
    assert stats["by_operation"].get("converse") == 3, stats["by_operation"]
