"""The job outputs source: a bounded input that follows the run's jobs and emits their answers page by page.

One partition. `next_batch` polls (markers in S3, jobs in Bedrock) at most every BACKFILL_POLL_INTERVAL_S and
otherwise returns one page of a finished job: at most BACKFILL_PAGE_RECORDS outcomes a call, so results are
indexed as each job ends and memory does not grow with the backlog. `next_awake` is the next poll when nothing
is readable: while jobs run, the worker sleeps (no busy polling). It ends (StopIteration) once the input side
wrote `input-complete.json` and every chunk is read and handed on, after writing `report.json`.

The snapshot is the `Progress` (pages emitted per job, the report's totals). Bytewax starts an epoch only when
the previous one is fully written downstream, so at the first `next_batch` after a snapshot its pages are
indexed: the progress is then committed to `progress.json` too, and a rerun without Bytewax recovery resumes
from it (re-emitting at most the pages of one epoch; the sink's versions make that a no-op).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from bytewax.inputs import FixedPartitionedSource, StatefulSourcePartition

from dataflow.backfill.planner import Follower, Item, Progress

log = logging.getLogger(__name__)
PART = "jobs"


class _JobOutputsPartition(StatefulSourcePartition[Item, dict[str, Any]]):
    def __init__(self, follower: Follower, poll_interval_s: float) -> None:
        self._follower, self._interval = follower, poll_interval_s
        self._next_poll = 0.0  # monotonic: the first call polls
        self._pending_commit: dict[str, Any] | None = None
        self._committed: dict[str, Any] | None = None

    def next_batch(self) -> list[Item]:
        self._commit()
        follower = self._follower
        if time.monotonic() >= self._next_poll:
            follower.poll()
            self._next_poll = time.monotonic() + self._interval
        job = follower.readable()
        if job is not None:
            return follower.read_page(job)
        if follower.complete():
            follower.write_report()
            raise StopIteration
        return []

    def next_awake(self) -> datetime | None:
        if self._follower.readable() is not None:
            return None  # more pages to read now
        return datetime.now(UTC) + timedelta(seconds=max(0.0, self._next_poll - time.monotonic()))

    def snapshot(self) -> dict[str, Any]:
        state = self._follower.progress.to_json()
        self._pending_commit = state
        return state

    def _commit(self) -> None:
        """The last snapshot's epoch is complete (Bytewax asks for the next batch only then): commit it."""
        state, self._pending_commit = self._pending_commit, None
        if state is not None and state != self._committed:
            self._follower.files.write_json("progress.json", state)
            self._committed = state


class JobOutputsSource(FixedPartitionedSource[Item, dict[str, Any]]):
    """The run's answers; `make` builds the `Follower` from a progress (Bytewax's, or else progress.json)."""

    def __init__(self, make: Callable[[Progress], Follower], committed: Callable[[], dict[str, Any] | None],
                 poll_interval_s: float) -> None:  # fmt: skip
        self._make, self._committed, self._interval = make, committed, poll_interval_s

    def list_parts(self) -> list[str]:
        return [PART]

    def build_part(self, step_id: str, for_part: str, resume_state: dict[str, Any] | None) -> _JobOutputsPartition:
        state = resume_state if resume_state is not None else self._committed()
        if state:
            log.info("backfill.resumed jobs_read=%d", sum(1 for v in state.get("jobs", {}).values() if v[2]))
        return _JobOutputsPartition(self._make(Progress.from_json(state)), self._interval)
