"""Background results writing: the worker hands a batch over and goes on; what it emitted stays in the
enrichment checkpoint until the writer reports it stored; a halt in the writer stops the flow."""

from __future__ import annotations

import threading
import time
import uuid
from typing import Any

import pytest
from bytewax.inputs import FixedPartitionedSource, StatefulSourcePartition
from bytewax.testing import TestingSink, run_main
from opensearchpy import OpenSearch

from dataflow.channels.store_acks import StoreAcks
from dataflow.enrich import EngineRegistry, EnrichLogic
from dataflow.enrich.engine import EnrichEngine
from dataflow.opensearch_sink.background_writer import BackgroundWriter
from dataflow.opensearch_sink.errors import OpenSearchHalt
from dataflow.parse import parse_record
from dataflow.pipeline import build_flow
from dataflow.records import EnrichedReview, KinesisRecord
from tests.dataflow.helpers import keyed, record, settings
from tests.fakes import FakeBedrock
from tests.fault_proxy import FaultProxy


class GatedWrite:
    """A write that blocks until the test opens the gate, recording what it was given."""

    def __init__(self) -> None:
        self.gate = threading.Event()
        self.entered = threading.Event()
        self.calls: list[list[int]] = []

    def __call__(self, items: list[int]) -> None:
        self.entered.set()
        self.gate.wait()
        self.calls.append(list(items))


@pytest.mark.timeout(30)
def test_submit_returns_while_a_write_waits_and_what_queued_meanwhile_goes_in_one_call() -> None:
    write = GatedWrite()
    writer: BackgroundWriter[int] = BackgroundWriter(write, max_pending=100, name="t")
    writer.submit([1, 2])
    assert write.entered.wait(10)  # the first batch is being written (and waits on the gate)
    writer.submit([3])  # returns although the write in progress has not finished
    writer.submit([4, 5])
    assert writer.pending == 5
    write.gate.set()
    writer.close()
    assert write.calls == [[1, 2], [3, 4, 5]] and writer.pending == 0


@pytest.mark.timeout(30)
def test_submit_waits_once_max_pending_items_are_queued() -> None:
    write = GatedWrite()
    writer: BackgroundWriter[int] = BackgroundWriter(write, max_pending=3, name="t")
    writer.submit([1, 2])
    assert write.entered.wait(10)
    writer.submit([3])  # 3 pending: full
    blocked = threading.Thread(target=writer.submit, args=([4],))
    blocked.start()
    blocked.join(timeout=0.3)
    assert blocked.is_alive(), "submit went past max_pending"
    write.gate.set()
    blocked.join(timeout=10)
    assert not blocked.is_alive()
    writer.close()
    assert sorted(x for call in write.calls for x in call) == [1, 2, 3, 4]


@pytest.mark.timeout(30)
def test_a_halt_in_the_writer_is_raised_on_the_worker_and_through_the_ledger() -> None:
    acks = StoreAcks()

    def write(items: list[int]) -> None:
        raise OpenSearchHalt("OPENSEARCH_URL: no handler found for uri [/_bulk]")

    writer: BackgroundWriter[int] = BackgroundWriter(write, max_pending=10, name="t", on_error=acks.failed)
    writer.submit([1])
    with pytest.raises(OpenSearchHalt, match="OPENSEARCH_URL"):
        writer.flush()
    with pytest.raises(OpenSearchHalt):
        writer.submit([2])
    with pytest.raises(OpenSearchHalt):
        acks.check()  # what the enrichment step checks on every call
    with pytest.raises(OpenSearchHalt):
        writer.close()


