"""What the main process does before it starts the dataflow: publish, wait briefly for the peers, cut.

1. Publish this pod's copies (a restarted container kept its directory: they may be newer than the store's).
2. Wait, at most `wait_s`, until every stored copy is as-of at least this pod's own view of the set's epoch,
   publishing again on each look: the peers restart at the same moment and publish theirs; the later the
   agreed epoch, the less is re-read.
3. Cut this pod's partitions to the earliest as-of epoch of the set (cut.py).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from dataflow.recovery.backup import Backup, own_files
from dataflow.recovery.cut import cut, cut_epoch
from dataflow.recovery.frontier import UNKNOWN
from dataflow.recovery.partition_file import read_info

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Alignment:
    epoch: int
    moved: list[int]
    waited_s: float


def align(
    backup: Backup,
    wait_s: float,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> Alignment:
    files = own_files(backup.directory)
    started = clock()
    while True:
        # Publish again on every look: a peer's copies just stored raise this pod's view of the set's epoch,
        # and its own copies' as-of with it; the peers do the same, so the views meet.
        backup.run_once()
        own = {i: read_info(p) for i, p in files.items()}
        stored = backup.store.copies(backup.count)
        mine = backup.as_of(own, stored)
        behind = sorted(i for i, c in stored.items() if i not in own and c.as_of < mine)
        if not behind or clock() - started >= wait_s:
            break
        sleep(0.5)
    epoch = cut_epoch({i: mine for i in own}, {i: c.as_of for i, c in stored.items()}, backup.count)
    moved = [i for i, path in files.items() if cut(path, epoch)]
    waited = clock() - started
    if epoch == UNKNOWN and mine != UNKNOWN:
        log.warning(
            "recovery.cut_to_start partitions=%s were stored before any progress: the whole set resumes from "
            "KINESIS_START_POSITION",
            sorted(i for i, c in stored.items() if i not in own and c.as_of == UNKNOWN),
        )
    log.info(
        "recovery.aligned epoch=%d own=%s cut=%s behind=%s waited_s=%.1f", epoch, sorted(own), moved, behind, waited
    )
    return Alignment(epoch=epoch, moved=moved, waited_s=waited)
