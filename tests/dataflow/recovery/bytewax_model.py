"""Bytewax 0.21's recovery partitions, written and read the way src/recovery.rs does, for the protocol's tests.

Writes: an execution's row (`exs`: number, worker count, resume epoch) goes into one partition, as do each
worker's frontier row (`fronts`), each key's snapshots (`snaps`, ON CONFLICT replace) and each partition's GC
commit (`commits`: the latest snapshot at or below the commit epoch is kept, older ones deleted). An epoch's
frontier rows are written only after all of its snapshots. Reads (resume_from): the newest execution only, each
worker at max(resume epoch, frontier), the smallest; refused when a partition's commit is above it; then each
key's latest snapshot *below* the resume epoch.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path

STEP = "enrich"


class BytewaxRefused(RuntimeError):
    """Bytewax's own InconsistentPartitionsError (a commit above the resume epoch)."""


def connect(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA journal_mode=WAL")
    return conn


def write_exs(path: Path, ex: int, workers: int, resume: int) -> None:
    with closing(connect(path)) as conn, conn:
        conn.execute(
            "INSERT INTO exs (ex_num, worker_count, resume_epoch) VALUES (?, ?, ?) "
            "ON CONFLICT (ex_num) DO UPDATE SET worker_count = EXCLUDED.worker_count, "
            "resume_epoch = EXCLUDED.resume_epoch",
            (ex, workers, resume),
        )


def write_front(path: Path, ex: int, worker: int, frontier: int) -> None:
    with closing(connect(path)) as conn, conn:
        conn.execute(
            "INSERT INTO fronts (ex_num, worker_index, worker_frontier) VALUES (?, ?, ?) "
            "ON CONFLICT (ex_num, worker_index) DO UPDATE SET worker_frontier = EXCLUDED.worker_frontier",
            (ex, worker, frontier),
        )


def write_snap(path: Path, key: str, epoch: int, state: str) -> None:
    with closing(connect(path)) as conn, conn:
        conn.execute(
            "INSERT INTO snaps (step_id, state_key, snap_epoch, ser_change) VALUES (?, ?, ?, ?) "
            "ON CONFLICT (step_id, state_key, snap_epoch) DO UPDATE SET ser_change = EXCLUDED.ser_change",
            (STEP, key, epoch, state.encode()),
        )


def commit(path: Path, part: int, epoch: int) -> None:
    """RecoveryCommitter.commit: record the commit, keep each key's latest snapshot at or below it, drop older."""
    with closing(connect(path)) as conn, conn:
        conn.execute(
            "INSERT INTO commits (part_index, commit_epoch) VALUES (?, ?) "
            "ON CONFLICT (part_index) DO UPDATE SET commit_epoch = EXCLUDED.commit_epoch",
            (part, epoch),
        )
        conn.execute(
            """WITH max_epoch_snapshots AS (
                 SELECT step_id, state_key, MAX(snap_epoch) AS snap_epoch FROM snaps WHERE snap_epoch <= ?1
                 GROUP BY step_id, state_key),
               garbage_snapshots AS (
                 SELECT step_id, state_key, snaps.snap_epoch FROM snaps
                 JOIN max_epoch_snapshots USING (step_id, state_key)
                 WHERE snaps.snap_epoch < max_epoch_snapshots.snap_epoch)
               DELETE FROM snaps WHERE (step_id, state_key, snap_epoch) IN garbage_snapshots""",
            (epoch,),
        )


@dataclass(frozen=True)
class Resumed:
    execution: int  # the execution number Bytewax runs now
    epoch: int  # its resume epoch
    states: dict[str, str]  # key -> the state loaded (its latest snapshot below the resume epoch)


def resume_from(paths: Iterable[Path]) -> Resumed:
    """What Bytewax 0.21 reads from the whole set of partitions when it starts."""
    exs, fronts, commits, snaps = [], [], [], []
    for path in paths:
        with closing(sqlite3.connect(path)) as conn:
            exs += conn.execute("SELECT ex_num, worker_count, resume_epoch FROM exs").fetchall()
            fronts += conn.execute("SELECT ex_num, worker_index, worker_frontier FROM fronts").fetchall()
            commits += [c for (c,) in conn.execute("SELECT commit_epoch FROM commits")]
            snaps += conn.execute("SELECT state_key, snap_epoch, ser_change FROM snaps").fetchall()
    if not exs:
        execution, epoch = 0, 1  # ResumeFrom::default()
    else:
        newest = max(ex for ex, _w, _r in exs)
        workers, resume = next((w, r) for ex, w, r in exs if ex == newest)
        progress = {w: resume for w in range(workers)}
        for ex, w, f in fronts:
            if ex == newest and w in progress:
                progress[w] = max(progress[w], f)
        execution, epoch = newest + 1, min(progress.values())
    if any(c > epoch for c in commits):
        raise BytewaxRefused(f"partitions committed above the resume epoch {epoch}")
    latest: dict[str, tuple[int, str]] = {}
    for key, snap_epoch, state in snaps:
        if snap_epoch < epoch and (key not in latest or snap_epoch > latest[key][0]):
            latest[key] = (snap_epoch, state.decode() if state is not None else "")
    return Resumed(execution, epoch, {k: s for k, (_e, s) in latest.items()})
