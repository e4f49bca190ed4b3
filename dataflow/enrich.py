"""Async Bedrock enrichment as a Bytewax `stateful_batch` step (the Bytewax side of the engine).

Why not `asyncio.gather` per batch: a batch-at-a-time call waits for its slowest request, so one straggler
empties the window. Here each worker thread has one `EnrichEngine` (dataflow/enrich_engine.py) that keeps
the window full across batches; `EnrichLogic`, one per shard key, only hands reviews over and collects
whatever has finished, so results leave in completion order (unordered) and nobody waits for a straggler.

Recovery: the logic's snapshot is every review handed over and not yet emitted, so a resumed run re-issues
exactly the in-flight reviews (like Flink Async I/O checkpoints). The sink is idempotent, so a review that
had finished just before a crash is simply written again.
"""

from __future__ import annotations

import collections
import logging
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta

from bytewax.operators import StatefulBatchLogic

from dataflow.enrich_engine import EngineRegistry, EnrichEngine, EnrichOutput
from dataflow.records import EnrichedReview, Review

__all__ = ["EngineRegistry", "EnrichEngine", "EnrichLogic", "EnrichOutput", "InFlightState"]

log = logging.getLogger(__name__)

POLL_S = 0.01  # how often a logic with reviews in flight asks Bytewax to wake it

InFlightState = list[Review]


class EnrichLogic(StatefulBatchLogic[Review, EnrichOutput, InFlightState]):
    """The Bytewax side of enrichment for one key: hand reviews to the engine, emit what finished."""

    def __init__(self, engine: EnrichEngine, resume_state: InFlightState | None) -> None:
        self._engine = engine
        self._done: collections.deque[EnrichOutput] = collections.deque()
        self._outstanding: dict[tuple[str, str], Review] = {}
        if resume_state:
            log.info("enrich.reissue reviews=%d", len(resume_state))
            self._submit(resume_state)

    def _submit(self, reviews: list[Review]) -> None:
        for review in reviews:
            self._outstanding[(review.shard_id, review.sequence_number)] = review
        self._engine.submit(reviews, self._done)

    def _drain(self) -> list[EnrichOutput]:
        out: list[EnrichOutput] = []
        while self._done:
            result = self._done.popleft()
            review = result.review if isinstance(result, EnrichedReview) else None
            key = (
                (review.shard_id, review.sequence_number) if review else (result.shard_id, result.sequence_number)  # type: ignore[union-attr]
            )
            self._outstanding.pop(key, None)
            out.append(result)
        return out

    def on_batch(self, values: list[Review]) -> tuple[Iterable[EnrichOutput], bool]:
        self._engine.check()
        self._submit(values)
        # The source holds back while this process's buffers are full (dataflow.backpressure); blocking here
        # stops epochs and checkpoints, so it is only the last resort, past twice the limit.
        limit = 2 * self._engine.settings.max_buffered_reviews
        while self._engine.buffered() >= limit:
            self._engine.wait_changed(0.05)
        return self._drain(), StatefulBatchLogic.RETAIN

    def on_notify(self) -> tuple[Iterable[EnrichOutput], bool]:
        self._engine.check()
        return self._drain(), StatefulBatchLogic.RETAIN

    def on_eof(self) -> tuple[Iterable[EnrichOutput], bool]:
        # The input ended (KINESIS_STOP_AT_END or a finite test source): finish what is in flight.
        while len(self._outstanding) > len(self._done):
            self._engine.check()  # a halted or dead engine would otherwise keep this waiting forever
            self._engine.wait_changed(0.05)
        return self._drain(), StatefulBatchLogic.RETAIN

    def notify_at(self) -> datetime | None:
        if not self._outstanding:
            return None
        return datetime.now(UTC) + timedelta(seconds=POLL_S)

    def snapshot(self) -> InFlightState:
        return list(self._outstanding.values())
