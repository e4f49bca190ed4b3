"""Pytest plugin: the whole local stack (Kinesis, OpenSearch, Bedrock-compatible server) and a pipeline on it.

Registered in tests/conftest.py (`pytest_plugins`), so any test can ask for `stack` or `pipeline` by name.
One stack per module (a package may override `stack` with a wider scope, as tests/faults does); every test
gets its own stream and indices, so tests never see each other's data.
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Callable, Hashable, Iterator
from dataclasses import dataclass
from pathlib import Path

import orjson
import pytest
import urllib3
from opensearchpy import OpenSearch

from devstack.stack import LocalStack, StackConfig, create_stream
from tests.support.waiting import wait_until

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    logs = tmp_path_factory.mktemp("stack-logs")
    with LocalStack(StackConfig(shards=1, backend="lexicon", log_dir=logs)) as running:
        yield running


@dataclass
class Pipeline:
    """One isolated pipeline on the shared stack: its stream, its indices, its environment."""

    env: dict[str, str]
    stack: LocalStack
    lengths: str = "realistic"  # synthetic review lengths: IMDB-like by default, as production sees them

    @property
    def opensearch(self) -> OpenSearch:
        return OpenSearch(hosts=[self.env["OPENSEARCH_URL"]], timeout=30)

    def bedrock_config(self, **knobs: object) -> None:
        assert self.stack.bedrock is not None
        http = urllib3.PoolManager()
        resp = http.request("POST", f"{self.stack.bedrock.url}/_admin/config", body=orjson.dumps(knobs))
        assert resp.status == 200, resp.data

    def produce(self, count: int, seed: int = 7, lengths: str | None = None) -> str:
        proc = subprocess.run(
            [
                sys.executable,
                str(ROOT / "producer" / "main.py"),
                "--synthetic",
                str(count),
                "--seed",
                str(seed),
                "--lengths",
                lengths or self.lengths,
                "--quiet",
            ],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert proc.returncode == 0, proc.stderr
        return proc.stdout

    def flow_command(self, *args: str) -> list[str]:
        return [sys.executable, "-m", "bytewax.run", "dataflow.flow", *args]

    def run_flow(self, *args: str, timeout: float = 180, extra_env: dict[str, str] | None = None) -> str:
        proc = subprocess.run(
            self.flow_command(*args),
            env={**self.env, **(extra_env or {})},
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        assert proc.returncode == 0, proc.stderr[-3000:]
        return proc.stderr

    def start_flow(self, *args: str, log: Path, extra_env: dict[str, str] | None = None) -> subprocess.Popen:
        with open(log, "wb") as out:  # the child keeps its own copy of the descriptor
            return subprocess.Popen(
                self.flow_command(*args),
                env={**self.env, **(extra_env or {})},
                cwd=ROOT,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def count(self, index_env: str = "OPENSEARCH_INDEX") -> int:
        client = self.opensearch
        index = self.env[index_env]
        if not client.indices.exists(index=index):
            return 0
        client.indices.refresh(index=index)
        return int(client.count(index=index)["count"])

    def ids(self, index_env: str = "OPENSEARCH_INDEX") -> list[str]:
        client = self.opensearch
        index = self.env[index_env]
        client.indices.refresh(index=index)
        hits = client.search(index=index, body={"query": {"match_all": {}}, "_source": False, "size": 10000})
        return [h["_id"] for h in hits["hits"]["hits"]]

    def progress(self) -> str:
        """What the flow has done so far, as the services saw it: changes whenever the flow moves."""
        assert self.stack.bedrock is not None
        http = urllib3.PoolManager()
        stats = orjson.loads(http.request("GET", f"{self.stack.bedrock.url}/_admin/stats").data)
        return (
            f"indexed={self.count()} dlq={self.count('OPENSEARCH_DLQ_INDEX')} "
            f"bedrock_requests={stats['requests']} completed={stats['completed']}"
        )

    def wait_for(
        self,
        condition: Callable[[], bool],
        timeout: float = 60,
        what: str = "condition",
        progress: Callable[[], Hashable] | None = None,
    ) -> None:
        """Wait until `condition()`; fail after `timeout` s without `progress` (default: the flow's progress)."""
        wait_until(condition, what, stall_s=timeout, progress=progress or self.progress, interval=0.3)


def recovery_args(directory: Path, workers: int = 2) -> tuple[str, ...]:
    """A fresh Bytewax recovery store in `directory` (one partition per worker) and the flow's arguments to use
    it: `workers` workers, a snapshot every second, no backup interval."""
    directory.mkdir()
    subprocess.run([sys.executable, "-m", "bytewax.recovery", str(directory), str(workers)], check=True, cwd=ROOT)
    return ("-w", str(workers), "-r", str(directory), "-s", "1", "-b", "0")


@pytest.fixture()
def pipeline(stack: LocalStack) -> Iterator[Pipeline]:
    name = f"reviews-{uuid.uuid4().hex[:8]}"
    shards = 4
    assert stack.kinesis is not None
    create_stream(stack.kinesis.url, name, shards)
    env = {
        **os.environ,
        **stack.env(),
        "KINESIS_STREAM_NAME": name,
        "KINESIS_STOP_AT_END": "true",
        "KINESIS_DISCOVERY_INTERVAL_S": "1",
        "KINESIS_POLL_INTERVAL_S": "0.3",
        "OPENSEARCH_INDEX": f"{name}-processed",
        "OPENSEARCH_DLQ_INDEX": f"{name}-dlq",
        "METRICS_PORT": "0",
        "BEDROCK_BACKOFF_BASE_S": "0.05",
        "BEDROCK_BACKOFF_MAX_S": "0.5",
        "PYTHONPATH": str(ROOT),
    }
    pipe = Pipeline(env, stack)
    pipe.bedrock_config(latency_ms=0, throttle_rate=0, error_rate=0, timeout_rate=0, malformed_rate=0)
    yield pipe
