"""Refresh the store's copy of each partition this pod holds, soon after each snapshot and at exit.

A copy's as-of epoch describes its content, never the uploader's view of the cluster: after the cut a file
vouches for the start's R (align.py), and only rows of the execution Bytewax runs in this start (its own files'
and the copies its peers stored in this start) can vouch for more: their lower bound F (frontier.py), read
*before* copying, is an epoch before which that execution has written every snapshot into every partition it
holds open, this pod's included. Until those rows appear nothing is uploaded: the store's copies still hold
all that R needs. Copies are taken with SQLite's online backup (Bytewax writes in WAL mode) and uploaded, with
`If-Match` on the version this pod last wrote (store.py), when their content or as-of changed.

The first time the run's rows appear, the start's record is read again: a peer that took an earlier,
equivalent record adopts pod 0's; one that cut to another epoch stops before it writes anything.
"""

from __future__ import annotations

import logging
import secrets
import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from botocore.exceptions import BotoCoreError, ClientError

from dataflow import metrics
from dataflow.recovery import held as held_state
from dataflow.recovery.frontier import UNKNOWN, lower_bound, newest_execution
from dataflow.recovery.held import Held
from dataflow.recovery.partition_file import (
    PartitionFileError,
    consistent_copy,
    digest,
    index_of,
    read_info,
    stamp,
)
from dataflow.recovery.resume import Resume
from dataflow.recovery.store import Fenced, Store, StoredCopy

log = logging.getLogger(__name__)
ERRORS = (BotoCoreError, ClientError, PartitionFileError, OSError, sqlite3.Error)


def own_files(directory: Path) -> dict[int, Path]:
    found = {}
    for path in sorted(directory.glob("part-*.sqlite3")):
        index = index_of(path)
        if index is not None:
            found[index] = path
    return found


@dataclass
class Backup:
    directory: Path
    store: Store
    count: int
    clock: Callable[[], float] = time.time
    resume: Resume | None = None  # set by align: nothing is uploaded before
    held: dict[int, Held] = field(default_factory=dict)
    confirmed: bool = False  # the run's rows were seen and the start's record read again
    current: dict[int, float] = field(default_factory=dict)  # partition -> when its stored copy was last current
    complete: bool = False  # the last pass left every partition's stored copy current
    uploads: int = 0
    failures: int = 0
    _seen: tuple[tuple[str, int, int], ...] = ()

    def begin(self, resume: Resume, held: dict[int, Held]) -> None:
        self.resume, self.held = resume, dict(held)
        now = self.clock()
        self.current = {i: now for i in held}

    def _stat(self) -> tuple[tuple[str, int, int], ...]:
        seen = []
        for path in sorted(self.directory.glob("part-*.sqlite3*")):
            if path.name.endswith("-shm"):
                continue  # SQLite's shared index: readers write it too
            try:
                st = path.stat()
            except FileNotFoundError:
                continue
            seen.append((path.name, st.st_mtime_ns, st.st_size))
        return tuple(seen)

    def changed(self) -> bool:
        """Whether a partition file (or its WAL) changed since the last pass: a few stat calls, so the loop can
        look often and copy only after Bytewax wrote a snapshot."""
        return self._stat() != self._seen

    def oldest_current(self) -> float | None:
        """When the least recently current partition's stored copy was last current (readiness, metrics)."""
        return min(self.current.values(), default=None)

    def publish(self) -> None:
        now = self.clock()
        for index, when in self.current.items():
            metrics.RECOVERY_BACKUP_AGE.labels(partition=str(index)).set(max(0.0, now - when))

    def _confirm(self, newest: int | None) -> bool:
        """True once the run's rows exist and the start's record still says what this pod cut to."""
        assert self.resume is not None
        if self.confirmed:
            return True
        if newest is None or newest < self.resume.running:
            return False
        got = self.store.read_resume()
        current = Resume.from_json(got[0]) if got else None
        if current is None or current.epoch != self.resume.epoch:
            raise Fenced(
                f"recovery.resume_changed store={self.store.url} this pod cut to epoch {self.resume.epoch} (start "
                f"{self.resume.start}) but the start's record says {current and current.epoch}: it stops before "
                "writing; the pods restart and agree again"
            )
        if current.start != self.resume.start:
            log.info(
                "recovery.resume_adopted start=%d (was %d) epoch=%d", current.start, self.resume.start, current.epoch
            )
            self.resume = current
        self.confirmed = True
        return True

    def run_once(self) -> int:
        """One pass; returns the partitions uploaded. Store errors are logged and counted, not raised (the next
        pass tries again, the local copy stays the newest until then); a refused write raises Fenced."""
        if self.resume is None:
            return 0
        try:
            stored = self.store.copies(self.count)
            files = own_files(self.directory)
            own = {i: read_info(p) for i, p in files.items()}
            everything = [p.rows for p in own.values()] + [c.rows for i, c in stored.items() if i not in own]
            if not self._confirm(newest_execution(everything)):
                self._mark_current(files)
                return 0
        except ERRORS as err:
            self._failed(f"error={err}")
            return 0
        resume = self.resume
        mine = [p.rows for p in own.values()]
        theirs = [c.rows for i, c in stored.items() if i not in own and c.start == resume.start]
        as_of = lower_bound(mine + theirs, execution=resume.running)
        uploaded, complete = 0, True
        for index, path in files.items():
            try:
                before = self.held.get(index)
                uploaded += self.store_copy(index, path, max(as_of, before.as_of if before else UNKNOWN))
                self.current[index] = self.clock()
            except ERRORS as err:
                complete = False
                self._failed(f"partition={index} error={err}")
        self.uploads += uploaded
        self.complete = complete
        self._seen = self._stat()  # what the pass itself touched (a checkpoint on close) is not a snapshot
        return uploaded

    def store_copy(self, index: int, path: Path, as_of: int, force: bool = False) -> bool:
        """Upload a consistent copy of `path` as-of `as_of` if it or its content changed (or `force`), with
        `If-Match` on the version this pod holds; True if uploaded."""
        assert self.resume is not None
        copy = self.directory / f".backup-{index}.tmp"
        try:
            consistent_copy(path, copy)
            content = digest(copy)
            before = self.held.get(index)
            if not force and before is not None and (content, as_of) == (before.digest, before.as_of):
                return False
            meta = StoredCopy(as_of=as_of, digest=content, rows=read_info(copy).rows, start=self.resume.start)
            stamp(copy, secrets.randbits(31))
            etag = self.store.upload(index, copy, meta, before.etag if before else None)
            self.held[index] = Held(etag=etag, as_of=as_of, digest=content)
            held_state.save(self.directory, self.held)
            return True
        finally:
            copy.unlink(missing_ok=True)

    def _mark_current(self, files: dict[int, Path]) -> None:
        """Before the run writes anything, the store's copies hold all that this start's R needs."""
        now = self.clock()
        for index in files:
            self.current[index] = now
        self.complete = True
        self._seen = self._stat()

    def _failed(self, what: str) -> None:
        self.failures += 1
        self.complete = False
        metrics.RECOVERY_BACKUP_FAILURES.inc()
        log.warning("recovery.backup_failed %s", what)
