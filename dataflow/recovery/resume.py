"""One resume epoch per start, agreed once: pod 0 decides, every pod cuts to it.

Pod 0 reads the store's copies (after their ETags stop changing: its peers' last backups land), takes R, the
smallest as-of epoch of the set (every copy holds every snapshot below it), and the marker execution (past
the newest execution the copies carry and the previous start's run, cut.py), and writes them to `resume.json`
with the copies' versions they were computed from (the basis), as a conditional write keyed by the previous
record: two pods 0 cannot both win. Every other pod waits for a record that describes the store as it finds
it: each copy is the basis version, or a newer copy of a run before this start (a peer's final backup that
landed late: it holds at least what the basis version held), or a peer's claim of it in this start (align.py:
its cut copy, as-of R). A record of an earlier start is never taken for this one when that start's run wrote
copies (they carry its number); if it wrote none, the two records agree on R (backup.py checks, and adopts pod
0's, before it writes). A copy no run since the previous start wrote is
of the lineage that start cut: it vouches for no more than the R of any start since (its later snapshots were
cut away there); the record keeps each start's R (floors) for this.

A set whose copies are all as-of UNKNOWN has never completed an epoch: it starts over (R = UNKNOWN). A set
where some copies show progress and others none would resume those from KINESIS_START_POSITION: refused.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from dataflow.recovery.frontier import UNKNOWN, newest_execution
from dataflow.recovery.layout import LayoutError
from dataflow.recovery.store import Store, StoredCopy

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Resume:
    start: int  # increases by one per start of pod 0; tags every copy this start's run writes
    epoch: int  # R: every partition is cut to it; UNKNOWN: the set starts over
    marker: int | None  # the marker execution (cut.py); Bytewax runs marker + 1
    basis: dict[int, tuple[str, int]] = field(default_factory=dict)  # partition -> (ETag, as-of) decided from
    floors: dict[int, int] = field(default_factory=dict)  # start -> its R, for the last KEEP_STARTS starts

    @property
    def running(self) -> int:
        """The execution number Bytewax runs in this start (0 on an empty set, as Bytewax's default)."""
        return 0 if self.marker is None else self.marker + 1

    def as_json(self) -> dict:
        basis = {str(i): list(v) for i, v in sorted(self.basis.items())}
        floors = {str(k): v for k, v in sorted(self.floors.items())}
        return {"start": self.start, "epoch": self.epoch, "marker": self.marker, "basis": basis, "floors": floors}

    @classmethod
    def from_json(cls, data: dict) -> Resume:
        basis = {int(i): (str(v[0]), int(v[1])) for i, v in data.get("basis", {}).items()}
        floors = {int(k): int(v) for k, v in data.get("floors", {}).items()}
        return cls(int(data["start"]), int(data["epoch"]), data.get("marker"), basis, floors)

    def describes(self, stored: dict[int, StoredCopy]) -> bool:
        """Whether this record was decided from these copies (or older versions of them, before this start)."""
        if stored.keys() != self.basis.keys():
            return False
        for i, copy in stored.items():
            etag, as_of = self.basis[i]
            late = copy.start < self.start and copy.as_of >= as_of  # a final backup of the run before
            claimed = copy.start == self.start and copy.as_of == self.epoch  # a peer's cut copy (align.py)
            if copy.etag != etag and not late and not claimed:
                return False
        return True


KEEP_STARTS = 1000  # a copy tagged before all of them is capped by all of them


def effective_as_of(copy: StoredCopy, previous: Resume | None, newest: int | None = None) -> int:
    """A copy vouches for no more than the resume epoch of any start after the one that wrote it, up to the
    newest start that wrote a copy of the set (`newest`; None: every later start): each cut the lineage there,
    and the set holds that lineage (an older version brought back by an operator beside newer copies, a pod
    that failed before its claim while its peers claimed). A set whose copies all come from one start (the
    whole set brought back as of one moment) is one lineage: starts after it that wrote nothing of it (a
    refused start) do not cap it."""
    if previous is None:
        return copy.as_of
    later = (e for start, e in previous.floors.items() if copy.start < start and (newest is None or start <= newest))
    return min([copy.as_of, *later])


def decide(stored: dict[int, StoredCopy], previous: Resume | None, store_url: str) -> Resume:
    start = 0 if previous is None else previous.start + 1
    newest = max((c.start for c in stored.values()), default=-1)
    epoch = min((effective_as_of(c, previous, newest) for c in stored.values()), default=UNKNOWN)
    basis = {i: (c.etag, c.as_of) for i, c in stored.items()}
    if epoch == UNKNOWN:
        progress = sorted(i for i, c in stored.items() if c.as_of != UNKNOWN or c.rows.exs)
        if progress:
            blank = sorted(i for i, c in stored.items() if c.as_of == UNKNOWN)
            raise LayoutError(
                f"recovery.would_replay store={store_url} partitions {blank} were never stored with progress while "
                f"{progress} were: resuming would re-read their shards from KINESIS_START_POSITION; restore newer "
                'versions of them (docs/DEPLOY.md "Restore a partition"), or start on a new prefix'
            )
        return Resume(
            start=start, epoch=UNKNOWN, marker=None, basis=basis, floors=floors_after(previous, start, UNKNOWN)
        )
    newest = newest_execution(c.rows for c in stored.values())
    if previous is not None:  # the previous start ran previous.running, whether or not its rows were stored
        newest = max(previous.running, -1 if newest is None else newest)
    marker = (-1 if newest is None else newest) + 1
    return Resume(start=start, epoch=epoch, marker=marker, basis=basis, floors=floors_after(previous, start, epoch))


def floors_after(previous: Resume | None, start: int, epoch: int) -> dict[int, int]:
    floors = {**(previous.floors if previous else {}), start: epoch}
    return dict(sorted(floors.items())[-KEEP_STARTS:])


def settled(
    store: Store, count: int, settle_s: float, wait_s: float, sleep: Callable[[float], None], clock: Callable[[], float]
) -> dict[int, StoredCopy]:
    """The store's copies once two looks `settle_s` apart agree (or `wait_s` passed)."""
    deadline = clock() + wait_s
    stored = store.copies(count)
    while True:
        sleep(settle_s)
        again = store.copies(count)
        if {i: c.etag for i, c in again.items()} == {i: c.etag for i, c in stored.items()} or clock() >= deadline:
            return again
        stored = again


def agree(
    store: Store,
    count: int,
    ordinal: int,
    wait_s: float,
    settle_s: float = 1.0,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> Resume:
    if ordinal == 0:
        stored = settled(store, count, settle_s, wait_s, sleep, clock)
        previous = store.read_resume()
        resume = decide(stored, Resume.from_json(previous[0]) if previous else None, store.url)
        store.write_resume(resume.as_json(), previous[1] if previous else None)  # Fenced: another pod 0 won
        log.info("recovery.resume_agreed start=%d epoch=%d marker=%s", resume.start, resume.epoch, resume.marker)
        return resume
    deadline = clock() + wait_s
    while True:
        got = store.read_resume()
        if got is not None:
            resume = Resume.from_json(got[0])
            if resume.describes(store.copies(count)):
                log.info("recovery.resume_read start=%d epoch=%d marker=%s", resume.start, resume.epoch, resume.marker)
                return resume
        if clock() >= deadline:
            raise LayoutError(
                f"recovery.no_resume_epoch store={store.url} has no resume epoch for its current copies after "
                f"{wait_s:.0f} s: pod 0 decides it when it starts (its log: recovery.resume_agreed); this pod "
                "restarts and looks again"
            )
        sleep(0.5)
