"""The Bytewax step of the backfill: every review handed to one `Backfill` (one key), outcomes emitted.

`on_batch` hands reviews over and emits what finished jobs answered meanwhile; `on_notify` polls every
BACKFILL_POLL_INTERVAL_S while input is still being read; `on_eof` cuts the tail and waits for every job (the
input is bounded: there is nothing else for the worker to do). The snapshot is the reviews not yet in a chunk;
the chunks and jobs are in S3 and Bedrock, where a restart finds them.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from bytewax.operators import StatefulBatchLogic

from dataflow.backfill.planner import Backfill, Item
from dataflow.records import Review

Pending = list[Review]


class BackfillLogic(StatefulBatchLogic[Review, Item, Pending]):
    def __init__(self, backfill: Backfill, resume: Pending | None) -> None:
        self.backfill = backfill
        self._ready: list[Item] = backfill.add(resume or [])

    def on_batch(self, values: list[Review]) -> tuple[list[Item], bool]:
        out, self._ready = self._ready + self.backfill.add(values), []
        return out, StatefulBatchLogic.RETAIN

    def on_notify(self) -> tuple[list[Item], bool]:
        out, self._ready = self._ready + list(self.backfill.pump(wait=False)), []
        return out, StatefulBatchLogic.RETAIN

    def on_eof(self) -> tuple[list[Item], bool]:
        out, self._ready = self._ready + list(self.backfill.finish()), []
        return out, StatefulBatchLogic.DISCARD

    def notify_at(self) -> datetime | None:
        return datetime.now(UTC) + timedelta(seconds=self.backfill.backfill.poll_interval_s)

    def snapshot(self) -> Pending:
        return self.backfill.pending()


def logic_builder(make: Callable[[], Backfill]) -> Callable[[Pending | None], BackfillLogic]:
    """The builder `stateful_batch` calls (once: there is one key); the `Backfill` is made on first use."""
    return lambda resume: BackfillLogic(make(), resume)
