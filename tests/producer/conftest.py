"""Producer fixtures: a fresh stream on the session's moto server, the fault proxy, an in-process runner."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import pytest

from producer.main import main
from tests.fault_proxy import FaultProxy
from tests.producer.put_faults import PutRecordsFaults, parse_summary

SHARDS = 2


@pytest.fixture()
def stream(kinesis_client, stream_name: str) -> Iterator[str]:
    """A new ACTIVE stream with SHARDS shards, deleted afterwards."""
    kinesis_client.create_stream(StreamName=stream_name, ShardCount=SHARDS)
    kinesis_client.get_waiter("stream_exists").wait(
        StreamName=stream_name, WaiterConfig={"Delay": 0.1, "MaxAttempts": 100}
    )
    yield stream_name
    with contextlib.suppress(Exception):
        kinesis_client.delete_stream(StreamName=stream_name, EnforceConsumerDeletion=True)


@pytest.fixture()
def fault_proxy(kinesis_server) -> Iterator[PutRecordsFaults]:
    """PutRecords failures on demand, injected by the shared fault proxy in front of the session's moto."""
    faults = PutRecordsFaults()
    with FaultProxy(kinesis_server.url, handle=faults.handle) as proxy:
        faults.url = proxy.url
        yield faults


@dataclass
class Run:
    code: int
    summary: dict[str, str]
    stdout: str


@pytest.fixture()
def run_producer(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> Callable[..., Run]:
    """Run `producer.main.main(argv)` in-process against `endpoint` (set the standard way: the env var)."""

    def run(endpoint: str, *argv: str) -> Run:
        monkeypatch.setenv("AWS_ENDPOINT_URL_KINESIS", endpoint)
        capsys.readouterr()
        code = main(["--quiet", "--backoff-base", "0.001", "--backoff-max", "0.01", *argv])
        out = capsys.readouterr().out
        lines = out.strip().splitlines()
        return Run(code, parse_summary(lines[-1]) if lines else {}, out)

    return run
