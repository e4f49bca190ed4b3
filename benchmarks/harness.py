"""What every benchmark needs: the local stack, an isolated stream and indices per run, the real producer and
dataflow as subprocesses, a sampler of the Bedrock server's live stats, and the results read back.

Numbers come from the outside of the pipeline: documents in OpenSearch (their arrival, processing and model
times), the Bedrock server's counters (requests, throttles, tokens, in-flight) and the kernel's CPU
accounting of the dataflow process.
"""

from __future__ import annotations

import contextlib
import os
import resource
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson
import urllib3
from opensearchpy import OpenSearch, helpers

from devstack.processes import free_port
from devstack.stack import LocalStack, StackConfig, create_stream

ROOT = Path(__file__).resolve().parent.parent
HTTP = urllib3.PoolManager()
DEFAULT_KNOBS: dict[str, Any] = {
    "latency_ms": 0,
    "latency_mean_ms": 0,
    "latency_distribution": "lognormal",
    "latency_median_ms": 0,
    "latency_sigma": 0,
    "throttle_rate": 0,
    "error_rate": 0,
    "timeout_rate": 0,
    "malformed_rate": 0,
    "rpm": 0,
    "tpm": 0,
    "output_burndown": 0,
    "straggler_marker": "",
    "straggler_ms": 0,
    "max_concurrency": 0,
}


def parse_time(value: str) -> float:
    return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]


@dataclass
class Sampler:
    """Polls the Bedrock server's /_admin/stats every `interval` seconds in a thread."""

    url: str
    interval: float = 0.05
    samples: list[tuple[float, dict[str, Any]]] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)

    def __enter__(self) -> Sampler:
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._stop.is_set():
            with contextlib.suppress(Exception):
                self.samples.append((time.time(), stats(self.url)))
            self._stop.wait(self.interval)


