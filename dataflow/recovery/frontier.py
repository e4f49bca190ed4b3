"""A lower bound of the epoch the whole cluster has completed, from whatever progress rows are at hand.

Bytewax writes a worker's frontier only once every snapshot before it is written, everywhere; so for any
collection of its rows, the smallest frontier of the newest execution they fully describe is an epoch before
which every partition, copied after those rows were read, holds all its snapshots (its "as-of" epoch).
"""

from __future__ import annotations

from collections.abc import Iterable

from dataflow.recovery.partition_file import Rows

UNKNOWN = -1  # no execution is fully described: nothing has been completed yet, as far as these rows tell


def lower_bound(rows: Iterable[Rows]) -> int:
    """max over executions e with a known exs row of min over its workers of max(resume epoch, known frontier)."""
    executions: dict[int, tuple[int, int]] = {}
    fronts: dict[tuple[int, int], int] = {}
    for r in rows:
        for ex, workers, resume in r.exs:
            executions[ex] = (workers, resume)
        for ex, worker, frontier in r.fronts:
            fronts[(ex, worker)] = max(frontier, fronts.get((ex, worker), frontier))
    best = UNKNOWN
    for ex, (workers, resume) in executions.items():
        completed = min(max(resume, fronts.get((ex, w), resume)) for w in range(workers))
        best = max(best, completed)
    return best
