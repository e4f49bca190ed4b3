"""What the fault tests count and check: the stream's contents, both indices, the Bedrock server's stats.

The invariant (docs/DESIGN.md section 2 and "Nothing lost"): every record put on the stream is a document in the
results index or a dead letter in the DLQ, never both, never neither, and no review has two documents.
"""

from __future__ import annotations

import os
import signal
import subprocess
from collections import Counter
from collections.abc import Callable, Hashable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import urllib3

from tests.plugins.stack import Pipeline
from tests.support.kinesis import StreamRecord, kinesis_client, read_records
from tests.support.kinesis import put_raw as kinesis_put_raw
from tests.support.waiting import wait_until as shared_wait_until

# A model's latency varies on its own: every fault test runs on a noisy one (exponential, mean 10 ms) unless it
# sets its own, since a constant latency is the friendly case for the latency window.
NO_FAULTS: dict[str, object] = {
    "latency_ms": 0,
    "latency_mean_ms": 10,
    "latency_distribution": "exponential",
    "latency_median_ms": 0,
    "throttle_rate": 0,
    "error_rate": 0,
    "timeout_rate": 0,
    "timeout_hold_s": 10.0,
    "malformed_rate": 0,
    "fail_with": None,
    "rpm": 0,
    "tpm": 0,
    "max_concurrency": 0,
}


def kinesis(pipeline: Pipeline) -> Any:
    return kinesis_client(pipeline.env["AWS_ENDPOINT_URL_KINESIS"])


def put_raw(pipeline: Pipeline, records: list[bytes], prefix: str = "raw") -> list[tuple[str, str]]:
    """Put records as they are on the pipeline's stream; returns (shard id, sequence number) of each, in order."""
    return kinesis_put_raw(kinesis(pipeline), pipeline.env["KINESIS_STREAM_NAME"], records, prefix)


def read_stream(pipeline: Pipeline) -> list[StreamRecord]:
    """Every record in every shard (closed parents included), read straight from the local Kinesis."""
    return read_records(kinesis(pipeline), pipeline.env["KINESIS_STREAM_NAME"])


def documents(pipeline: Pipeline, index_env: str = "OPENSEARCH_INDEX") -> dict[str, dict[str, Any]]:
    """`_id` -> `_source` of every document of an index (the suite stays far below 10,000)."""
    client = pipeline.opensearch
    index = pipeline.env[index_env]
    if not client.indices.exists(index=index):
        return {}
    client.indices.refresh(index=index)
    hits = client.search(index=index, body={"query": {"match_all": {}}, "size": 10_000})["hits"]
    assert len(hits["hits"]) < 10_000
    return {h["_id"]: h["_source"] for h in hits["hits"]}


def _admin(pipeline: Pipeline, method: str, path: str, body: object | None = None) -> dict[str, Any]:
    assert pipeline.stack.bedrock is not None
    resp = urllib3.PoolManager().request(
        method, f"{pipeline.stack.bedrock.url}/_admin/{path}", body=None if body is None else orjson.dumps(body)
    )
    assert resp.status == 200, resp.data
    return orjson.loads(resp.data)


def bedrock_stats(pipeline: Pipeline) -> dict[str, Any]:
    return _admin(pipeline, "GET", "stats")


def bedrock_answered(pipeline: Pipeline) -> list[tuple[float, str]]:
    """What the local Bedrock answered since its reset, review by review: (time.monotonic(), text fingerprint)."""
    return [(float(at), str(print_)) for at, print_ in _admin(pipeline, "GET", "answered")["answered"]]


def answered_again(answered: list[tuple[float, str]]) -> list[tuple[float, str]]:
    """The answers (`bedrock_answered`) given to a review the model had answered before: a review asked for twice
    more shows twice."""
    seen: set[str] = set()
    again = []
    for at, print_ in answered:
        if print_ in seen:
            again.append((at, print_))
        seen.add(print_)
    return again


def reset_bedrock(pipeline: Pipeline) -> None:
    """No faults, the small noisy latency, zeroed stats: each test's counts are its own (tests run one at a time)."""
    _admin(pipeline, "POST", "config", NO_FAULTS)
    _admin(pipeline, "POST", "reset")


def bedrock_summary(pipeline: Pipeline) -> str:
    stats = bedrock_stats(pipeline)
    errors = ",".join(f"{k}:{v}" for k, v in sorted(stats["errors"].items())) or "none"
    faults = ",".join(f"{k}:{v}" for k, v in sorted(stats["faults"].items())) or "none"
    return (
        f"bedrock_requests={stats['requests']} completed={stats['completed']} "
        f"throttled={stats['throttles']} errors={errors} faults={faults}"
    )


@dataclass
class Accounting:
    records_in: int
    indexed: dict[str, dict[str, Any]]
    dead: dict[str, dict[str, Any]]
    summary: str


