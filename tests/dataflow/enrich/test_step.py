"""Bounded handoff: the enrichment logic takes in what it is given without blocking, hands the engine only what
fits, and keeps the rest in its own (snapshotted) queue."""

from __future__ import annotations

import asyncio
import threading

import pytest

from dataflow.enrich.engine import EnrichEngine
from dataflow.enrich.step import EnrichLogic
from dataflow.parse import parse_record
from dataflow.records import EnrichedReview
from tests.dataflow.helpers import keyed, record, settings
from tests.fakes import FakeBedrock


class GatedBedrock(FakeBedrock):
    """Answers only once the test opens the gate."""

    def __init__(self) -> None:
        super().__init__()
        self.gate = threading.Event()

    async def converse(self, **kwargs):  # type: ignore[no-untyped-def]
        while not self.gate.is_set():
            await asyncio.sleep(0.005)
        return await super().converse(**kwargs)


@pytest.mark.timeout(60)
def test_on_batch_never_blocks_and_holds_back_what_does_not_fit() -> None:
    bedrock = GatedBedrock()
    cfg = settings(BEDROCK_MAX_BUFFERED=4, BEDROCK_MAX_CONCURRENCY=2, BEDROCK_TIMEOUT_S=60)
    engine = EnrichEngine(cfg, bedrock.factory(), worker="t")
    reviews = [parse_record(record(n), 1000) for n in range(20)]  # 4 fit, 16 = the cap of the queue
    try:
        logic = EnrichLogic(engine, None)
        done: list = []
        caller = threading.Thread(target=lambda: done.append(logic.on_batch(keyed(reviews))))
        caller.start()
        caller.join(timeout=30)  # a guard against hanging only: on_batch must return with nothing answered
        assert not caller.is_alive(), "on_batch blocked"
        emitted, _ = done[0]
        assert list(emitted) == []
        assert engine.buffered() == 4  # exactly its room, never more
        assert len(logic.snapshot()) == 20  # the other 16 wait in the logic's state
        assert engine.buffers.room() == 0  # and the source holds back for them
        bedrock.gate.set()
        out, _ = logic.on_eof()
        assert sorted(r.review.review_id for r in out if isinstance(r, EnrichedReview)) == sorted(
            f"r{n}" for n in range(20)
        )
        assert logic.snapshot() == [] and bedrock.max_in_flight <= 2
    finally:
        engine.close()


@pytest.mark.timeout(60)
def test_a_key_over_its_queue_cap_lets_its_engine_hurry_while_it_holds_up_the_epoch() -> None:
    """Over the cap (reviews read in another process), on_batch waits, and Bytewax's epoch with it: no source of
    the cluster reads, so the other workers run dry. Meanwhile its engine's pacer may take their share (hurry),
    and stops when the wait ends."""
    bedrock = FakeBedrock()
    cfg = settings(BEDROCK_MAX_BUFFERED=1, BEDROCK_MAX_CONCURRENCY=1, BEDROCK_TIMEOUT_S=60)
    engine = EnrichEngine(cfg, bedrock.factory(), worker="t")
    seen: list[bool] = []
    original = engine.window.hurry

    def hurry(on: bool) -> None:
        seen.append(on)
        original(on)

    engine.window.hurry = hurry  # type: ignore[method-assign]
    try:
        logic = EnrichLogic(engine, None)
        emitted, _ = logic.on_batch(keyed(parse_record(record(n), 1000) for n in range(10)))  # cap: 4 x 1
        asyncio.run_coroutine_threadsafe(asyncio.sleep(0), engine._loop).result(timeout=10)  # after the calls
        assert seen == [True, False] and engine.window.pacer is not None and not engine.window.pacer.hurry
        out, _ = logic.on_eof()
        assert len(list(emitted)) + len(list(out)) == 10
        logic2 = EnrichLogic(engine, None)
        logic2.on_batch(keyed(parse_record(record(n), 1000) for n in range(10, 12)))  # under the cap: no wait
        assert seen == [True, False]
        logic2.on_eof()
    finally:
        engine.close()
