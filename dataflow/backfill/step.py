"""The input side's Bytewax step: every review handed to one `Cutter` (one key), which writes job pages and
markers to S3; nothing flows on from here (results come from the job outputs source, outputs.py).

`on_eof` closes the last chunk and writes `input-complete.json`: the job side ends once it has read every
chunk. The snapshot (with Bytewax recovery) is the cutter's state: the page in memory, the pages written for
the open chunk, the positions covered by closed chunks. Without recovery a rerun skips covered positions.
"""

from __future__ import annotations

from collections.abc import Callable

from bytewax.operators import StatefulBatchLogic

from dataflow.backfill.chunks import CutState, Cutter
from dataflow.records import Review


class CutLogic(StatefulBatchLogic[Review, None, CutState]):
    def __init__(self, cutter: Cutter) -> None:
        self.cutter = cutter

    def on_batch(self, values: list[Review]) -> tuple[list[None], bool]:
        for review in values:
            self.cutter.add(review)
        return [], StatefulBatchLogic.RETAIN

    def on_eof(self) -> tuple[list[None], bool]:
        self.cutter.finish()
        return [], StatefulBatchLogic.DISCARD

    def snapshot(self) -> CutState:
        return self.cutter.state


def logic_builder(make: Callable[[CutState | None], Cutter]) -> Callable[[CutState | None], CutLogic]:
    """The builder `stateful_batch` calls (once: there is one key)."""
    return lambda resume: CutLogic(make(resume))
