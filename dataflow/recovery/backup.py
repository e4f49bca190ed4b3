"""Refresh the store's copy of each partition this pod holds, soon after each snapshot and at exit.

Each pass reads what the store says of the whole set's progress (HEADs), adds the progress rows of this pod's
own files, and takes the lower bound of the epoch the cluster completed (frontier.py) *before* copying: every
copy taken after it holds all snapshots before that epoch, its as-of epoch, stored with it. Copies are taken
with SQLite's online backup (Bytewax writes in WAL mode) and uploaded when their content or as-of changed.
"""

from __future__ import annotations

import logging
import sqlite3
from dataclasses import dataclass, field
from pathlib import Path

from botocore.exceptions import BotoCoreError, ClientError

from dataflow.recovery.frontier import lower_bound
from dataflow.recovery.partition_file import (
    PartitionFileError,
    PartitionInfo,
    consistent_copy,
    digest,
    index_of,
    read_info,
)
from dataflow.recovery.store import Store, StoredCopy

log = logging.getLogger(__name__)


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
    uploaded: dict[int, tuple[str, int]] = field(default_factory=dict)  # partition -> (digest, as-of) stored
    uploads: int = 0
    failures: int = 0
    _seen: tuple[tuple[str, int, int], ...] = ()

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
        look often and copy only after Bytewax wrote a snapshot (a copy trailing its snapshot by a whole
        interval would add that interval to what a lost pod's replacement re-reads)."""
        return self._stat() != self._seen

    def as_of(self, own: dict[int, PartitionInfo], stored: dict[int, StoredCopy]) -> int:
        """The set's completed epoch as far as this pod can tell: the store's rows for others, its own rows."""
        return lower_bound([c.rows for i, c in stored.items() if i not in own] + [p.rows for p in own.values()])

    def run_once(self) -> int:
        """One pass; returns the partitions uploaded. Store errors are logged, not raised: the next pass tries
        again, and the local copy stays the newest until then."""
        try:
            stored = self.store.copies(self.count)
            files = own_files(self.directory)
            own = {i: read_info(p) for i, p in files.items()}
        except (BotoCoreError, ClientError, PartitionFileError, OSError, sqlite3.Error) as err:
            self.failures += 1
            log.warning("recovery.backup_failed error=%s", err)
            return 0
        as_of = self.as_of(own, stored)
        uploaded = 0
        for index, path in files.items():
            copy = self.directory / f".backup-{index}.tmp"
            try:
                consistent_copy(path, copy)
                content = digest(copy)
                if (content, as_of) == self.uploaded.get(index):
                    continue  # an idle partition is stored again when the set's epoch moves: its as-of moves
                self.store.upload(index, copy, StoredCopy(as_of=as_of, digest=content, rows=read_info(copy).rows))
                self.uploaded[index] = (content, as_of)
                uploaded += 1
            except (BotoCoreError, ClientError, PartitionFileError, OSError, sqlite3.Error) as err:
                self.failures += 1
                log.warning("recovery.backup_failed partition=%d error=%s", index, err)
            finally:
                copy.unlink(missing_ok=True)
        self.uploads += uploaded
        self._seen = self._stat()  # what the pass itself touched (a checkpoint on close) is not a snapshot
        return uploaded
