"""Async Bedrock enrichment as a Bytewax `stateful_batch` step (the Bytewax side of the engine).

Why not `asyncio.gather` per batch: a batch-at-a-time call waits for its slowest request, so one straggler
empties the window. Here each worker thread has one `EnrichEngine` (dataflow/enrich/engine.py) that keeps
the window full across batches; `EnrichLogic`, one per shard key, only hands reviews over and collects
whatever has finished, so results leave in completion order (unordered) and nobody waits for a straggler.

Bounded handoff: the logic hands the engine only as many reviews as the engine has room for
(BEDROCK_MAX_BUFFERED); the rest wait in the logic's own queue, in Bytewax state, until room frees up. So
`on_batch` never blocks (blocking would stop epochs, hence checkpoints), whatever process the reviews came from.

Waking: Bytewax calls the logic only with input or at its `notify_at`; see dataflow/enrich/wake.py for why every
key asks for the same instants (one wake serves all keys of a worker, and no 10 ms polling).

Recovery: the logic's snapshot is every review received and not yet emitted (handed over or still queued),
so a resumed run re-issues exactly those (like Flink Async I/O checkpoints). With a background results writer
(a `StoreAcks` ledger, dataflow/channels/store_acks.py), a result emitted but not yet stored stays in the snapshot too.
The sink is idempotent, so a review that had finished just before a crash is simply written again.
"""

from __future__ import annotations

import collections
import logging
import time
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta

from bytewax.operators import StatefulBatchLogic

from dataflow.channels.routes import ShardRoutes
from dataflow.channels.store_acks import StoreAcks
from dataflow.enrich.engine import Done, EnrichEngine, EnrichOutput
from dataflow.enrich.wake import DelayStats, next_tick
from dataflow.records import EnrichedReview, Review

log = logging.getLogger(__name__)

InFlightState = list[Review]
Routed = tuple[str, Review]  # (the key it was sent under, the review): dataflow/channels/routes.py

UNSTORED_CHECK_S = 0.5  # how often an otherwise idle key looks whether its last results are stored
HOLD_BACK_FACTOR = 4  # a key's queue may hold this x BEDROCK_MAX_BUFFERED reviews before on_batch waits


