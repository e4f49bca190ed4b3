"""The epoch a set of partitions resumes from, read the way Bytewax reads it (v0.21 recovery.rs resume_from).

Bytewax resumes from the *newest* execution only: the one with the largest `exs.ex_num`, each of its workers at
the larger of the execution's resume epoch and its own latest frontier, the smallest of these. Rows of older
executions never count, however far they got (a cut or a rollback leaves them behind). Bytewax writes a
worker's frontier only once every snapshot before it is written, everywhere; so rows of the running execution
give an epoch before which every partition that execution writes holds all its snapshots.
"""

from __future__ import annotations

from collections.abc import Iterable

from dataflow.recovery.partition_file import Rows

UNKNOWN = -1  # no execution is described by these rows: nothing has been completed yet, as far as they tell


def newest_execution(rows: Iterable[Rows]) -> int | None:
    return max((ex for r in rows for ex, _w, _e in r.exs), default=None)


def lower_bound(rows: Iterable[Rows], execution: int | None = None) -> int:
    """min over the workers of `execution` (default: the newest) of max(its resume epoch, its known frontier);
    UNKNOWN when that execution's row is not among `rows`."""
    rows = list(rows)
    if execution is None:
        execution = newest_execution(rows)
    meta = next((ex for r in rows for ex in r.exs if ex[0] == execution), None)
    if meta is None:
        return UNKNOWN
    _ex, workers, resume = meta
    fronts: dict[int, int] = {}
    for r in rows:
        for ex, worker, frontier in r.fronts:
            if ex == execution:
                fronts[worker] = max(frontier, fronts.get(worker, frontier))
    return min(max(resume, fronts.get(w, resume)) for w in range(workers))