def spawn_flow(args: list[str], env: dict[str, str], log: Any, cwd: Path | None = None) -> subprocess.Popen:
    """`python -m bytewax.run ARGS` in its own process group (so a benchmark can stop it whole), output to `log`."""
    return subprocess.Popen(
        [sys.executable, "-m", "bytewax.run", *args],
        env=env,
        cwd=cwd or ROOT,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process, all threads (fields 14 and 15 of /proc/<pid>/stat)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def waiting_flow_cpu(
    module: str, env: dict[str, str], root: Path, settle_s: float, seconds: float, workers: int = 2
) -> float:
    """Cores used by `python -m bytewax.run <module> -w <workers>` over `seconds`, after `settle_s` of start-up
    (imports, building the flow); for flows that only wait, so start-up is not counted as waiting."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "bytewax.run", module, "-w", str(workers)],
        env=env,
        cwd=root,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        time.sleep(settle_s)
        assert proc.poll() is None, f"{module} exited during its start-up"
        first, begin = cpu_seconds(proc.pid), time.monotonic()
        time.sleep(seconds)
        return (cpu_seconds(proc.pid) - first) / (time.monotonic() - begin)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def stats(bedrock_url: str) -> dict[str, Any]:
    return orjson.loads(HTTP.request("GET", f"{bedrock_url}/_admin/stats").data)


@dataclass
class Run:
    """One isolated pipeline: a fresh stream and indices on the shared stack."""

    bench: Bench
    env: dict[str, str]

    @property
    def bedrock_url(self) -> str:
        assert self.bench.stack.bedrock is not None
        return self.bench.stack.bedrock.url

    def produce(self, count: int, rate: float = 0, seed: int = 11, wait: bool = True) -> subprocess.Popen | None:
        cmd = [sys.executable, str(ROOT / "producer" / "main.py"), "--synthetic", str(count), "--seed", str(seed)]
        cmd += ["--quiet", "--rate", str(rate)]
        proc = subprocess.Popen(cmd, env=self.env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        if wait:
            assert proc.wait(timeout=600) == 0, "producer failed"
            return None
        return proc

    def put_raw(self, records: list[bytes]) -> None:
        import boto3

        client = boto3.client(
            "kinesis",
            endpoint_url=self.env["AWS_ENDPOINT_URL_KINESIS"],
            region_name=self.env["AWS_REGION"],
            aws_access_key_id=self.env["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=self.env["AWS_SECRET_ACCESS_KEY"],
        )
        entries = [{"Data": r, "PartitionKey": f"raw-{i}"} for i, r in enumerate(records)]
        client.put_records(StreamName=self.env["KINESIS_STREAM_NAME"], Records=entries)

    def flow(
        self,
        *args: str,
        module: str = "dataflow.flow",
        duration: float | None = None,
        extra_env: dict[str, str] | None = None,
        timeout: float = 900,
    ) -> dict[str, float]:
        """Run the dataflow; stop it after `duration` s (else it ends by KINESIS_STOP_AT_END).

        Returns wall time and the CPU seconds (user + system) of the dataflow process.
        """
        env = {**self.env, **(extra_env or {})}
        if duration is not None:
            env["KINESIS_STOP_AT_END"] = "false"
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        started = time.time()
        log = open(self.bench.log_dir / f"{env['KINESIS_STREAM_NAME']}.log", "ab")  # noqa: SIM115
        proc = spawn_flow([module, *args], env, log)
        try:
            proc.wait(timeout=duration if duration is not None else timeout)
        except subprocess.TimeoutExpired:
            if duration is None:
                raise
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=30)
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
            log.close()
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
        return {"started": started, "wall_s": time.time() - started, "cpu_s": cpu}

    def cluster(
        self,
        processes: int,
        *args: str,
        extra_env: dict[str, str] | None = None,
        duration: float | None = None,
        timeout: float = 900,
    ) -> dict[str, float]:
        """Run the dataflow as `processes` cooperating processes (-i/-a), each with `args` (e.g. -w 2); stop
        them after `duration` s (else they end by KINESIS_STOP_AT_END). Returns start and wall time."""
        addresses = ";".join(f"127.0.0.1:{free_port()}" for _ in range(processes))
        env = {**self.env, **(extra_env or {})}
        if duration is not None:
            env["KINESIS_STOP_AT_END"] = "false"
        started = time.time()
        log = open(self.bench.log_dir / f"{env['KINESIS_STREAM_NAME']}.log", "ab")  # noqa: SIM115
        procs = [
            subprocess.Popen(
                [sys.executable, "-m", "bytewax.run", "dataflow.flow", "-i", str(i), "-a", addresses, *args],
                env=env,
                cwd=ROOT,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
            for i in range(processes)
        ]
        try:
            if duration is not None:
                time.sleep(duration)
                for proc in procs:
                    os.killpg(proc.pid, signal.SIGTERM)
                for proc in procs:
                    proc.wait(timeout=60)
            else:
                for proc in procs:
                    assert proc.wait(timeout=timeout) == 0, "a dataflow process failed"
        finally:
            for proc in procs:
                if proc.poll() is None:
                    os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait()
            log.close()
        return {"started": started, "wall_s": time.time() - started}

    @property
    def opensearch(self) -> OpenSearch:
        return OpenSearch(hosts=[self.env["OPENSEARCH_URL"]], timeout=60)

    def documents(self) -> list[dict[str, Any]]:
        client = self.opensearch
        index = self.env["OPENSEARCH_INDEX"]
        if not client.indices.exists(index=index):
            return []
        client.indices.refresh(index=index)
        return [h["_source"] for h in helpers.scan(client, index=index, query={"query": {"match_all": {}}})]

    def dead_letters(self) -> int:
        client = self.opensearch
        index = self.env["OPENSEARCH_DLQ_INDEX"]
        if not client.indices.exists(index=index):
            return 0
        client.indices.refresh(index=index)
        return int(client.count(index=index)["count"])


class Bench:
    """The local stack (lexicon backend) shared by every benchmark of one session."""

    def __init__(self, log_dir: Path) -> None:
        self.log_dir = log_dir
        log_dir.mkdir(parents=True, exist_ok=True)
        self.stack = LocalStack(StackConfig(shards=1, backend="lexicon", log_dir=log_dir))

    def __enter__(self) -> Bench:
        self.stack.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stack.stop()

    def knobs(self, **knobs: Any) -> None:
        assert self.stack.bedrock is not None
        body = orjson.dumps({**DEFAULT_KNOBS, **knobs})
        resp = HTTP.request("POST", f"{self.stack.bedrock.url}/_admin/config", body=body)
        assert resp.status == 200, resp.data
        HTTP.request("POST", f"{self.stack.bedrock.url}/_admin/reset")

    @contextlib.contextmanager
    def run(self, shards: int = 4, **env: str) -> Iterator[Run]:
        name = f"bench-{uuid.uuid4().hex[:8]}"
        assert self.stack.kinesis is not None
        create_stream(self.stack.kinesis.url, name, shards)
        base = {
            **os.environ,
            **self.stack.env(),
            "KINESIS_STREAM_NAME": name,
            "KINESIS_STOP_AT_END": "true",
            "KINESIS_DISCOVERY_INTERVAL_S": "5",
            "KINESIS_POLL_INTERVAL_S": "0.2",
            "OPENSEARCH_INDEX": f"{name}-processed",
            "OPENSEARCH_DLQ_INDEX": f"{name}-dlq",
            "METRICS_PORT": "0",
            "LOG_LEVEL": "INFO",
            "PYTHONPATH": str(ROOT),
        }
        run = Run(self, {**base, **env})
        try:
            yield run
        finally:
            with contextlib.suppress(Exception):
                run.opensearch.indices.delete(index=f"{name}-*")