class EnrichLogic(StatefulBatchLogic[Routed, EnrichOutput, InFlightState]):
    """The Bytewax side of enrichment for one key: hand reviews to the engine as room allows, emit what finished."""

    def __init__(
        self,
        engine: EnrichEngine,
        resume_state: InFlightState | None,
        acks: StoreAcks | None = None,
        routes: ShardRoutes | None = None,
    ) -> None:
        self._engine = engine
        self._acks = acks
        self._routes = routes
        self._done: collections.deque[Done] = collections.deque()
        self._outstanding: dict[tuple[str, str], Review] = {}
        self._unstored: dict[tuple[str, str], Review] = {}  # emitted, not yet acknowledged by the writer
        self._queue: collections.deque[Review] = collections.deque()
        self._interval = engine.settings.enrich_notify_interval_s
        self._capped = False
        self._noted = False  # told the gauge this key's shard is enriched in this process
        self.emit_delays = DelayStats()  # while the input runs
        self.eof_delays = DelayStats()  # after the input ended (see on_eof)
        if resume_state:
            log.info("enrich.reissue reviews=%d", len(resume_state))
            self._queue.extend(resume_state)
            self._handoff()

    def _handoff(self) -> None:
        """Give the engine as many queued reviews as it has room for; the rest stay queued (and snapshotted)."""
        if self._queue:
            room = self._engine.settings.max_buffered_reviews - self._engine.buffered()
            take = [self._queue.popleft() for _ in range(min(room, len(self._queue)))]
            if take:
                for review in take:
                    self._outstanding[(review.shard_id, review.sequence_number)] = review
                self._engine.submit(take, self._done)
        # Queued reviews count against this process's room, so the source holds back for them too.
        self._engine.hold_back(id(self), len(self._queue))

    def _drain(self, delays: DelayStats | None = None) -> list[EnrichOutput]:
        out: list[EnrichOutput] = []
        now = time.monotonic()
        delays = delays or self.emit_delays
        while self._done:
            finished, result = self._done.popleft()
            delays.add(now - finished)
            review = result.review if isinstance(result, EnrichedReview) else None
            key = (
                (review.shard_id, review.sequence_number) if review else (result.shard_id, result.sequence_number)  # type: ignore[union-attr]
            )
            self._outstanding.pop(key, None)
            if review is not None and self._acks is not None:
                self._unstored[key] = review
            out.append(result)
        return out

    def _check(self) -> None:
        self._engine.check()
        if self._acks is not None:
            self._acks.check()  # the background writer halted: stop here too, before a checkpoint
            self._acks.claim(self._unstored)

    def on_batch(self, values: list[Routed]) -> tuple[Iterable[EnrichOutput], bool]:
        self._check()
        if values and not self._noted:
            key, first = values[0]  # one key, one shard
            log.info("enrich.key_started worker=%s shard=%s key=%s", self._engine.worker, first.shard_id, key)
            self._engine.buffers.note_enriched(first.shard_id, id(self._engine))
            if self._routes is not None:
                self._routes.arrived(first.shard_id, key)
            self._noted = True
        self._queue.extend(review for _, review in values)
        self._handoff()
        out = self._drain()
        cap = HOLD_BACK_FACTOR * self._engine.settings.max_buffered_reviews
        if len(self._queue) > cap:
            # Only reviews read in another process get here (this process's reader holds back for the queue), and
            # only while the keyer looks for a local key or after it found none (dataflow/channels/routes.py).
            # Bytewax's one backpressure across processes is the epoch: no input reads a new epoch until every
            # step has finished the last one. So, as the last resort that bounds memory, this key waits here
            # until its queue is back under the cap (one answer, usually), then the epoch goes on.
            if not self._capped:  # once per key: it repeats about once per epoch while the other process reads
                log.info("enrich.held_back_full worker=%s queued=%d cap=%d", self._engine.worker, len(self._queue), cap)
                self._capped = True
            # Meanwhile no source of the cluster reads: the engine may take the quota the others leave.
            self._engine.holding_up(True)
            try:
                while len(self._queue) > cap:
                    self._engine.check()
                    self._engine.wait_changed(0.05)
                    out.extend(self._drain())
                    self._handoff()
            finally:
                self._engine.holding_up(False)
        return out, StatefulBatchLogic.RETAIN

    def on_notify(self) -> tuple[Iterable[EnrichOutput], bool]:
        self._check()
        out = self._drain()  # first, so the room they leave is used at once
        self._handoff()
        return out, StatefulBatchLogic.RETAIN

    def on_eof(self) -> tuple[Iterable[EnrichOutput], bool]:
        # The input ended (KINESIS_STOP_AT_END or a finite test source): finish what is queued and in flight.
        # Bytewax calls on_eof once per key and closes the step after it, so what finishes meanwhile leaves
        # when the last of this key is done (and other keys of the worker wait their turn): `eof_delays`.
        out: list[EnrichOutput] = []
        while True:
            out.extend(self._drain(self.eof_delays))
            self._handoff()
            if not self._queue and not self._outstanding:
                break
            self._engine.check()  # a halted or dead engine would otherwise keep this waiting forever
            self._engine.wait_changed(0.05)
        if self.emit_delays.n or self.eof_delays.n:
            log.info(
                "enrich.emit_delay worker=%s reviews=%d p50_ms=%.0f p99_ms=%.0f max_ms=%.1f"
                " after_eof=%d eof_max_ms=%.0f",
                self._engine.worker,
                self.emit_delays.n,
                self.emit_delays.percentile_ms(50),
                self.emit_delays.percentile_ms(99),
                self.emit_delays.max_s * 1000,
                self.eof_delays.n,
                self.eof_delays.max_s * 1000,
            )
        return out, StatefulBatchLogic.RETAIN

    def notify_at(self) -> datetime | None:
        if not self._outstanding and not self._queue:
            # Results waiting for the writer: look again later to drop the stored ones from the snapshot.
            return next_tick(datetime.now(UTC), UNSTORED_CHECK_S) if self._unstored else None
        now = datetime.now(UTC)
        # While no request in flight can have finished yet (a model taking seconds), skip the ticks until then.
        quiet_s = self._engine.quiet_until() - time.monotonic()
        if quiet_s > self._interval and not self._done and not self._queue:
            now += timedelta(seconds=quiet_s)
        return next_tick(now, self._interval)

    def snapshot(self) -> InFlightState:
        if self._acks is not None:
            self._acks.claim(self._unstored)
        return [*self._outstanding.values(), *self._unstored.values(), *self._queue]
