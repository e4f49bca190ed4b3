"""Agree on one resume epoch before the dataflow starts, so that partitions stored at different moments resume
as one consistent snapshot.

Bytewax resumes from the *latest* frontier found in any partition (recovery.rs resume_from): right for the files
a running cluster wrote (Timely writes an epoch's frontier only after every snapshot of it), wrong for copies
stored a few seconds apart: the enrichment step's held reviews of a shard could come from an older copy than
its position in the stream, and the reviews between the two would be lost. So every pod, at every start, cuts
the progress rows of its own files back to the earliest as-of epoch of the set (backup.py: every snapshot
before it is in the copy): its own view for the files it holds, the store's metadata for the others. A pod
uses either the stored copy or a newer one of its own, so the store's as-of is a lower bound. Pods that read
the store a moment apart may cut to different epochs; Bytewax takes the latest cut, still no later than any
copy's real as-of, so every partition holds the snapshots it needs. Bytewax then loads, per key, the latest
snapshot before that epoch, and re-reads the stream from there.

A cut below a partition's garbage-collection point (Bytewax keeps `-b` seconds of snapshots) would resume
without some state: refused, with the fix named.
"""

from __future__ import annotations

import sqlite3
from contextlib import closing
from pathlib import Path

from dataflow.recovery.layout import LayoutError


def cut_epoch(own: dict[int, int], stored: dict[int, int], count: int) -> int:
    """The earliest as-of epoch of the set: this pod's view for its own files, the store's for the others."""
    epochs = [own[i] if i in own else stored[i] for i in range(count) if i in own or i in stored]
    return min(epochs, default=-1)


def cut(path: Path, epoch: int) -> bool:
    """Move this partition's frontier back to `epoch`; True if it moved.

    Snapshots of later epochs stay: pods may cut to slightly different epochs (each reads the store when it
    starts), Bytewax resumes from the latest of the cuts and needs every snapshot before it. The resumed run
    re-writes those epochs; a later snapshot it does not re-write is the same kind of left-over Bytewax's own
    crash recovery leaves for the epoch in progress (at most about one snapshot interval here)."""
    with closing(sqlite3.connect(path)) as conn, conn:
        if epoch < 0:  # some partition has never been stored with progress: the whole set starts over
            moved = conn.execute("DELETE FROM fronts").rowcount > 0
            for table in ("exs", "snaps", "commits"):
                conn.execute(f"DELETE FROM {table}")
            return moved
        commit = conn.execute("SELECT MAX(commit_epoch) FROM commits").fetchone()[0]
        if commit is not None and epoch >= 0 and commit > epoch:
            raise LayoutError(
                f"recovery.cut_too_far partition={path.name} was garbage-collected up to epoch {commit}, after the "
                f"set's earliest frontier {epoch}: another partition's stored copy is older than Bytewax keeps "
                "snapshots (the -b interval); raise -b, or restore that partition's newer copy"
            )
        moved = conn.execute("UPDATE fronts SET worker_frontier = ? WHERE worker_frontier > ?", (epoch, epoch))
        conn.execute("UPDATE exs SET resume_epoch = ? WHERE resume_epoch > ?", (epoch, epoch))
        return moved.rowcount > 0