def check_accounting(
    pipeline: Pipeline,
    expected_ids: set[str],
    label: str,
    record_property: Callable[[str, object], None],
    extra: str = "",
) -> Accounting:
    """Assert the invariant for `expected_ids` (one per record put), print and record one summary line."""
    stream = read_stream(pipeline)
    indexed = documents(pipeline)
    dead = documents(pipeline, "OPENSEARCH_DLQ_INDEX")
    most = max((int(doc.get("attempts", 0)) for doc in indexed.values()), default=0)
    summary = f"faults: {label} in={len(expected_ids)} indexed={len(indexed)} dlq={len(dead)} max_attempts={most}"
    summary = f"{summary} {extra}".strip()
    print(summary)
    record_property("faults_summary", summary)
    problems: list[str] = []
    if len(stream) != len(expected_ids):
        problems.append(f"the stream holds {len(stream)} records, the test put {len(expected_ids)}")
    both = indexed.keys() & dead.keys()
    missing = expected_ids - indexed.keys() - dead.keys()
    unknown = (indexed.keys() | dead.keys()) - expected_ids
    if both:
        problems.append(f"{len(both)} ids both indexed and dead-lettered: {sorted(both)[:10]}")
    if missing:
        lost = [r for r in stream if (r.review_id or f"{r.shard_id}-{r.sequence_number}") in missing]
        by_shard = Counter(r.shard_id for r in lost)
        problems.append(f"{len(missing)} records lost: {sorted(missing)[:10]} by shard {dict(by_shard)}")
    if unknown:
        problems.append(f"{len(unknown)} documents for ids never put: {sorted(unknown)[:10]}")
    per_review = Counter(str(doc.get("review_id")) for doc in indexed.values())
    twice = [rid for rid, n in per_review.items() if n > 1]
    if twice:
        problems.append(f"{len(twice)} reviews with two documents: {twice[:10]}")
    wrong_id = [i for i, doc in indexed.items() if str(doc.get("review_id")) != i]
    if wrong_id:
        problems.append(f"{len(wrong_id)} documents whose _id is not their review_id: {wrong_id[:10]}")
    if len(indexed) + len(dead) != len(expected_ids):
        problems.append(f"indexed + dlq = {len(indexed) + len(dead)} != records in {len(expected_ids)}")
    assert not problems, summary + "\n" + "\n".join(problems)
    return Accounting(len(expected_ids), indexed, dead, summary)


def synthetic_ids(count: int, seed: int = 7) -> set[str]:
    return {f"synthetic-{seed}-{i}" for i in range(count)}


def kill_group(proc: subprocess.Popen, sig: int = signal.SIGKILL) -> None:
    """Signal the flow's whole process group (it runs in its own session) and reap it."""
    if proc.poll() is None:  # once reaped, the pid may belong to someone else: never signal it then
        with suppress(ProcessLookupError):
            os.killpg(proc.pid, sig)
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        with suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=15)


@contextmanager
def flow_process(
    pipeline: Pipeline, *args: str, log: Path, extra_env: dict[str, str] | None = None
) -> Iterator[subprocess.Popen]:
    """The real flow as a subprocess; its process group is killed on the way out, whatever happened."""
    proc = pipeline.start_flow(*args, log=log, extra_env=extra_env)
    try:
        yield proc
    finally:
        kill_group(proc)


def wait_exit(
    proc: subprocess.Popen, log: Path, timeout: float = 60, progress: Callable[[], Hashable] | None = None
) -> None:
    """Wait for a flow that should end by itself (KINESIS_STOP_AT_END) and succeed.

    It fails only when the flow makes no progress for `timeout` seconds (`progress()`, e.g.
    `pipeline.progress`, stays the same), however long the whole run takes on a busy machine.
    """
    wait_until(
        lambda: proc.poll() is not None,
        timeout,
        "the flow to end",
        log,
        progress=progress,
    )
    code = proc.wait()
    assert code == 0, f"the flow exited with {code}; log tail:\n{log.read_text()[-3000:]}"


def log_size(log: Path) -> int:
    """A flow's log grows while it works: a progress signal for waits on a flow with no other."""
    return log.stat().st_size if log.exists() else 0


def wait_until(
    condition: Callable[[], bool],
    timeout: float,
    what: str,
    log: Path | None = None,
    progress: Callable[[], Hashable] | None = None,
) -> None:
    """Wait until `condition()`; fail after `timeout` s without `progress` (no progress given: a plain deadline)."""

    def tail() -> str:
        return f"log tail:\n{log.read_text()[-3000:]}" if log is not None and log.exists() else ""

    shared_wait_until(condition, what, stall_s=timeout, progress=progress, detail=tail)