@pytest.mark.timeout(60)
def test_emitted_results_stay_in_the_snapshot_until_the_writer_stored_them() -> None:
    cfg = settings()
    engine = EnrichEngine(cfg, FakeBedrock().factory(), worker="t")
    acks = StoreAcks()
    reviews = [parse_record(record(n), 1000) for n in range(6)]
    try:
        logic = EnrichLogic(engine, None, acks)
        first, _ = logic.on_batch(keyed(reviews))
        rest, _ = logic.on_eof()
        emitted = [r for r in [*first, *rest] if isinstance(r, EnrichedReview)]
        assert len(emitted) == 6
        # Emitted, not yet stored: a checkpoint now must still hold all six.
        assert sorted(r.review_id for r in logic.snapshot()) == sorted(f"r{n}" for n in range(6))
        acks.stored((r.review.shard_id, r.review.sequence_number) for r in emitted[:4])
        assert sorted(r.review_id for r in logic.snapshot()) == sorted(r.review.review_id for r in emitted[4:])
        assert logic.notify_at() is not None  # an idle key still looks again for the last two
        acks.stored((r.review.shard_id, r.review.sequence_number) for r in emitted[4:])
        assert logic.snapshot() == [] and len(acks) == 0 and logic.notify_at() is None
    finally:
        engine.close()


def test_without_a_ledger_emitted_results_leave_the_snapshot_at_once() -> None:
    cfg = settings()
    engine = EnrichEngine(cfg, FakeBedrock().factory(), worker="t")
    try:
        logic = EnrichLogic(engine, None)
        first, _ = logic.on_batch(keyed(parse_record(record(n), 1000) for n in range(3)))
        rest, _ = logic.on_eof()
        assert len([*first, *rest]) == 3 and logic.snapshot() == []
    finally:
        engine.close()


class TwoPartSource(FixedPartitionedSource[KinesisRecord, None]):
    """Yields the first records at once and the rest only once `second` is set (or after a 20 s guard)."""

    def __init__(self, first: list[KinesisRecord], rest: list[KinesisRecord], second: threading.Event) -> None:
        self._parts = [first, rest]
        self._second = second

    def list_parts(self) -> list[str]:
        return ["only"]

    def build_part(self, step_id: str, for_part: str, resume_state: None) -> StatefulSourcePartition:
        parts, second = [list(p) for p in self._parts], self._second

        class Part(StatefulSourcePartition[KinesisRecord, None]):
            def next_batch(self) -> list[KinesisRecord]:
                if parts[0]:
                    return [parts[0].pop(0)]
                if not parts[1]:
                    raise StopIteration
                if not second.wait(0.01):
                    return []
                batch, parts[1][:] = list(parts[1]), []
                return batch

            def snapshot(self) -> None:
                return None

        return Part()


@pytest.mark.timeout(120)
def test_the_flow_keeps_enriching_while_a_bulk_request_hangs(opensearch_server) -> None:
    """The production results sink: OpenSearch holds the first bulk request until every review has been
    answered by the model; the source yields the last 32 records only once that request is held. So the
    request is released only if the worker goes on reading and enriching while it hangs."""
    bedrock = FakeBedrock()
    released_by_progress, held = threading.Event(), threading.Event()

    def decide(method: str, path: str) -> Any:
        if "_bulk" in path and not held.is_set():
            held.set()  # the first bulk request only
            for _ in range(400):  # 20 s guard: a worker stuck in this request never gets there
                if bedrock.calls >= 40:
                    released_by_progress.set()
                    break
                time.sleep(0.05)
        return None

    suffix = uuid.uuid4().hex[:8]
    with FaultProxy(opensearch_server.url, decide) as proxy:
        cfg = settings(
            OPENSEARCH_URL=proxy.url,
            OPENSEARCH_INDEX=f"bg_{suffix}",
            OPENSEARCH_DLQ_INDEX=f"bg_dlq_{suffix}",
        )
        dead: list[Any] = []
        flow = build_flow(
            cfg,
            source=TwoPartSource([record(n) for n in range(8)], [record(n) for n in range(8, 40)], held),
            registry=EngineRegistry(cfg, bedrock.factory()),
            dead_letter_sink=TestingSink(dead),
        )
        run_main(flow)
    assert released_by_progress.is_set(), "the worker waited for the bulk request instead of enriching"
    client = OpenSearch(hosts=[opensearch_server.url])
    client.indices.refresh(index=cfg.opensearch_index)
    assert client.count(index=cfg.opensearch_index)["count"] == 40 and dead == []
