"""A GetRecords outage: every GetRecords answers HTTP 500 for a while, then Kinesis recovers.

While reads fail, the source must sleep until each retry is due, in `next_awake`, not in `next_batch`: a worker
that sleeps in `next_batch` (botocore's own retries did, 3-5 s per call) holds back the epoch of every worker,
and a source whose `next_awake` has passed while it waits for that epoch is re-activated by Bytewax without pause
(one worker at 100% of a core, no Python frame on it). CPU is measured by `python -m benchmarks --only outage`;
this test checks the causes, with counts and orderings, never a duration:
- every GetRecords request is one the source scheduled: each 500 reaches the source (no hidden retries);
- after a failed answer, a shard's next request comes no sooner than Kinesis's minimum poll interval after it
  (a backoff counted from the start of a slow call would already be over, and the retry would come at once);
- the partitions are called about once per scheduled attempt or listing, and nothing is lost once reads work.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import defaultdict
from collections.abc import Callable

import orjson
import pytest
from bytewax.testing import cluster_main

from dataflow.kinesis_source import KinesisPartition
from dataflow.kinesis_source.reader import MIN_POLL_S
from dataflow.pipeline import build_flow
from dataflow.settings import load_settings
from tests.fault_proxy import AWS_JSON_11, Decision, FaultProxy, ProxyRequest, Reply, Upstream, aws_json_error
from tests.faults.accounting import check_accounting, synthetic_ids
from tests.plugins.stack import Pipeline

pytestmark = [pytest.mark.faults, pytest.mark.integration, pytest.mark.slow]

TARGET = "Kinesis_20131202."
INTERNAL = aws_json_error("InternalFailure", "injected outage", "500", status=500)
OUTAGE_S = 10.0
PARTITIONS = 2  # one per worker, each owning two of the four shards (so none is idle and polled as caught up)
DISCOVERY_S = 2.0


class GetRecordsOutage:
    """Answers every GetRecords with a 500 while `on`, and records when each shard's requests came and failed.

    A GetRecords request names an iterator, not a shard: the iterators the proxy forwarded map them back.
    """

    def __init__(self) -> None:
        self.on = True
        self.failed = 0
        self._lock = threading.Lock()
        self._shard_of: dict[str, str] = {}
        self.events: dict[str, list[tuple[float, str]]] = defaultdict(list)  # shard -> (monotonic, kind)

    def handle(self, request: ProxyRequest, forward: Callable[[bytes], Upstream]) -> Decision:
        target = request.headers.get("X-Amz-Target", "").removeprefix(TARGET)
        received = time.monotonic()
        if target == "GetShardIterator":
            answer = forward(request.body)
            shard = orjson.loads(request.body)["ShardId"]
            with self._lock:
                self.events[shard].append((received, "request"))
                if answer.status == 200:
                    self._shard_of[orjson.loads(answer.body)["ShardIterator"]] = shard
            return Reply(answer.status, answer.body, "forwarded", AWS_JSON_11)
        if target != "GetRecords":
            return None
        with self._lock:
            shard = self._shard_of.get(orjson.loads(request.body)["ShardIterator"], "?")
            self.events[shard].append((received, "request"))
            if not self.on:
                return None
            self.failed += 1
            self.events[shard].append((time.monotonic(), "failed"))  # the client sees it no sooner
        return INTERNAL

    def early_retries(self) -> list[tuple[str, float]]:
        """(shard, seconds) of every request that came sooner than MIN_POLL_S after the shard's last failure."""
        early = []
        with self._lock:
            for shard, events in self.events.items():
                failed_at: float | None = None
                for at, kind in sorted(events):
                    if kind == "failed":
                        failed_at = at
                    elif failed_at is not None:
                        if at - failed_at < MIN_POLL_S:
                            early.append((shard, round(at - failed_at, 3)))
                        failed_at = None
        return early


def test_a_get_records_outage_waits_out_each_backoff_and_loses_nothing(
    faulty: Pipeline,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    record_property: Callable[[str, object], None],
) -> None:
    total = 100
    faulty.produce(total)
    outage = GetRecordsOutage()
    calls: list[float] = []
    next_batch = KinesisPartition.next_batch

    def counted(self: KinesisPartition) -> object:
        calls.append(time.monotonic())
        return next_batch(self)

    monkeypatch.setattr(KinesisPartition, "next_batch", counted)
    caplog.set_level(logging.WARNING, logger="dataflow.kinesis_source.partition")
    with FaultProxy(faulty.env["AWS_ENDPOINT_URL_KINESIS"], handle=outage.handle) as proxy:
        env = {
            **faulty.env,
            "AWS_ENDPOINT_URL_KINESIS": proxy.url,
            "KINESIS_PARTITIONS": str(PARTITIONS),
            "KINESIS_DISCOVERY_INTERVAL_S": str(DISCOVERY_S),
        }
        for key, value in env.items():
            monkeypatch.setenv(key, value)  # the clients read their endpoints from the environment
        began = time.monotonic()

        def recover() -> None:
            outage.on = False

        timer = threading.Timer(OUTAGE_S, recover)
        timer.start()
        try:
            cluster_main(build_flow(load_settings(env)), [], 0, worker_count_per_proc=2)
        finally:
            timer.cancel()
        ended = began + OUTAGE_S
    seen = sum("kinesis.read_failed" in r.getMessage() and "InternalFailure" in r.getMessage() for r in caplog.records)
    during = sum(began <= t <= ended for t in calls)
    early = outage.early_retries()
    allowed = outage.failed + PARTITIONS * (OUTAGE_S / DISCOVERY_S + 2)
    summary = f"get_records_failed={outage.failed} source_saw={seen} next_batch_in_outage={during} early={early[:5]}"
    check_accounting(faulty, synthetic_ids(total), "kinesis get_records outage", record_property, summary)
    assert outage.failed >= 4, summary  # the outage really hit every shard
    assert seen == outage.failed, f"every failed GetRecords should reach the source, none retried inside: {summary}"
    assert not early, f"a shard retried sooner than {MIN_POLL_S} s after a failure: {summary}"
    assert during <= allowed, f"more activations than scheduled attempts and listings ({allowed:.0f}): {summary}"
