"""OpenSearch answering 429 to a share of `_bulk` requests (whole request or per item) and going away
entirely, at start and mid-run: the sink retries until every document is stored, and a retried bulk never
duplicates (idempotent `_id`). The outages are driven by events, not by the clock: one ends once the sink
has been refused a few times, and the mid-run one is measured from the moment every request forwarded
before it has landed, so "nothing indexed during the outage" is exact on a busy machine too."""

from __future__ import annotations

import random
import threading
from collections.abc import Callable, Mapping
from pathlib import Path

import orjson
import pytest

from tests.fault_proxy import Decision, FaultProxy, Reply
from tests.faults.accounting import (
    bedrock_summary,
    check_accounting,
    flow_process,
    put_raw,
    synthetic_ids,
    wait_exit,
)
from tests.plugins.stack import Pipeline

pytestmark = [pytest.mark.faults, pytest.mark.integration, pytest.mark.slow]

SEED = 4242
BULK_429_RATE = 0.3
BULK_RETRIES_IN_OUTAGE = 3  # the outage lasts until the sink has been refused this many bulk requests
BAD = 5


def per_item_429(body: bytes) -> Reply:
    """A 200 whose every item is rejected with 429, as a node with a full write queue answers a bulk."""
    lines = [orjson.loads(line) for line in body.splitlines() if line.strip()]
    items = []
    for action in lines[::2]:  # action line, then the document
        op, meta = next(iter(action.items()))
        error = {"type": "es_rejected_execution_exception", "reason": "rejected execution (injected)"}
        items.append({op: {"_index": meta.get("_index"), "_id": meta.get("_id"), "status": 429, "error": error}})
    return Reply(200, orjson.dumps({"took": 1, "errors": True, "items": items}), "per_item_429")


class OpenSearchFaults:
    """Every request dropped while an outage is on; otherwise a seeded share of `_bulk` answered 429, either
    for the whole request or item by item inside a 200. Counts forwards still in flight (`on_done` tells
    when one has landed) and the `_bulk` requests dropped by the current outage."""

    def __init__(self) -> None:
        self.rng = random.Random(SEED)
        self.changed = threading.Condition()
        self.outage_on = False
        self.forwarding = 0
        self.dropped = 0  # requests dropped by the current outage
        self.bulk_dropped = 0  # of which `_bulk`

    def outage(self, on: bool) -> None:
        with self.changed:
            self.outage_on, self.dropped, self.bulk_dropped = on, 0, 0

    def wait(self, condition: Callable[[], bool], what: str, timeout: float = 90) -> None:
        with self.changed:
            assert self.changed.wait_for(condition, timeout), f"timed out waiting for {what}"

    def inspect(self, method: str, path: str, headers: Mapping[str, str], body: bytes) -> Decision:
        with self.changed:
            if self.outage_on:
                self.dropped += 1
                self.bulk_dropped += "_bulk" in path
                self.changed.notify_all()
                return "drop"
            draw = self.rng.random() if "_bulk" in path else 1.0
            if draw >= BULK_429_RATE:
                self.forwarding += 1  # decided under the same lock as the switch: none slips past it
                return None
        return "429" if draw < BULK_429_RATE / 2 else per_item_429(body)

    def done(self, method: str, path: str, decision: Decision) -> None:
        if decision is None:
            with self.changed:
                self.forwarding -= 1
                self.changed.notify_all()


def test_bulk_429s_and_outages_are_retried_until_everything_is_indexed(
    faulty: Pipeline, tmp_path: Path, record_property: Callable[[str, object], None]
) -> None:
    total = 600
    faulty.produce(total)
    # A few dead letters too, so the DLQ writer meets the same faults.
    placed = put_raw(faulty, [b"not json %d" % i for i in range(BAD)], prefix="bad")
    bad_ids = {f"{shard}-{seq}" for shard, seq in placed}
    # About 10 s of work, so the outage falls mid-run.
    faulty.bedrock_config(latency_mean_ms=20, latency_distribution="exponential", seed=SEED)
    faults = OpenSearchFaults()
    log = tmp_path / "flow.log"
    with FaultProxy(faulty.env["OPENSEARCH_URL"], inspect=faults.inspect, on_done=faults.done) as proxy:
        env = {
            "OPENSEARCH_URL": proxy.url,
            "OPENSEARCH_BACKOFF_MAX_S": "0.5",
            "OPENSEARCH_TIMEOUT_S": "5",
            "OPENSEARCH_BULK_MAX_DOCS": "50",
            "BEDROCK_MAX_CONCURRENCY": "4",
        }
        faults.outage(True)  # the sink must wait for OpenSearch to prepare its templates
        with flow_process(faulty, "-w", "2", log=log, extra_env=env) as proc:
            faults.wait(lambda: faults.dropped >= 3, "the sink to be refused at start")
            faults.outage(False)
            faulty.wait_for(lambda: faulty.count() >= total // 4, timeout=90, what="a quarter indexed")
            faults.outage(True)
            faults.wait(lambda: faults.forwarding == 0, "requests forwarded before the outage to land")
            before, mark = faulty.count(), len(proxy.requests)
            faults.wait(lambda: faults.bulk_dropped >= BULK_RETRIES_IN_OUTAGE, "the sink to retry through the outage")
            during = faulty.count() - before
            forwarded_in_outage = [r for r in proxy.requests[mark:] if r[2] is None]
            faults.outage(False)
            wait_exit(proc, log, timeout=120)
        dropped, throttled = proxy.count("drop"), proxy.count("429", "_bulk")
        item_throttled = proxy.count("per_item_429", "_bulk")
        bulks = sum(1 for _, path, _ in proxy.requests if "_bulk" in path)
    retries = log.read_text().count("opensearch.bulk_retry")
    result = check_accounting(
        faulty,
        synthetic_ids(total) | bad_ids,
        "opensearch 429+outage",
        record_property,
        f"bulk_requests={bulks} bulk_429={throttled} bulk_200_items_429={item_throttled} dropped={dropped} "
        f"bulk_retry_logs={retries} "
        f"indexed_before_outage={before} indexed_during_outage={during} {bedrock_summary(faulty)}",
    )
    assert before < total, "the outage should start mid-run"
    assert set(result.dead) == bad_ids
    assert forwarded_in_outage == [], "the proxy forwarded requests during the outage"
    assert during == 0, f"{during} documents were indexed while every request was dropped"
    assert throttled > 0 and item_throttled > 0 and dropped > 0 and retries > 0
