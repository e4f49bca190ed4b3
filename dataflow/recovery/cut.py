"""Cut a partition to the start's agreed resume epoch R (resume.py), so the set resumes as one snapshot.

Bytewax loads, per key, the latest snapshot *below* its resume epoch, and resumes from the newest execution's
frontiers. So each partition keeps every snapshot below R and loses everything at or above it (a rolled-back
run's snapshots would otherwise be loaded by a later resume, for keys the new run does not touch again), and
drops the rows of executions the agreement did not see (a run whose rows never reached the store). The pod that
holds partition 0 then writes one marker execution (`marker`, resume epoch R, no frontiers): the newest, it
makes Bytewax resume at exactly R whatever older rows say, and its successor is the run's execution number.

Bytewax's garbage collection keeps, for a commit at c, only the latest snapshot at or below c; a resume at R
reads below R; so a partition committed at or above R may have lost what R needs: refused, with the fix named.
"""

from __future__ import annotations

import sqlite3
from contextlib import closing
from pathlib import Path

from dataflow.recovery.frontier import UNKNOWN
from dataflow.recovery.layout import LayoutError

TABLES = ("exs", "fronts", "snaps", "commits")


def cut(path: Path, epoch: int, marker: int | None) -> bool:
    """Cut this partition to `epoch` (UNKNOWN: empty it, the set starts over) and drop executions >= `marker`;
    write the marker execution when `marker` is given and this is partition 0. True if anything changed."""
    with closing(sqlite3.connect(path)) as conn, conn:
        if epoch == UNKNOWN:
            return sum(conn.execute(f"DELETE FROM {table}").rowcount for table in TABLES) > 0
        commit = conn.execute("SELECT MAX(commit_epoch) FROM commits").fetchone()[0]
        if commit is not None and commit >= epoch:
            raise LayoutError(
                f"recovery.cut_too_far partition={path.name} was garbage-collected up to epoch {commit}, at or "
                f"after the set's resume epoch {epoch}: another partition's stored copy is older than Bytewax keeps "
                "snapshots (RECOVERY_RETAIN_S); restore that partition's newer copy, or start on a new prefix"
            )
        changed = conn.execute("DELETE FROM snaps WHERE snap_epoch >= ?", (epoch,)).rowcount
        if marker is not None:
            changed += conn.execute("DELETE FROM exs WHERE ex_num >= ?", (marker,)).rowcount
            changed += conn.execute("DELETE FROM fronts WHERE ex_num >= ?", (marker,)).rowcount
        changed += conn.execute(
            "UPDATE fronts SET worker_frontier = ? WHERE worker_frontier > ?", (epoch, epoch)
        ).rowcount
        changed += conn.execute("UPDATE exs SET resume_epoch = ? WHERE resume_epoch > ?", (epoch, epoch)).rowcount
        part = conn.execute("SELECT part_index FROM parts").fetchone()[0]
        if marker is not None and part == 0:
            conn.execute("INSERT INTO exs (ex_num, worker_count, resume_epoch) VALUES (?, 1, ?)", (marker, epoch))
            changed += 1
        return changed > 0
