"""What the main process does before it starts the dataflow: agree on R, make its files the store's, cut.

1. Agree on this start's resume epoch R (resume.py: pod 0 decides, the others read it).
2. A file whose store object is no longer the version this pod last fetched or wrote was replaced meanwhile (a
   replacement pod, an operator's restore): it is fetched again; the store wins.
3. Cut every file this pod holds to R (cut.py) and store it, tagged with this start (the claim): from now on
   each copy vouches for R, until the running execution vouches for more (backup.py); the marker execution is
   in the store before Bytewax runs; and a lost pod's process still running on a partitioned node is fenced
   from the moment its replacement has started, not from its replacement's first snapshot.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from dataflow.recovery import held as held_state
from dataflow.recovery.backup import Backup, own_files
from dataflow.recovery.cut import cut
from dataflow.recovery.held import Held
from dataflow.recovery.restore import fetch
from dataflow.recovery.resume import Resume, agree

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Alignment:
    resume: Resume
    moved: list[int]
    refetched: list[int]


def align(
    backup: Backup,
    ordinal: int,
    wait_s: float,
    settle_s: float = 1.0,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> Alignment:
    directory = backup.directory
    resume = agree(backup.store, backup.count, ordinal, wait_s, settle_s, sleep, clock)
    held = held_state.load(directory)
    stored = backup.store.copies(backup.count)
    refetched = []
    for index in own_files(directory):
        mine = held.get(index)
        if mine is None or index not in stored or mine.etag != stored[index].etag:
            copy = fetch(backup.store, directory, index, backup.count)
            held[index] = Held(etag=copy.etag, as_of=copy.as_of, digest=copy.digest)
            refetched.append(index)
    if refetched:
        log.warning("recovery.refetched partitions=%s: replaced in the store since this pod held them", refetched)
    files = own_files(directory)
    held = {i: h for i, h in held.items() if i in files}
    moved = [index for index, path in files.items() if cut(path, resume.epoch, resume.marker)]
    backup.begin(resume, held)
    for index, path in files.items():
        backup.store_copy(index, path, resume.epoch, force=True)  # Fenced: another pod owns it now
    log.info(
        "recovery.aligned start=%d epoch=%d marker=%s own=%s cut=%s refetched=%s",
        resume.start,
        resume.epoch,
        resume.marker,
        sorted(held),
        moved,
        refetched,
    )
    return Alignment(resume=resume, moved=moved, refetched=refetched)
